r"""Fold a lipmono network into plain torch layers with the effective weights written in.

A model ``Sequential(Standardize(m, s), f, OutputAffine(c, d))`` with the monotonic
residual :math:`f(z) = g(z) + z R` (:math:`R = \lambda S`) computes

.. math::

    y = \bigl(g((x - m) / s) + ((x - m) / s) R\bigr) \odot c + d .

Every step around ``g``'s nonlinear part is affine, so it can be written into
``g``'s first and last dense layers and one skip layer:

* first layer: :math:`W_1 \leftarrow W_1 \operatorname{diag}(1/s)`,
  :math:`b_1 \leftarrow b_1 - W_1 (m / s)`;
* skip layer (no bias): weight :math:`\operatorname{diag}(c) R^\top \operatorname{diag}(1/s)`;
* last layer: :math:`W_L \leftarrow \operatorname{diag}(c) W_L`,
  :math:`b_L \leftarrow c \odot (b_L - (m/s) R) + d`.

The folded weights are computed in float64 and rounded once to the model's dtype,
so outputs agree with the original to float rounding. Without the two affine
maps and the residual (a :class:`~lipmono.LipschitzMLP`) the folded network runs
the same operations on the same weights and its outputs are bitwise equal.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from ..affine import OutputAffine, Standardize
from ..errors import ExportError
from ..layers import GroupSort, LipschitzLinear
from ..monotonic import MonotonicResidual

__all__ = ["FoldedNetwork", "fold", "split_affine"]

logger = logging.getLogger(__name__)

# Layer types a foldable network may contain. Identity and eval-mode dropout are
# left out of the folded network because they compute nothing at inference.
_SUPPORTED = "LipschitzLinear, nn.Linear, GroupSort, nn.ReLU, nn.Identity, nn.Dropout"


class FoldedNetwork(nn.Module):
    """A feed-forward network of plain layers plus an optional linear skip from the input.

    ``forward(x) = body(x) + skip(x)``. ``body`` contains only :class:`torch.nn.Linear`,
    :class:`~lipmono.GroupSort` and :class:`torch.nn.ReLU`; ``skip`` is a bias-free
    :class:`torch.nn.Linear` or ``None``. The module has no parametrizations, so
    :func:`torch.jit.script`, :func:`torch.export.export` and the ONNX exporters
    take it as it is (GroupSort switches to plain tensor operations while traced).

    Shape
    -----
    Input ``(N, in_features)``, output ``(N, out_features)``.
    """

    # TorchScript compiles every property not listed here, and it cannot compile next().
    __jit_unused_properties__ = ["dtype"]

    def __init__(self, body: nn.Sequential, skip: nn.Linear | None = None) -> None:
        super().__init__()
        dense = [m for m in body if isinstance(m, nn.Linear)]
        if not dense:
            raise ExportError("a folded network needs at least one nn.Linear layer")
        self.body = body
        self.skip = skip
        self.in_features = dense[0].in_features
        self.out_features = dense[-1].out_features

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights, which inputs must have."""
        return next(self.parameters()).dtype

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        if self.skip is not None:
            y = y + self.skip(x)
        return y


def split_affine(module: nn.Module) -> tuple[Standardize | None, nn.Module, OutputAffine | None]:
    """Split ``Sequential(Standardize, core, OutputAffine)`` into its three parts.

    Either affine map may be missing. A module that is not such a sequence is
    returned as the core with ``None`` for both maps.
    """
    if not isinstance(module, nn.Sequential):
        return None, module, None
    parts = list(module)
    standardize = parts.pop(0) if parts and isinstance(parts[0], Standardize) else None
    output = parts.pop() if parts and isinstance(parts[-1], OutputAffine) else None
    if len(parts) == 1 and (standardize is not None or output is not None):
        return standardize, parts[0], output
    if standardize is None and output is None:
        return None, module, None
    raise ExportError(
        f"expected Sequential(Standardize, model, OutputAffine) with one model in the middle, "
        f"got {len(parts)} modules between the affine maps: "
        f"{', '.join(type(p).__name__ for p in parts) or 'none'}"
    )


def _flatten(module: nn.Module) -> list[nn.Module]:
    """Return the layers of a feed-forward network in order, without no-op modules."""
    if isinstance(module, nn.Sequential):
        return [layer for child in module for layer in _flatten(child)]
    if isinstance(getattr(module, "net", None), nn.Sequential) and hasattr(module, "chain"):
        return _flatten(module.net)
    if isinstance(module, (LipschitzLinear, nn.Linear, GroupSort, nn.ReLU)):
        return [module]
    if isinstance(module, nn.Identity) or (isinstance(module, nn.Dropout) and not module.training):
        return []
    if isinstance(module, nn.Dropout):
        raise ExportError("a Dropout layer is in training mode; call model.eval() before export")
    raise ExportError(
        f"cannot fold a module of type {type(module).__name__}; a foldable network is built "
        f"from {_SUPPORTED}, optionally inside MonotonicResidual and between Standardize and "
        "OutputAffine"
    )


def _effective(layer: nn.Linear) -> tuple[Tensor, Tensor | None]:
    with torch.no_grad():
        if isinstance(layer, LipschitzLinear):
            weight = layer.effective_weight()
        else:
            weight = layer.weight.detach().clone()
        bias = None if layer.bias is None else layer.bias.detach().clone()
    return weight, bias


def _plain_linear(weight: Tensor, bias: Tensor | None, dtype: torch.dtype) -> nn.Linear:
    out_features, in_features = weight.shape
    layer = nn.Linear(
        in_features, out_features, bias=bias is not None, device=weight.device, dtype=dtype
    )
    with torch.no_grad():
        layer.weight.copy_(weight.to(dtype))
        if bias is not None:
            layer.bias.copy_(bias.to(dtype))
    layer.requires_grad_(False)
    return layer


def _check_finite(name: str, tensor: Tensor | None) -> None:
    if tensor is not None and not bool(torch.isfinite(tensor).all()):
        raise ExportError(
            f"{name} contains non-finite values (NaN or inf), so the model cannot be exported. "
            "Retrain or reload it from a valid model file"
        )


def fold(module, dtype: torch.dtype | None = None) -> FoldedNetwork:
    """Fold a lipmono network into a :class:`FoldedNetwork` with the same outputs.

    Parameters
    ----------
    module : nn.Module, estimator or path-like
        A :class:`~lipmono.MonotonicResidual` (or :class:`~lipmono.MonotonicMLP`),
        a :class:`~lipmono.LipschitzMLP`, an :class:`nn.Sequential` of dense layers
        and activations, or any of these between
        :class:`~lipmono.Standardize` and :class:`~lipmono.OutputAffine` in an
        :class:`nn.Sequential`. A fitted estimator or a model file path is folded
        through its ``to_torch()`` module.
    dtype : torch.dtype, optional
        The dtype of the folded weights; the module's own by default. Folding
        computes in float64 and rounds once to this dtype.

    Returns
    -------
    FoldedNetwork
        In eval mode, with gradients disabled, on the module's device.

    Raises
    ------
    ExportError
        For a layer type that cannot be folded, a dropout layer in training mode,
        non-finite weights, or an affine map that has no dense layer to fold into.
    """
    if not isinstance(module, nn.Module):
        # Imported here: metadata.py imports this module.
        from .metadata import resolve_model

        module, _ = resolve_model(module)
    standardize, core, output = split_affine(module)
    if isinstance(core, MonotonicResidual):
        inner, residual = core.inner, core.residual_matrix().detach()
    else:
        inner, residual = core, None
    layers = _flatten(inner)
    dense_index = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear)]
    if not dense_index:
        raise ExportError(f"{type(core).__name__} has no dense layer to fold")
    if dtype is None:
        dtype = layers[dense_index[0]].weight.dtype
    elif not dtype.is_floating_point:
        raise ExportError(f"dtype={dtype} is not a float dtype; use torch.float32 or torch.float64")
    needs_first = standardize is not None
    needs_last = output is not None or (standardize is not None and residual is not None)
    if needs_first and dense_index[0] != 0:
        raise ExportError(
            "the network starts with an activation, so Standardize has no dense layer to "
            "fold into; start the network with a dense layer"
        )
    if needs_last and dense_index[-1] != len(layers) - 1:
        raise ExportError(
            "the network ends with an activation, so OutputAffine or the residual's offset "
            "has no dense layer to fold into; end the network with a dense layer"
        )

    weights = {i: _effective(layers[i]) for i in dense_index}
    for i, (weight, bias) in weights.items():
        _check_finite(f"layer {i} weight", weight)
        _check_finite(f"layer {i} bias", bias)
    skip_weight = None if residual is None else residual.T.clone()  # (out, in)

    if standardize is not None:
        mean = standardize.mean.detach().to(torch.float64)
        inv_scale = 1.0 / standardize.scale.detach().to(torch.float64)
        weight, bias = weights[0]
        weight64 = weight.to(torch.float64)
        shift = -(weight64 @ (mean * inv_scale))
        bias64 = shift if bias is None else bias.to(torch.float64) + shift
        weights[0] = (weight64 * inv_scale, bias64)
        if skip_weight is not None:
            skip64 = skip_weight.to(torch.float64)
            # The residual's offset -(m/s) R is constant, so it joins the last bias.
            offset = -(skip64 @ (mean * inv_scale))
            skip_weight = skip64 * inv_scale
            last = dense_index[-1]
            weight, bias = weights[last]
            bias64 = offset if bias is None else bias.to(torch.float64) + offset
            weights[last] = (weight, bias64)

    if output is not None:
        out_scale = output.scale.detach().to(torch.float64)
        out_shift = output.shift.detach().to(torch.float64)
        last = dense_index[-1]
        weight, bias = weights[last]
        bias64 = out_shift if bias is None else bias.to(torch.float64) * out_scale + out_shift
        weights[last] = (weight.to(torch.float64) * out_scale[:, None], bias64)
        if skip_weight is not None:
            skip_weight = skip_weight.to(torch.float64) * out_scale[:, None]

    body = []
    for i, layer in enumerate(layers):
        if i in weights:
            body.append(_plain_linear(*weights[i], dtype))
        elif isinstance(layer, GroupSort):
            body.append(GroupSort(layer.group_size))
        else:
            body.append(nn.ReLU())
    skip = None if skip_weight is None else _plain_linear(skip_weight, None, dtype)
    folded = FoldedNetwork(nn.Sequential(*body), skip).eval()
    logger.debug("folded %s into %d layers", type(core).__name__, len(body))
    return folded
