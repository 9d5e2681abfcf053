"""Run the ``lipmono`` command: ``python -m lipmono``."""

import sys

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
