"""Atomic file writes shared by model files, checkpoints, exports and reports.

Each write goes to a temporary file in the destination folder, which is then
renamed over the destination with :func:`os.replace`. A reader therefore sees
either the old file or the complete new one, never a half-written file, and a
failed write leaves the destination as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes"]


def _umask() -> int:
    # os.umask can only be read by setting it, so set it and put it back at once.
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` and rename it to ``path`` on success.

    The caller writes the temporary file in the ``with`` body. If the body
    raises, the temporary file is removed and ``path`` is untouched. The file
    gets the permissions a plain ``open(path, "w")`` would give it (0666 less the
    umask), not the owner-only mode that :func:`tempfile.mkstemp` uses.

    Raises ``FileNotFoundError`` if the destination folder does not exist, and
    ``IsADirectoryError`` if ``path`` is a folder.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist; create it first")
    if target.is_dir():
        raise IsADirectoryError(f"{str(target)!r} is a folder; give a file path to write")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(descriptor)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
