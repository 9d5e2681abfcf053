"""Run an exported lipmono model with NumPy alone.

This module imports nothing but NumPy and the standard library, so it can be
copied on its own to a machine without torch. It reads the ``.npz`` files that
:func:`lipmono.export.export_numpy` writes: the folded dense weights as
float arrays and a JSON string ``metadata`` that lists the operations in order.
The file is read with ``np.load(allow_pickle=False)``, so loading executes no
code from the file.

NOTE: ``import lipmono.numpy_inference`` runs the package's ``__init__``, which
imports torch. On a machine without torch, copy this file and import it as a
module of its own, for example ``import numpy_inference``.

Examples
--------
>>> model = load("model.npz")  # doctest: +SKIP
>>> model.predict(X).shape  # doctest: +SKIP
(1235, 1)
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "NumpyModelError",
    "NumpyModel",
    "group_sort",
    "load",
]

#: Value of ``metadata["format"]`` in every NumPy export.
FORMAT_NAME = "lipmono-numpy"

#: Newest layout of the ``.npz`` file that this module reads.
FORMAT_VERSION = 1


class NumpyModelError(ValueError):
    """A NumPy export is missing, malformed or newer than this reader, or the input is invalid."""


def group_sort(x: np.ndarray, group_size: int) -> np.ndarray:
    """Sort the last axis of ``x`` within groups, as :class:`lipmono.GroupSort` does.

    ``group_size=2`` pairs unit ``i`` with unit ``i + n/2`` and puts the maxima
    first; larger groups are consecutive runs sorted in descending order.
    """
    n = x.shape[-1]
    if group_size == 1:
        return x
    if group_size == 2:
        a, b = x[..., : n // 2], x[..., n // 2 :]
        return np.concatenate((np.maximum(a, b), np.minimum(a, b)), axis=-1)
    grouped = x.reshape(*x.shape[:-1], n // group_size, group_size)
    # Negation is exact in floating point, so this is a descending sort.
    return (-np.sort(-grouped, axis=-1)).reshape(x.shape)


class NumpyModel:
    """A folded lipmono network evaluated with NumPy.

    Attributes
    ----------
    metadata : dict
        Everything the export stored: ``feature_names``, ``monotonic_cst``,
        ``lipschitz``, ``norm``, ``certificate``, ``output`` and the layer list.
    feature_names : list of str
        The input columns, in order.
    n_features, n_outputs : int
        Input and output widths.
    dtype : numpy dtype
        The dtype of the weights; inputs are converted to it.
    """

    def __init__(self, layers: list, skip: np.ndarray | None, metadata: dict) -> None:
        self.layers = layers
        self.skip = skip
        self.metadata = metadata
        self.feature_names = list(metadata["feature_names"])
        self.n_features = int(metadata["n_features"])
        self.n_outputs = int(metadata["n_outputs"])
        self.dtype = next(op[1].dtype for op in layers if op[0] == "dense")

    def predict(self, X) -> np.ndarray:
        """Return the model's raw output for each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (N, n_features)
            Rows in the model's original (unscaled) units, columns in the order
            of ``feature_names``.

        Returns
        -------
        ndarray of shape (N, n_outputs)
            The output in the weights' dtype: a logit for a classifier, the
            predicted value for a regressor.
        """
        x = np.asarray(X, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise NumpyModelError(
                f"X has shape {x.shape}, expected (N, {self.n_features}) with the columns "
                f"{', '.join(self.feature_names)}; reshape a single row with X.reshape(1, -1)"
            )
        bad = ~np.isfinite(x)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise NumpyModelError(
                f"X[{row}, {column}] ({self.feature_names[column]}) is {float(x[row, column])}; "
                "the model needs finite inputs, so impute or drop such rows first"
            )
        h = x
        for op in self.layers:
            if op[0] == "dense":
                h = h @ op[1].T + op[2]
            elif op[0] == "group_sort":
                h = group_sort(h, op[1])
            else:
                h = np.maximum(h, 0)
        if self.skip is not None:
            h = h + x @ self.skip.T
        return h


def _array(archive, key: str, path: str, ndim: int) -> np.ndarray:
    if key not in archive.files:
        raise NumpyModelError(f"{path} has no array {key!r}; the file is incomplete")
    try:
        value = archive[key]
    except ValueError as error:
        # np.load raises ValueError for object arrays when allow_pickle is False.
        raise NumpyModelError(f"{path}: array {key!r} cannot be read ({error})") from error
    if value.ndim != ndim or value.dtype.kind != "f":
        raise NumpyModelError(
            f"{path}: array {key!r} has dtype {value.dtype} and {value.ndim} dimensions, "
            f"expected a float array with {ndim}"
        )
    return value


def _read_metadata(archive, path: str) -> dict:
    if "metadata" not in archive.files:
        raise NumpyModelError(f"{path} has no 'metadata' entry; it is not a lipmono NumPy export")
    try:
        text = archive["metadata"]
    except ValueError as error:
        # np.load raises ValueError for object arrays when allow_pickle is False.
        raise NumpyModelError(f"{path}: the metadata cannot be read ({error})") from error
    try:
        metadata = json.loads(str(text))
    except ValueError as error:
        raise NumpyModelError(f"{path}: the metadata is not valid JSON ({error})") from error
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise NumpyModelError(
            f"{path} is not a lipmono NumPy export (format is not {FORMAT_NAME!r})"
        )
    version = metadata.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise NumpyModelError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise NumpyModelError(
            f"{path} has format_version {version}, newer than {FORMAT_VERSION}, the newest "
            "this reader supports; use the numpy_inference.py of the lipmono that wrote it"
        )
    for key in ("layers", "feature_names", "n_features", "n_outputs"):
        if key not in metadata:
            raise NumpyModelError(
                f"{path}: the metadata is missing {key!r}; the file is incomplete"
            )
    return metadata


def _read_layers(archive, metadata: dict, path: str) -> tuple[list, np.ndarray | None]:
    layers: list = []
    width = int(metadata["n_features"])
    for index, spec in enumerate(metadata["layers"]):
        op = spec.get("op") if isinstance(spec, dict) else None
        if op == "dense":
            weight = _array(archive, spec["weight"], path, 2)
            bias = _array(archive, spec["bias"], path, 1)
            if weight.shape[1] != width or bias.shape != (weight.shape[0],):
                raise NumpyModelError(
                    f"{path}: layer {index} has weight {weight.shape} and bias {bias.shape} "
                    f"but receives {width} inputs; the weights do not match the metadata"
                )
            layers.append(("dense", weight, bias))
            width = weight.shape[0]
        elif op == "group_sort":
            size = spec.get("group_size")
            if not isinstance(size, int) or size < 1 or width % size:
                raise NumpyModelError(
                    f"{path}: layer {index} has an invalid group_size {size!r} "
                    f"for a width of {width}"
                )
            layers.append(("group_sort", size))
        elif op == "relu":
            layers.append(("relu",))
        else:
            raise NumpyModelError(f"{path}: layer {index} has the unknown operation {op!r}")
    if not any(op[0] == "dense" for op in layers) or width != int(metadata["n_outputs"]):
        raise NumpyModelError(
            f"{path}: the layers end with width {width} but n_outputs is {metadata['n_outputs']}"
        )
    skip = None
    if metadata.get("skip"):
        skip = _array(archive, metadata["skip"], path, 2)
        expected = (int(metadata["n_outputs"]), int(metadata["n_features"]))
        if skip.shape != expected:
            raise NumpyModelError(f"{path}: the skip weight has shape {skip.shape}, not {expected}")
    return layers, skip


def load(path: str | os.PathLike) -> NumpyModel:
    """Load a NumPy export written by :func:`lipmono.export.export_numpy`.

    Raises
    ------
    NumpyModelError
        If the file is missing, not a lipmono NumPy export, truncated, from a
        newer format version, or its arrays do not match its metadata.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NumpyModelError(f"model file {path!r} not found")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise NumpyModelError(
            f"{path} cannot be read as a .npz archive ({error}); the file is truncated or "
            "not a lipmono NumPy export"
        ) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise NumpyModelError(f"{path} contains a single array, not a lipmono NumPy export (.npz)")
    try:
        with archive:
            metadata = _read_metadata(archive, path)
            layers, skip = _read_layers(archive, metadata, path)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise NumpyModelError(
            f"{path}: an array cannot be read ({error}); the file is truncated"
        ) from error
    return NumpyModel(layers, skip, metadata)
