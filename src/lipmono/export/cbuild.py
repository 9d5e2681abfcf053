"""Compile a C export into a shared library and call it from Python through ctypes.

For checking an export against the torch model and for timing it; deployments
compile the two files into their own program instead.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ExportError

__all__ = ["C_FLAGS", "find_c_compiler", "compile_shared", "CPredictor"]

#: Flags the C export is written to compile cleanly under.
C_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")


def find_c_compiler() -> str | None:
    """Return the path of the C compiler in ``$CC``, or of cc, gcc or clang; None if none."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else []
    for name in [*candidates, "cc", "gcc", "clang"]:
        path = shutil.which(name)
        if path:
            return path
    return None


def compile_shared(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    compiler: str | None = None,
    flags: Sequence[str] = C_FLAGS,
    timeout: float = 120.0,
) -> Path:
    """Compile one C source file into the shared library ``output``.

    Raises :class:`ExportError` when no compiler is found or compilation fails;
    the message includes the compiler's output.
    """
    compiler = compiler or find_c_compiler()
    if compiler is None:
        raise ExportError("no C compiler found; install cc, gcc or clang, or set CC")
    command = [compiler, *flags, "-shared", "-fPIC", "-o", os.fspath(output), os.fspath(source)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise ExportError(f"compiling {source} timed out after {timeout:g} s") from error
    if result.returncode != 0:
        raise ExportError(
            f"compiling {source} failed (exit code {result.returncode}):\n"
            f"{' '.join(command)}\n{result.stderr.strip()}"
        )
    return Path(output)


class CPredictor:
    """Call ``<prefix>_predict`` of a compiled C export on NumPy arrays.

    Parameters
    ----------
    library : path-like
        The shared library built by :func:`compile_shared`.
    prefix : str
        The prefix the export was written with.
    n_features, n_outputs : int
        The model's input and output widths.
    """

    def __init__(self, library: str | os.PathLike, prefix: str, n_features: int, n_outputs: int):
        self._library = ctypes.CDLL(os.fspath(Path(library).resolve()))
        self._predict = getattr(self._library, f"{prefix}_predict")
        self._predict.restype = ctypes.c_int
        self._predict.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self.n_features = int(n_features)
        self.n_outputs = int(n_outputs)

    def predict_into(self, x: np.ndarray, out: np.ndarray) -> int:
        """Evaluate C-contiguous float32 ``x`` ``(N, n_features)`` into ``out`` ``(N, n_outputs)``.

        Returns the C function's status: 0, or the number of non-finite rows. No
        checks and no copies, for timing.
        """
        return self._predict(x.ctypes.data, x.shape[0], out.ctypes.data)

    def predict(self, X) -> np.ndarray:
        """Return the C export's output ``(N, n_outputs)`` for the rows of ``X``.

        Raises :class:`ExportError` if ``X`` has the wrong shape or a row is not finite.
        """
        x = np.ascontiguousarray(X, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ExportError(f"X has shape {x.shape}, expected (N, {self.n_features})")
        out = np.empty((x.shape[0], self.n_outputs), dtype=np.float32)
        status = self.predict_into(x, out)
        if status > 0:
            raise ExportError(
                f"{status} row(s) of X hold NaN or infinity; the C export set their outputs to NaN"
            )
        if status < 0:
            raise ExportError(f"the C export rejected its arguments (status {status})")
        return out
