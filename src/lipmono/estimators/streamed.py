"""Fitting an estimator on Parquet or CSV data read in batches (``fit_stream``).

One pass over the data fits the scaler and the category levels
(:func:`lipmono.streaming.fit_stream_statistics`). Training then reads
:class:`~lipmono.streaming.StreamingBatches` each epoch, so memory does not grow
with the number of rows, except for the validation set (see
:func:`split_validation`), which is held in memory as in :meth:`fit`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import torch

from ..errors import DataError, ParameterError
from ..streaming import (
    TableConverter,
    check_columns,
    encoded_standardizer,
    fit_stream_statistics,
    iter_fragments,
    open_dataset,
    table_schema,
)

__all__ = [
    "is_categorical_type",
    "feature_columns",
    "split_validation",
    "read_validation",
    "stream_fingerprint",
    "open_and_describe",
    "distinct_values",
    "value_type",
]

logger = logging.getLogger(__name__)


def is_categorical_type(data_type: pa.DataType) -> bool:
    """Return whether a column of ``data_type`` is one-hot encoded.

    String and dictionary columns are, as object and string columns of a pandas
    DataFrame are in :meth:`fit`. Every other column is read as numbers.
    """
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_dictionary(data_type)
    )


def feature_columns(dataset: ds.Dataset, target: str, features: Sequence[str] | None) -> list[str]:
    """Return the feature columns: ``features``, or every column but ``target``."""
    check_columns(dataset, [target])
    if features is None:
        names = [name for name in dataset.schema.names if name != target]
    else:
        names = list(features)
        if target in names:
            raise DataError(f"the target {target!r} is also listed in features; remove it there")
        check_columns(dataset, names)
    if not names:
        raise DataError(f"the data has no feature columns besides the target {target!r}")
    return names


def split_validation(
    dataset: ds.Dataset, fraction: float | None
) -> tuple[ds.Dataset, list[ds.Fragment], int]:
    """Split ``dataset`` into training data and validation fragments.

    The validation set is the last fragments (Parquet row groups, or CSV files)
    in file order, added until they hold at least ``fraction`` of the rows. At
    least one fragment stays for training, so data in a single fragment gets no
    validation set. The split does not depend on the seed or the epoch.

    Returns
    -------
    tuple
        The training dataset, the validation fragments and their row count.
    """
    fragments = iter_fragments(dataset)
    if fraction is None or len(fragments) < 2:
        return dataset, [], 0
    counts = [_fragment_rows(fragment) for fragment in fragments]
    required_rows = math.ceil(fraction * sum(counts))
    n_validation, cut = 0, len(fragments)
    while cut > 1 and n_validation < required_rows:
        cut -= 1
        n_validation += counts[cut]
    training = ds.FileSystemDataset(
        fragments[:cut], dataset.schema, dataset.format, filesystem=dataset.filesystem
    )
    return training, fragments[cut:], n_validation


def _fragment_rows(fragment: ds.Fragment) -> int:
    # count_rows() of a Parquet fragment cut to one row group counts the whole file
    # (pyarrow 26), so the row group metadata is read instead.
    if isinstance(fragment, ds.ParquetFileFragment):
        return sum(row_group.num_rows for row_group in fragment.row_groups)
    return fragment.count_rows()


def read_validation(fragments: Sequence[ds.Fragment], converter: TableConverter, device):
    """Read the validation fragments into tensors ``(X_val, y_val)`` on ``device``."""
    parts = [
        converter(batch)
        for fragment in fragments
        for batch in fragment.to_batches(columns=converter.columns)
        if batch.num_rows
    ]
    X = torch.cat([features for features, _ in parts]).to(device)
    y = torch.cat([target for _, target in parts]).to(device)
    return X, y


def stream_fingerprint(stats, columns: Sequence[str], params: dict, seed: int) -> str:
    """Return a digest of the fitted statistics, the columns, the parameters and the seed.

    A checkpoint stores it, so resuming with other data or settings is rejected.
    The rows themselves are not hashed: data with the same columns, row count,
    means, standard deviations and level counts is taken as the same.
    """
    digest = hashlib.sha256()
    digest.update(repr(list(columns)).encode())
    digest.update(str(stats.n_rows).encode())
    digest.update(np.ascontiguousarray(stats.mean).tobytes())
    digest.update(np.ascontiguousarray(stats.std).tobytes())
    digest.update(repr(sorted(stats.level_counts.items())).encode())
    digest.update(repr(sorted(stats.levels.items())).encode())
    digest.update(repr(sorted(params.items())).encode())
    digest.update(str(seed).encode())
    return digest.hexdigest()


def open_and_describe(estimator, source, target: str, features, file_format, max_levels: int):
    """Open ``source`` and fit its statistics; return what ``fit_stream`` needs.

    Returns
    -------
    tuple
        The dataset, the feature names, the statistics, the schema and the scaler.
    """
    if not isinstance(target, str):
        raise ParameterError(f"target must be the name of a column, got {target!r}")
    dataset = open_dataset(source, file_format=file_format)
    names = feature_columns(dataset, target, features)
    types = {field.name: field.type for field in dataset.schema}
    categorical = [name for name in names if is_categorical_type(types[name])]
    numeric = [name for name in names if name not in categorical]
    numeric += estimator._stream_target_numeric(target)
    stats = fit_stream_statistics(dataset, numeric, categorical, max_levels=max_levels)
    schema = table_schema(stats, names)
    return dataset, names, stats, schema, encoded_standardizer(stats, schema)


def distinct_values(
    dataset: ds.Dataset, column: str, max_values: int, *, stop_above: int | None = None
) -> list:
    """Return the distinct values of ``column``, reading that column alone.

    With ``stop_above``, return as soon as more than that many values are found.
    Raises :class:`DataError` at the first missing value, or when there are more
    than ``max_values`` distinct values.
    """
    values: set = set()
    rows = 0
    for fragment in iter_fragments(dataset):
        for batch in fragment.to_batches(columns=[column]):
            array = batch.column(0)
            if array.null_count:
                row = rows + int(pc.index(pc.is_null(array), True).as_py())
                raise DataError(
                    f"column {column!r} has a missing value at row {row}; fill or drop it"
                )
            values.update(pc.unique(array).to_pylist())
            rows += batch.num_rows
            if stop_above is not None and len(values) > stop_above:
                return sorted(values)
            if len(values) > max_values:
                raise DataError(
                    f"column {column!r} has more than {max_values} distinct values; a class "
                    "target needs fewer, and a continuous target needs MonotonicRegressor"
                )
    return sorted(values)


def value_type(dataset: ds.Dataset, column: str) -> pa.DataType:
    """Return the type of ``column``'s values, the value type for a dictionary column."""
    data_type = dataset.schema.field(column).type
    return data_type.value_type if pa.types.is_dictionary(data_type) else data_type
