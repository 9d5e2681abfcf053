"""Export the folded weights as a ``.npz`` file that :mod:`lipmono.numpy_inference` reads."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import ExportError
from ..numpy_inference import FORMAT_NAME, FORMAT_VERSION
from ._files import atomic_path, check_target
from .fold import fold
from .metadata import export_metadata, resolve_model
from .plan import Dense, plan_network

__all__ = ["export_numpy"]

logger = logging.getLogger(__name__)


def export_numpy(model, path: str | os.PathLike, *, dtype=np.float32) -> Path:
    """Write ``model``'s folded weights and metadata to an ``.npz`` file.

    The archive contains the arrays ``dense{i}.weight`` ``(out, in)``,
    ``dense{i}.bias`` ``(out,)`` and ``skip.weight`` ``(n_outputs, n_features)``
    if the model has a residual, plus ``metadata``: a JSON string with the
    operations in order and every key of
    :func:`~lipmono.export.metadata.export_metadata`. It contains no pickled
    objects, so ``np.load(path, allow_pickle=False)`` reads it.

    Parameters
    ----------
    model : nn.Module, estimator or path-like
        A module :func:`~lipmono.export.fold` accepts, a fitted estimator, or the
        path of a model file.
    path : path-like
        The file to write, atomically. NumPy appends ``.npz`` to a name without it,
        so give the suffix.
    dtype : numpy float dtype, default=np.float32
        The dtype of the stored weights, in which :mod:`lipmono.numpy_inference`
        computes.

    Returns
    -------
    Path
        ``path``.
    """
    target = check_target(path)
    if target.suffix != ".npz":
        raise ExportError(f"path {str(target)!r} must end in .npz, the NumPy archive suffix")
    module, estimator = resolve_model(model)
    folded = fold(module)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ExportError(f"dtype={dtype} is not a float dtype; use np.float32 or np.float64")
    plan = plan_network(folded, dtype)
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for op in plan.layers:
        if isinstance(op, Dense):
            name = f"dense{sum(1 for spec in layers if spec['op'] == 'dense')}"
            arrays[f"{name}.weight"] = op.weight
            arrays[f"{name}.bias"] = op.bias
            layers.append({"op": "dense", "weight": f"{name}.weight", "bias": f"{name}.bias"})
        elif op.kind == "group_sort":
            layers.append({"op": "group_sort", "group_size": op.group_size})
        else:
            layers.append({"op": op.kind})
    if plan.skip is not None:
        arrays["skip.weight"] = plan.skip
    metadata = export_metadata(module, estimator, folded)
    metadata.update(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        layers=layers,
        skip="skip.weight" if plan.skip is not None else None,
    )
    arrays["metadata"] = np.array(json.dumps(metadata))
    with atomic_path(target) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
    logger.info("wrote NumPy export %s", target)
    return target
