"""Export lipmono models for deployment: folded torch, ONNX, C99 and NumPy.

Every format starts from :func:`fold`, which writes the effective weights, the
input standardization, the monotonic residual and the output map into plain
dense layers. Each export stores the model's facts (feature names, monotonic
constraints, lambda, norm chain, certified bound, format version) beside the
weights.
"""

from ..errors import ExportError
from .c import export_c, render_c
from .fold import FoldedNetwork, fold, split_affine
from .metadata import EXPORT_FORMAT_VERSION, export_metadata, folded_bound
from .numpy import export_numpy
from .onnx import ONNX_OPSET, export_onnx

__all__ = [
    "EXPORT_FORMAT_VERSION",
    "ONNX_OPSET",
    "ExportError",
    "FoldedNetwork",
    "export_c",
    "export_metadata",
    "export_numpy",
    "export_onnx",
    "fold",
    "folded_bound",
    "render_c",
    "split_affine",
]
