"""Training input read in batches from Parquet or CSV files larger than memory.

:func:`open_dataset` opens a file, a list of files or a folder as a
:class:`pyarrow.dataset.Dataset`. :func:`fit_stream_statistics` makes one pass over
it and returns the row count, each numeric column's mean and standard deviation
(batch moments merged with the parallel update of Chan, Golub and LeVeque, 1979)
and each categorical column's levels. :class:`StreamingBatches` then yields
fixed-size batches of tensors, sharded over the ranks of a distributed run.

Memory stays flat as the data grows: the reader holds the batch being built, the
batch being converted and what pyarrow decodes ahead, which with ``_SCAN_OPTIONS``
measured about one Parquet row group (pyarrow 26; see benchmarks/scale.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import torch
from torch import Tensor

from .distributed import DistributedContext, current_context
from .errors import DataError
from .schema import CATEGORICAL, NUMERIC, ColumnSpec, Standardizer, TableSchema

__all__ = [
    "SUFFIX_FORMATS",
    "RunningMoments",
    "StreamStatistics",
    "StreamingBatches",
    "open_dataset",
    "check_columns",
    "iter_fragments",
    "iter_exact_batches",
    "fit_stream_statistics",
    "numeric_matrix",
    "table_schema",
    "encoded_standardizer",
    "TableConverter",
]

logger = logging.getLogger(__name__)

#: File name endings and the pyarrow dataset format each one is read with.
SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
}

# Read one fragment at a time with a short read-ahead, so that memory does not grow
# with the number of files or row groups.
_SCAN_OPTIONS = {"batch_readahead": 1, "fragment_readahead": 1, "use_threads": True}

#: More distinct values than this in a categorical column is rejected by default.
DEFAULT_MAX_LEVELS = 10_000


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, file_format in SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return file_format
    return None


def _infer_format(paths: Sequence[Path]) -> str:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith((".", "_"))
            )
        else:
            files.append(path)
    formats = {_format_of(p) for p in files}
    if not files:
        raise DataError(f"no data files found in {[str(p) for p in paths]}")
    if None in formats or len(formats) > 1:
        names = sorted({p.name for p in files if _format_of(p) is None})[:5]
        raise DataError(
            f"cannot tell the file format of {[str(p) for p in paths]}: found "
            f"{sorted(f for f in formats if f)} and unrecognised files {names}; use files ending "
            f"in one of {sorted(SUFFIX_FORMATS)} or pass file_format='parquet' or 'csv'"
        )
    return formats.pop()


def open_dataset(source, *, file_format: str | None = None) -> ds.Dataset:
    """Open Parquet or CSV data without reading it.

    Parameters
    ----------
    source : str, Path, sequence of them, or pyarrow.dataset.Dataset
        A file, a folder (read recursively, skipping names that start with ``.``
        or ``_``) or a list of files.
    file_format : {"parquet", "csv"}, optional
        Defaults to the format named by the file endings (:data:`SUFFIX_FORMATS`).

    Returns
    -------
    pyarrow.dataset.Dataset
    """
    if isinstance(source, ds.Dataset):
        return source
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    paths = [Path(p) for p in sources]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DataError(f"data file or folder not found: {missing}")
    if file_format is None:
        file_format = _infer_format(paths)
    elif file_format not in ("parquet", "csv"):
        raise DataError(f"file_format={file_format!r} is not supported; use 'parquet' or 'csv'")
    names = [str(p) for p in paths]
    try:
        return ds.dataset(names[0] if len(names) == 1 else names, format=file_format)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"cannot read {names} as {file_format}: {error}") from error


def check_columns(dataset: ds.Dataset, columns: Sequence[str]) -> None:
    """Raise :class:`DataError` naming every column of ``columns`` the data lacks."""
    available = dataset.schema.names
    missing = [name for name in columns if name not in available]
    if missing:
        raise DataError(f"column(s) {missing} not found in the data; its columns are {available}")


def iter_fragments(
    dataset: ds.Dataset, *, shuffle: bool = False, seed: int = 0, epoch: int = 0
) -> list[ds.Fragment]:
    """Return the fragments to read, one per Parquet row group or per CSV file.

    With ``shuffle`` the order is permuted by a generator seeded with
    ``(seed, epoch)``, the same on every rank. Rows within a fragment keep their order.
    """
    fragments: list[ds.Fragment] = []
    for fragment in dataset.get_fragments():
        if isinstance(fragment, ds.ParquetFileFragment):
            fragments.extend(fragment.split_by_row_group())
        else:
            fragments.append(fragment)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(fragments))
        fragments = [fragments[i] for i in order]
    return fragments


def _iter_batches(
    dataset: ds.Dataset, columns: Sequence[str], batch_size: int
) -> Iterator[pa.RecordBatch]:
    # Scanning fragment by fragment keeps one row group in memory. With pyarrow 26 the
    # dataset-wide scanner read several fragments ahead in spite of these options.
    for fragment in iter_fragments(dataset):
        yield from fragment.to_batches(
            columns=list(columns), batch_size=batch_size, **_SCAN_OPTIONS
        )


def iter_exact_batches(
    fragments: Sequence[ds.Fragment], columns: Sequence[str], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """Yield record batches of exactly ``batch_size`` rows (the last may be shorter).

    Batches that pyarrow returns are cut at fragment boundaries; they are joined
    and sliced here so that every rank's batches line up. At most about two
    batches of rows are held at once.
    """
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for fragment in fragments:
        scanned = fragment.to_batches(columns=list(columns), batch_size=batch_size, **_SCAN_OPTIONS)
        for batch in scanned:
            pending.append(batch)
            pending_rows += batch.num_rows
            while pending_rows >= batch_size:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, batch_size).combine_chunks().to_batches()[0]
                rest = table.slice(batch_size)
                pending = rest.combine_chunks().to_batches() if rest.num_rows else []
                pending_rows = rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


class RunningMoments:
    """Count, mean and sum of squared deviations of columns, updated batch by batch.

    Each batch's moments are computed in float64 with two passes and merged with
    the parallel update of Chan, Golub and LeVeque (1979):

    .. math::

        n = n_a + n_b,\\quad \\delta = \\bar x_b - \\bar x_a,\\quad
        \\bar x = \\bar x_a + \\delta\\, n_b / n,\\quad
        M_2 = M_{2,a} + M_{2,b} + \\delta^2 n_a n_b / n

    which stays accurate when the mean is large compared with the spread, unlike
    summing :math:`x` and :math:`x^2`.
    """

    def __init__(self, n_columns: int) -> None:
        self.count = 0
        self.mean = np.zeros(n_columns, dtype=np.float64)
        self.m2 = np.zeros(n_columns, dtype=np.float64)

    def update(self, values: np.ndarray) -> RunningMoments:
        """Add the rows of ``values``, shape ``(N, n_columns)``; returns ``self``."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"values must have shape (N, {self.mean.shape[0]}), got {values.shape}"
            )
        if values.shape[0] == 0:
            return self
        other = RunningMoments(values.shape[1])
        other.count = values.shape[0]
        other.mean = values.mean(axis=0)
        other.m2 = ((values - other.mean) ** 2).sum(axis=0)
        return self.merge(other)

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Fold ``other``'s moments into this one (Chan's update); returns ``self``."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean.copy(), other.m2.copy()
            return self
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.count / total)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / total)
        self.count = total
        return self

    def variance(self, ddof: int = 0) -> np.ndarray:
        """Return the variance of each column with ``ddof`` degrees of freedom removed."""
        if self.count - ddof <= 0:
            raise DataError(f"variance needs more than {ddof} row(s), got {self.count}")
        return self.m2 / (self.count - ddof)


@dataclass
class StreamStatistics:
    """Row count, scaler and category levels fitted in one pass over the data."""

    #: Number of rows read.
    n_rows: int
    #: Numeric columns, in the order of ``mean`` and ``std``.
    numeric_columns: list[str]
    #: Mean of each numeric column, shape ``(n_numeric,)``.
    mean: np.ndarray
    #: Population standard deviation (ddof=0) of each numeric column, shape ``(n_numeric,)``.
    std: np.ndarray
    #: Distinct values of each categorical column (and of a classification target),
    #: as strings in sorted order, the way :class:`~lipmono.schema.TableSchema` stores them.
    levels: dict[str, list[str]] = field(default_factory=dict)
    #: Number of rows holding each level, in the order of ``levels``.
    level_counts: dict[str, list[int]] = field(default_factory=dict)


def numeric_matrix(batch: pa.RecordBatch, columns: Sequence[str], first_row: int = 0) -> np.ndarray:
    """Return ``columns`` of ``batch`` as a float64 array of shape ``(N, len(columns))``.

    Raises :class:`DataError` naming the column and the row (counted from
    ``first_row``) of the first missing, non-numeric or non-finite value.
    """
    matrix = np.empty((batch.num_rows, len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        column = batch.column(name)
        if column.null_count:
            row = first_row + int(pc.index(pc.is_null(column), True).as_py())
            raise DataError(f"column {name!r} has a missing value at row {row}; fill or drop it")
        try:
            matrix[:, j] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise DataError(
                f"column {name!r} is not numeric (type {column.type}); declare it categorical "
                f"or convert it: {error}"
            ) from None
        bad = ~np.isfinite(matrix[:, j])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"column {name!r} has the non-finite value {float(matrix[row, j])} at row "
                f"{first_row + row}; replace it with a finite number or drop the row"
            )
    return matrix


def _count_levels(
    batch: pa.RecordBatch, name: str, counts: dict[str, int], max_levels: int, first_row: int
) -> None:
    column = batch.column(name)
    if column.null_count:
        row = first_row + int(pc.index(pc.is_null(column), True).as_py())
        raise DataError(f"column {name!r} has a missing value at row {row}; fill or drop it")
    for entry in pc.value_counts(column).to_pylist():
        level = str(entry["values"])
        counts[level] = counts.get(level, 0) + int(entry["counts"])
    if len(counts) > max_levels:
        raise DataError(
            f"column {name!r} has more than max_levels={max_levels} distinct values; "
            "treat it as numeric, group rare values, or raise max_levels"
        )


def fit_stream_statistics(
    source,
    numeric_columns: Sequence[str],
    categorical_columns: Sequence[str] = (),
    *,
    batch_size: int = 65_536,
    max_levels: int = DEFAULT_MAX_LEVELS,
) -> StreamStatistics:
    """Fit the scaler and the category levels in one pass over ``source``.

    Parameters
    ----------
    source
        Anything :func:`open_dataset` accepts.
    numeric_columns : sequence of str
        Columns whose mean and standard deviation are computed.
    categorical_columns : sequence of str
        Columns (a classification target among them) whose distinct values are
        collected; each gets at most ``max_levels``.
    batch_size : int, default=65536
        Rows read at a time; memory is proportional to it.

    Returns
    -------
    StreamStatistics
        Standard deviations are population ones (ddof=0), as scikit-learn's
        ``StandardScaler`` computes them.
    """
    dataset = open_dataset(source)
    numeric_columns, categorical_columns = list(numeric_columns), list(categorical_columns)
    check_columns(dataset, numeric_columns + categorical_columns)
    moments = RunningMoments(len(numeric_columns))
    level_counts: dict[str, dict[str, int]] = {name: {} for name in categorical_columns}
    rows = 0
    columns = numeric_columns + categorical_columns
    for batch in _iter_batches(dataset, columns, batch_size):
        if numeric_columns:
            moments.update(numeric_matrix(batch, numeric_columns, first_row=rows))
        for name in categorical_columns:
            _count_levels(batch, name, level_counts[name], max_levels, rows)
        rows += batch.num_rows
    if rows == 0:
        raise DataError(f"the data in {source!r} has no rows")
    std = np.sqrt(moments.variance(ddof=0)) if numeric_columns else np.zeros(0)
    logger.info("fitted scaler and levels over %d rows in one pass", rows)
    return StreamStatistics(
        n_rows=rows,
        numeric_columns=numeric_columns,
        mean=moments.mean if numeric_columns else np.zeros(0),
        std=std,
        levels={name: sorted(counts) for name, counts in level_counts.items()},
        level_counts={
            name: [counts[level] for level in sorted(counts)]
            for name, counts in level_counts.items()
        },
    )


def table_schema(stats: StreamStatistics, feature_columns: Sequence[str]) -> TableSchema:
    """Return the schema of ``feature_columns``: categorical where ``stats`` has levels.

    Raises :class:`DataError` for a column that ``stats`` did not cover.
    """
    columns = []
    for name in feature_columns:
        if name in stats.levels:
            columns.append(ColumnSpec(name, CATEGORICAL, list(stats.levels[name])))
        elif name in stats.numeric_columns:
            columns.append(ColumnSpec(name, NUMERIC))
        else:
            raise DataError(
                f"column {name!r} was not in the statistics pass; pass it to "
                "fit_stream_statistics as a numeric or categorical column"
            )
    return TableSchema(columns)


def encoded_standardizer(stats: StreamStatistics, schema: TableSchema) -> Standardizer:
    """Return the scaler of the encoded columns of ``schema``, from ``stats`` alone.

    A one-hot column of a level seen in a fraction ``p`` of the rows has mean
    ``p`` and standard deviation ``sqrt(p (1 - p))``. The result equals
    ``Standardizer.fit`` on the whole encoded table, constant columns (scale 1)
    included, up to rounding.
    """
    means, scales = [], []
    for column in schema.columns:
        if column.kind == NUMERIC:
            j = stats.numeric_columns.index(column.name)
            means.append(stats.mean[j])
            scales.append(stats.std[j])
        else:
            for count in stats.level_counts[column.name]:
                fraction = count / stats.n_rows
                means.append(fraction)
                scales.append(math.sqrt(fraction * (1.0 - fraction)))
    scale = np.asarray(scales, dtype=np.float64)
    scale[~(scale > 0)] = 1.0
    return Standardizer(np.asarray(means, dtype=np.float64), scale)


class TableConverter:
    """Encode record batches as the estimators do: one-hot, then standardize.

    Parameters
    ----------
    schema : TableSchema
        The input columns and their levels (:func:`table_schema`).
    scaler : Standardizer
        Mean and positive scale of each encoded column (:func:`encoded_standardizer`).
    target : str, optional
        Column of the target; without it a batch converts to the features alone.
    target_transform : callable, optional
        Maps the target column (a :class:`pyarrow.Array`) to a tensor; defaults to
        float64 values of shape ``(N,)``.

    Returns (on call)
    -----------------
    tuple of Tensor
        Features of shape ``(N, n_encoded)`` in float64, then the target if any.
    """

    def __init__(
        self,
        schema: TableSchema,
        scaler: Standardizer,
        target: str | None = None,
        target_transform: Callable[[pa.Array], Tensor] | None = None,
    ) -> None:
        self.schema = schema
        self.scaler = scaler
        self.target = target
        self.target_transform = target_transform or _float_target(target)

    @property
    def columns(self) -> list[str]:
        """Columns to read from the files: the features, then the target."""
        names = self.schema.feature_names + ([self.target] if self.target else [])
        return list(dict.fromkeys(names))

    def __call__(self, batch: pa.RecordBatch) -> tuple[Tensor, ...]:
        if self.schema.categorical:
            frame = batch.select(self.schema.feature_names).to_pandas()
            encoded = self.schema.encode(frame)
        else:
            # All columns numeric: skip the DataFrame, which costs more than the training
            # step at small batches. numeric_matrix applies the same missing and finite checks.
            encoded = numeric_matrix(batch, self.schema.feature_names)
        encoded = (encoded - self.scaler.mean) / self.scaler.scale
        features = torch.from_numpy(np.ascontiguousarray(encoded))
        if self.target is None:
            return (features,)
        return features, self.target_transform(batch.column(self.target))


def _float_target(name: str | None) -> Callable[[pa.Array], Tensor]:
    def convert(column: pa.Array) -> Tensor:
        table = pa.RecordBatch.from_arrays([column], names=[name or "target"])
        return torch.from_numpy(numeric_matrix(table, [name or "target"])[:, 0])

    return convert


def _default_converter(columns: Sequence[str]) -> Callable[[pa.RecordBatch], tuple[Tensor, ...]]:
    def convert(batch: pa.RecordBatch) -> tuple[Tensor, ...]:
        return (torch.from_numpy(numeric_matrix(batch, columns)).to(torch.float32),)

    return convert


class StreamingBatches:
    """Batches of tensors read from files, sharded over the ranks of a run.

    The stream is cut into global batches of exactly ``batch_size`` rows (the
    last may be shorter) and global batch ``g`` goes to rank ``g % world_size``.
    Every rank runs :func:`len` batches per epoch, the same number, which DDP
    needs: a rank whose share is one short repeats one batch from the start of
    the stream, as :class:`torch.utils.data.DistributedSampler` pads its indices.

    Parameters
    ----------
    source
        Anything :func:`open_dataset` accepts.
    columns : sequence of str
        Columns read from the files and passed to ``converter``.
    batch_size : int
        Rows per batch on each rank.
    converter : callable, optional
        Maps a :class:`pyarrow.RecordBatch` with ``columns`` to a tuple of tensors,
        for example the features ``(N, n_features)`` and the targets ``(N,)``.
        Defaults to one float32 tensor of all ``columns``.
    context : DistributedContext, optional
        Rank and world size; defaults to the process group joined when iterating
        (:func:`lipmono.distributed.current_context`), a single process without one.
    n_rows : int, optional
        Row count if already known (:attr:`StreamStatistics.n_rows`); counted otherwise.
    shuffle : bool, default=True
        Permute the order of row groups (Parquet) or files (CSV) each epoch.
    seed : int, default=0
        Seed of that permutation; combined with the epoch.

    Notes
    -----
    Every rank reads the whole stream and converts only its own batches, so the
    file reading cost grows with the number of ranks while the conversion and
    training cost is divided among them.
    """

    def __init__(
        self,
        source,
        columns: Sequence[str],
        batch_size: int,
        *,
        converter: Callable[[pa.RecordBatch], tuple[Tensor, ...]] | None = None,
        context: DistributedContext | None = None,
        n_rows: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = open_dataset(source)
        self.columns = list(columns)
        check_columns(self.dataset, self.columns)
        self.batch_size = batch_size
        self.converter = converter or _default_converter(self.columns)
        self._context = context
        self.n_rows = int(n_rows) if n_rows is not None else self.dataset.count_rows()
        if self.n_rows < 1:
            raise DataError("the data has no rows")
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        #: Largest number of rows converted at once so far, for memory checks.
        self.max_rows_materialised = 0

    @property
    def context(self) -> DistributedContext:
        """Rank and world size the batches are sharded for."""
        return self._context or current_context()

    @property
    def n_global_batches(self) -> int:
        """Number of batches of ``batch_size`` rows in the whole stream."""
        return math.ceil(self.n_rows / self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.n_global_batches / self.context.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the fragment order of the next iteration."""
        self.epoch = int(epoch)

    def _own_and_padding(self) -> tuple[list[int], list[int]]:
        # Rank r takes global batches r, r + world, ...; positions past the end of
        # the stream wrap around to its first batches (at most one per rank).
        world, rank, total = self.context.world_size, self.context.rank, self.n_global_batches
        raw = [rank + k * world for k in range(len(self))]
        return [g for g in raw if g < total], [g % total for g in raw if g >= total]

    def iter_epoch(self, epoch: int | None = None, start_batch: int = 0) -> Iterator[tuple]:
        """Yield this rank's batches of one epoch, from its ``start_batch``-th on.

        ``start_batch`` is the data position a resumed run restarts from. Earlier
        batches are read from the files but not converted.
        """
        epoch = self.epoch if epoch is None else int(epoch)
        own, padding = self._own_and_padding()
        own_set = set(own)
        kept: dict[int, pa.RecordBatch] = {}
        position = 0
        fragments = iter_fragments(self.dataset, shuffle=self.shuffle, seed=self.seed, epoch=epoch)
        for g, batch in enumerate(iter_exact_batches(fragments, self.columns, self.batch_size)):
            if g in padding:
                kept[g] = batch
            if g in own_set:
                if position >= start_batch:
                    yield self._convert(batch)
                position += 1
        for g in padding:
            if position >= start_batch:
                yield self._convert(kept[g])
            position += 1

    def _convert(self, batch: pa.RecordBatch) -> tuple:
        if batch.num_rows > self.batch_size:
            raise RuntimeError(
                f"internal error: a batch of {batch.num_rows} rows exceeds batch_size="
                f"{self.batch_size}"
            )
        self.max_rows_materialised = max(self.max_rows_materialised, batch.num_rows)
        return self.converter(batch)

    def __iter__(self) -> Iterator[tuple]:
        return self.iter_epoch()

    def __call__(self, epoch: int) -> Iterator[tuple]:
        """Yield the batches of ``epoch``, so the object is a batch factory for
        :func:`lipmono.training.train`."""
        return self.iter_epoch(epoch)
