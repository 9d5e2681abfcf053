"""From a table to a float matrix: column names, types, one-hot encoding and scaling.

A :class:`TableSchema` records, at fit time, each input column's name and kind
(numeric, or categorical with its levels), and encodes later tables the same way.
Categorical columns are recognized in pandas DataFrames (dtype ``object``,
``category``, ``string``); numpy arrays must be numeric. Encoding checks for NaN
and infinity and names the columns and row counts it finds. Standardization is
separate (:class:`Standardizer`) because the encoded matrix, not the
standardized one, is what exports and audits take as input.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils.validation import validate_data

from .constraints import parse_monotonic_cst
from .errors import ConstraintError, DataError

__all__ = [
    "ColumnSpec",
    "TableSchema",
    "Standardizer",
    "is_dataframe",
    "validate_table",
    "check_finite",
]

NUMERIC = "numeric"
CATEGORICAL = "categorical"


def is_dataframe(X) -> bool:
    """Return whether ``X`` is a pandas DataFrame, without importing pandas when it is not."""
    module = type(X).__module__
    return module.startswith("pandas") and hasattr(X, "columns") and hasattr(X, "dtypes")


def _is_categorical_dtype(dtype) -> bool:
    import pandas as pd

    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    )


def check_finite(Z: np.ndarray, names, what: str = "X") -> None:
    """Raise :class:`DataError` naming the columns of ``Z`` that hold NaN or infinity.

    ``Z`` has shape ``(N, len(names))``.
    """
    bad = ~np.isfinite(Z)
    if not bad.any():
        return
    counts = bad.sum(axis=0)
    parts = [f"{names[j]!r} ({counts[j]} rows)" for j in np.flatnonzero(counts)]
    raise DataError(
        f"{what} contains NaN or inf in {len(parts)} column(s): {', '.join(parts)}; "
        "lipmono does not impute missing values, so remove or fill these rows first"
    )


def validate_table(estimator, X, *, reset: bool):
    """Validate ``X`` for ``estimator`` and return a DataFrame or a float64 array.

    Sets (``reset=True``) or checks ``n_features_in_`` and ``feature_names_in_``
    on ``estimator`` as scikit-learn does. A DataFrame keeps its columns, so
    that categorical columns can be encoded; anything else becomes a numeric
    ``(N, n_features)`` float64 array. Non-finite values are checked later, by
    :meth:`TableSchema.encode`, which can name the columns.
    """
    if is_dataframe(X):
        try:
            validate_data(estimator, X, reset=reset, skip_check_array=True)
        except ValueError as error:
            if "feature names should match" not in str(error):
                raise
            expected = ", ".join(map(str, estimator.feature_names_in_))
            raise DataError(
                f"{error}\nPass exactly the columns the model was fitted on, in this order: "
                f"{expected}"
            ) from None
        if X.shape[0] == 0:
            raise DataError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required"
            )
        return X
    return validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite=False)


@dataclass
class ColumnSpec:
    """One input column: its name, kind, and (for a categorical column) its levels."""

    name: str
    kind: str = NUMERIC
    categories: list[str] = field(default_factory=list)

    def encoded_names(self) -> list[str]:
        """Return the names of the encoded columns, ``name_level`` for each level."""
        if self.kind == NUMERIC:
            return [self.name]
        return [f"{self.name}_{level}" for level in self.categories]


@dataclass
class TableSchema:
    """The input columns seen at fit time and how each is encoded as floats."""

    columns: list[ColumnSpec]

    @classmethod
    def infer(cls, X) -> TableSchema:
        """Build the schema of ``X``, a DataFrame or a numeric ``(N, n_features)`` array."""
        if not is_dataframe(X):
            return cls([ColumnSpec(f"x{j}") for j in range(X.shape[1])])
        columns = []
        for name, dtype in zip(X.columns, X.dtypes, strict=True):
            if _is_categorical_dtype(dtype):
                values = X[name]
                _check_no_missing_levels(values, str(name))
                levels = sorted({str(value) for value in values})
                _warn_if_identifier(str(name), len(levels), len(values))
                columns.append(ColumnSpec(str(name), CATEGORICAL, levels))
            else:
                columns.append(ColumnSpec(str(name)))
        return cls(columns)

    @property
    def feature_names(self) -> list[str]:
        """Names of the input columns, in order."""
        return [column.name for column in self.columns]

    @property
    def encoded_names(self) -> list[str]:
        """Names of the encoded columns, in order."""
        return [name for column in self.columns for name in column.encoded_names()]

    @property
    def categorical(self) -> list[str]:
        """Names of the categorical input columns."""
        return [column.name for column in self.columns if column.kind == CATEGORICAL]

    def encode(self, X) -> np.ndarray:
        """Return ``X`` as a float64 ``(N, n_encoded)`` array, one-hot encoding categories.

        ``X`` must already have passed :func:`validate_table`. A level not seen at
        fit time is encoded as all zeros, with a warning that names it.
        """
        if not is_dataframe(X):
            Z = np.asarray(X, dtype=np.float64)
            check_finite(Z, self.feature_names)
            return Z
        blocks = []
        for position, column in enumerate(self.columns):
            values = X.iloc[:, position]
            if column.kind == NUMERIC:
                blocks.append(_numeric_column(values, column.name)[:, None])
            else:
                blocks.append(_one_hot(values, column))
        Z = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(X), 0))
        check_finite(Z, self.encoded_names)
        return Z

    def encode_constraints(self, monotonic_cst, named: bool) -> np.ndarray:
        """Return one direction (-1, 0 or 1) per encoded column.

        ``monotonic_cst`` refers to input columns, by position or (when ``named``)
        by name. A constraint on a categorical column raises :class:`ConstraintError`.
        """
        names = self.feature_names if named else None
        per_column = parse_monotonic_cst(monotonic_cst, len(self.columns), 1, names)
        per_column = per_column[:, 0].numpy().astype(np.int64)
        encoded = []
        for column, direction in zip(self.columns, per_column, strict=True):
            if column.kind == CATEGORICAL and direction != 0:
                raise ConstraintError(
                    f"column {column.name!r} is categorical (one-hot encoded), so it has no "
                    "order to be monotonic in; remove its constraint or encode it as numbers"
                )
            encoded.extend([int(direction)] * len(column.encoded_names()))
        return np.asarray(encoded, dtype=np.int64)

    def to_dict(self) -> dict:
        """Return the schema as JSON-serializable data."""
        return {
            "columns": [
                {"name": c.name, "kind": c.kind, "categories": list(c.categories)}
                for c in self.columns
            ]
        }

    @classmethod
    def from_dict(cls, data: dict) -> TableSchema:
        """Rebuild a schema written by :meth:`to_dict`."""
        columns = []
        for entry in data["columns"]:
            kind = entry["kind"]
            if kind not in (NUMERIC, CATEGORICAL):
                raise DataError(f"invalid column kind {kind!r} for column {entry['name']!r}")
            columns.append(
                ColumnSpec(str(entry["name"]), kind, [str(c) for c in entry["categories"]])
            )
        return cls(columns)


def _check_no_missing_levels(values, name: str) -> None:
    missing = int(values.isna().sum())
    if missing:
        raise DataError(
            f"X contains NaN in the categorical column {name!r} ({missing} rows); "
            "lipmono does not impute missing values, so remove or fill these rows first"
        )


# A categorical column with more levels than this, and more levels than half the rows,
# looks like an identifier: one-hot encoding it adds one input per row seen at fit time.
_MANY_LEVELS = 50


def _warn_if_identifier(name: str, n_levels: int, n_rows: int) -> None:
    if n_levels > _MANY_LEVELS and 2 * n_levels > n_rows:
        warnings.warn(
            f"categorical column {name!r} has {n_levels} distinct values in {n_rows} rows, so "
            f"one-hot encoding adds {n_levels} inputs; drop it if it is an identifier",
            UserWarning,
            stacklevel=4,
        )


def _numeric_column(values, name: str) -> np.ndarray:
    try:
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise DataError(f"column {name!r} is not numeric: {error}") from None


def _one_hot(values, column: ColumnSpec) -> np.ndarray:
    _check_no_missing_levels(values, column.name)
    text = values.astype(str).to_numpy()
    index = {level: j for j, level in enumerate(column.categories)}
    block = np.zeros((len(text), len(column.categories)), dtype=np.float64)
    unknown = set()
    for i, level in enumerate(text):
        j = index.get(level)
        if j is None:
            unknown.add(level)
        else:
            block[i, j] = 1.0
    if unknown:
        shown = ", ".join(repr(level) for level in sorted(unknown)[:5])
        warnings.warn(
            f"column {column.name!r} has {len(unknown)} level(s) not seen at fit time "
            f"({shown}); they are encoded as all zeros",
            UserWarning,
            stacklevel=4,
        )
    return block


@dataclass
class Standardizer:
    """Per-column mean and positive scale: ``z = (x - mean) / scale``.

    A constant column gets scale 1, so every scale is positive and no monotonic
    direction is lost or flipped.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, Z: np.ndarray) -> Standardizer:
        """Fit to the columns of ``Z``, shape ``(N, n_columns)``."""
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim == 1:
            Z = Z[:, None]
        mean = Z.mean(axis=0)
        scale = Z.std(axis=0)
        scale[~(scale > 0) | ~np.isfinite(scale)] = 1.0
        return cls(mean, scale)

    def to_dict(self) -> dict:
        """Return the mean and scale as lists of floats (which JSON round-trips exactly)."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Standardizer:
        """Rebuild a standardizer written by :meth:`to_dict`."""
        return cls(
            np.asarray(data["mean"], dtype=np.float64), np.asarray(data["scale"], dtype=np.float64)
        )
