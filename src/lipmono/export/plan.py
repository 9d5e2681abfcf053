"""A folded network as a list of NumPy operations, for the C and NumPy exports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from ..errors import ExportError
from ..layers import GroupSort
from .fold import FoldedNetwork

__all__ = ["Dense", "Activation", "NetworkPlan", "plan_network"]


@dataclass(frozen=True, eq=False)
class Dense:
    """A dense layer ``y = weight @ x + bias``; ``weight`` has shape ``(out, in)``."""

    weight: np.ndarray
    bias: np.ndarray

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class Activation:
    """``"group_sort"`` with its ``group_size``, or ``"relu"`` (``group_size`` unused)."""

    kind: str
    group_size: int = 0


@dataclass(frozen=True)
class NetworkPlan:
    """The layers of a folded network in order, and the skip weight ``(out, in)`` or None."""

    layers: list = field(default_factory=list)
    skip: np.ndarray | None = None

    @property
    def in_features(self) -> int:
        return next(op for op in self.layers if isinstance(op, Dense)).in_features

    @property
    def out_features(self) -> int:
        return [op for op in self.layers if isinstance(op, Dense)][-1].out_features

    @property
    def max_width(self) -> int:
        """The widest layer output, which sizes the C export's row buffers."""
        return max(op.out_features for op in self.layers if isinstance(op, Dense))


def plan_network(folded: FoldedNetwork, dtype=np.float32) -> NetworkPlan:
    """Return the operations of ``folded`` with its weights as ``dtype`` arrays."""
    layers: list = []
    for layer in folded.body:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().cpu().double().numpy().astype(dtype)
            if layer.bias is None:
                bias = np.zeros(layer.out_features, dtype=dtype)
            else:
                bias = layer.bias.detach().cpu().double().numpy().astype(dtype)
            layers.append(Dense(weight, bias))
        elif isinstance(layer, GroupSort):
            layers.append(Activation("group_sort", layer.group_size))
        elif isinstance(layer, nn.ReLU):
            layers.append(Activation("relu"))
        else:
            raise ExportError(f"a folded network cannot contain {type(layer).__name__}")
    skip = None
    if folded.skip is not None:
        skip = folded.skip.weight.detach().cpu().double().numpy().astype(dtype)
    return NetworkPlan(layers, skip)
