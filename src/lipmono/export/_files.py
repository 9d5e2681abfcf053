"""Atomic file writes: a temporary file in the target's folder, renamed into place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .. import files
from ..errors import ExportError

__all__ = ["check_target", "atomic_path", "write_bytes_atomic"]


def check_target(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if a file can be written there, else raise ``ExportError``."""
    target = Path(path)
    if not target.parent.is_dir():
        raise ExportError(
            f"cannot write {str(target)!r}: the folder {str(target.parent)!r} does not exist; "
            "create it first"
        )
    if target.is_dir():
        raise ExportError(f"cannot write {str(target)!r}: it is a folder, give a file path")
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, renamed to ``path`` on success.

    See :func:`lipmono.files.atomic_path`; this adds the export's target checks.
    """
    with files.atomic_path(check_target(path)) as temporary:
        yield temporary


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)
