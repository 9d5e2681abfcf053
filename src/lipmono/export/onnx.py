"""Export to ONNX, with the model's facts in the file's ``metadata_props``."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import torch

from ..errors import ExportError
from ._files import check_target, write_bytes_atomic
from .fold import FoldedNetwork, fold
from .metadata import export_metadata, metadata_strings, resolve_model

__all__ = ["ONNX_OPSET", "export_onnx"]

logger = logging.getLogger(__name__)

#: ONNX opset the exporter targets: the opset of torch's dynamo exporter library
#: (``TORCHLIB_OPSET`` in torch 2.13). The tests run it with ONNX Runtime 1.32.
ONNX_OPSET = 18

INPUT_NAME = "x"
OUTPUT_NAME = "y"


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ExportError(
            "ONNX export needs the onnx package; install it with pip install 'lipmono[onnx]'"
        ) from error
    return onnx


@contextlib.contextmanager
def _quiet_torch_onnx_logger():
    """Raise the level of the ``torch.onnx`` logger to ERROR while the block runs."""
    torch_logger = logging.getLogger("torch.onnx")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        torch_logger.setLevel(level)


def _export_proto(folded: FoldedNetwork, dynamo: bool, opset: int):
    """Run torch's ONNX exporter on ``folded`` and return the ModelProto."""
    onnx = _import_onnx()
    example = torch.zeros(2, folded.in_features, dtype=folded.dtype)
    # Both exporters warn about their own internals (deprecations, skipped
    # torchvision ops), which are unrelated to this model.
    with warnings.catch_warnings(), torch.no_grad(), _quiet_torch_onnx_logger():
        warnings.simplefilter("ignore")
        if dynamo:
            try:
                import onnxscript  # noqa: F401
            except ImportError as error:
                raise ExportError(
                    "the dynamo ONNX exporter needs onnxscript; install it with "
                    "pip install 'lipmono[onnx]', or pass dynamo=False for the legacy exporter"
                ) from error
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(
                folded, (example,), dynamo=True, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},),
                opset_version=opset, verbose=False,
            )
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(
            folded, (example,), buffer, dynamo=False, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
        )
        return onnx.load_from_string(buffer.getvalue())


def export_onnx(
    model,
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    dynamo: bool = True,
    opset: int = ONNX_OPSET,
) -> Path:
    """Write ``model`` as an ONNX file with a dynamic batch axis.

    The graph is the folded network (:func:`lipmono.export.fold`): input ``x`` of
    shape ``(batch, n_features)`` in the model's original (unscaled) units, and
    output ``y`` of shape ``(batch, n_outputs)``, both of type ``dtype``.
    ``metadata_props`` contains every key of :func:`export_metadata` as JSON under
    the prefix ``lipmono.``: ``lipmono.feature_names``, ``lipmono.monotonic_cst``,
    ``lipmono.lipschitz``, ``lipmono.norm``, ``lipmono.certificate``,
    ``lipmono.format_version`` and the rest.

    Parameters
    ----------
    model : nn.Module, estimator or path-like
        A module :func:`~lipmono.export.fold` accepts, a fitted estimator with
        ``to_torch()``, or the path of a model file.
    path : path-like
        The file to write. It is written to a temporary file in the same folder
        and renamed into place.
    dtype : torch.dtype, default=torch.float32
        The type of the weights, input and output. Estimators compute in
        float64; float32 is what most ONNX consumers expect and is faster.
    dynamo : bool, default=True
        Use torch's ``torch.export``-based exporter (needs ``onnxscript``). False
        selects the legacy TorchScript exporter, which torch deprecates.
    opset : int, default=18
        The ONNX opset version.

    Returns
    -------
    Path
        ``path``.
    """
    onnx = _import_onnx()
    check_target(path)
    module, estimator = resolve_model(model)
    folded = fold(module, dtype)
    metadata = export_metadata(module, estimator, folded)
    proto = _export_proto(folded, dynamo, opset)
    del proto.metadata_props[:]
    for key, value in metadata_strings(metadata).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "lipmono"
    proto.producer_version = str(metadata["lipmono_version"])
    proto.doc_string = (
        f"lipmono model: {metadata['n_features']} features -> {metadata['n_outputs']} "
        f"output(s), {metadata['output']}"
    )
    onnx.checker.check_model(proto, full_check=True)
    logger.info("writing ONNX model to %s", path)
    return write_bytes_atomic(path, proto.SerializeToString())

