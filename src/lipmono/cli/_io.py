"""Reading and writing tables and models for the subcommands."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import DataError
from ..serialization import atomic_write_bytes

__all__ = ["read_table", "write_csv", "split_target", "column_list", "load_model"]

_PARQUET = (".parquet", ".pq")


def read_table(path):
    """Read a CSV or Parquet file (by extension) into a DataFrame with at least one row."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataError(f"input file {str(path)!r} not found")
    if path.is_dir():
        raise DataError(
            f"input path {str(path)!r} is a folder; give a CSV or Parquet file, or pass "
            "--stream (lipmono train) to read a folder of them in batches"
        )
    try:
        if path.suffix.lower() in _PARQUET:
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"input file {str(path)!r} is empty; it needs a header row and data"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"cannot read {str(path)!r} as a table: {error}") from None
    if frame.shape[0] == 0:
        raise DataError(f"input file {str(path)!r} has a header but no data rows")
    return frame


def write_csv(frame, path) -> None:
    """Write ``frame`` to ``path`` atomically, or as CSV to stdout when ``path`` is None or "-".

    A path ending in .parquet or .pq gets Parquet, as :func:`read_table` reads it; any
    other path gets CSV.
    """
    import sys

    if path is not None and str(path) != "-" and Path(path).suffix.lower() in _PARQUET:
        binary = io.BytesIO()
        frame.to_parquet(binary, index=False)
        atomic_write_bytes(path, binary.getvalue())
        return
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    if path is None or str(path) == "-":
        sys.stdout.write(buffer.getvalue())
        return
    atomic_write_bytes(path, buffer.getvalue().encode())


def split_target(frame, target: str, where):
    """Return ``(features, target)`` columns of ``frame``; ``where`` names the file in errors."""
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found in {str(where)!r}; its columns are: "
            f"{', '.join(map(str, frame.columns))}"
        )
    return frame.drop(columns=[target]), frame[target]


def column_list(values) -> list[str]:
    """Flatten repeated and comma-separated column options into a list of names."""
    names: list[str] = []
    for value in values or []:
        names.extend(part.strip() for part in value.split(",") if part.strip())
    return names


def load_model(path):
    """Load a model file written by ``lipmono train`` or ``estimator.save``."""
    from ..serialization import load

    return load(path)
