"""Positive per-feature affine maps: input standardization and output rescaling.

Both keep every monotonic direction because their scales are positive: a
negative scale would flip a constraint, so it is rejected rather than applied.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .errors import DataError

__all__ = ["Standardize", "OutputAffine"]


def _positive_vector(values, name: str) -> Tensor:
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1)
    bad = ~torch.isfinite(tensor) | (tensor <= 0)
    if bad.any():
        index = int(bad.nonzero()[0])
        raise DataError(
            f"{name}[{index}]={float(tensor[index])!r} must be positive and finite: a zero or "
            "negative scale would lose or flip a monotonic direction"
        )
    return tensor


class Standardize(nn.Module):
    """Map inputs to ``(x - mean) / scale`` with a positive ``scale`` per feature.

    Shape: input ``(..., n_features)``, output the same.
    """

    def __init__(self, mean, scale) -> None:
        super().__init__()
        scale = _positive_vector(scale, "scale")
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float64)).reshape(-1)
        if mean.shape != scale.shape:
            raise DataError(f"mean has {mean.numel()} entries but scale has {scale.numel()}")
        self.register_buffer("mean", mean.to(torch.get_default_dtype()))
        self.register_buffer("scale", scale.to(torch.get_default_dtype()))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.scale.to(x.dtype)


class OutputAffine(nn.Module):
    """Map outputs to ``y * scale + shift`` with a positive ``scale`` per output.

    Shape: input ``(..., n_outputs)``, output the same.
    """

    def __init__(self, scale, shift) -> None:
        super().__init__()
        scale = _positive_vector(scale, "scale")
        shift = torch.as_tensor(np.asarray(shift, dtype=np.float64)).reshape(-1)
        if shift.shape != scale.shape:
            raise DataError(f"shift has {shift.numel()} entries but scale has {scale.numel()}")
        self.register_buffer("scale", scale.to(torch.get_default_dtype()))
        self.register_buffer("shift", shift.to(torch.get_default_dtype()))

    def forward(self, y: Tensor) -> Tensor:
        return y * self.scale.to(y.dtype) + self.shift.to(y.dtype)
