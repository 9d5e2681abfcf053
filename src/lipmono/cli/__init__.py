"""The ``lipmono`` command line.

Each subcommand is a module of this package that defines

* a docstring, whose first line is the subcommand's help text;
* ``add_arguments(parser)``, which adds its options to an :mod:`argparse` parser;
* ``run(args) -> int``, which does the work and returns the exit status.

To add a subcommand, write ``lipmono/cli/<name>.py`` and add ``"<name>"`` to
:data:`COMMANDS` below; that one line is the whole registration. Modules import
heavy libraries inside ``run`` so that ``lipmono --help`` stays fast.

:func:`main` catches :class:`~lipmono.errors.LipmonoError` and file errors, prints
``error: <message>`` to stderr and returns 2; so does a training loss that stops
being finite. An interrupt returns 130. Warnings print as ``warning: <message>``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from .. import __version__
from ..errors import LipmonoError

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand module names, in the order ``lipmono --help`` lists them.
COMMANDS = [
    "train",
    "predict",
    "evaluate",
    "info",
    "export",
    "demo",
    "audit",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``lipmono`` command with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="lipmono",
        description="Train, inspect and apply provably monotonic, Lipschitz-bounded networks.",
    )
    parser.add_argument("--version", action="version", version=f"lipmono {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        summary = (module.__doc__ or "").strip().splitlines()[0]
        subparser = subparsers.add_parser(
            name,
            help=summary,
            description=(module.__doc__ or "").strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(subparser)
        subparser.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``lipmono`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    verbose = getattr(args, "verbose", False)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if not verbose:
                return int(args.handler(args) or 0)
            from tqdm.contrib.logging import logging_redirect_tqdm

            # Log lines go through tqdm, so they print above the progress bar, not into it.
            with logging_redirect_tqdm():
                return int(args.handler(args) or 0)
    except LipmonoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (for example `lipmono info m | head`): stop quietly,
        # and point stdout at /dev/null so the flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (OSError, FloatingPointError) as error:
        # File errors (not found, permission denied, folder missing) carry their own text,
        # and the message of a loss that became NaN or infinite names the setting to lower.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = ""
        if args.command == "train":
            hint = "; run the same command with --resume to continue from the last checkpoint"
        print(f"error: interrupted{hint}", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as ``warning: <message>``, without the source line of a traceback."""
    print(f"warning: {message}", file=file or sys.stderr)
