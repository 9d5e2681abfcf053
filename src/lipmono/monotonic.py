r"""The monotonic residual: monotonicity by construction.

.. math::

    f(x) = g(x) + \lambda \sum_i s_i x_i, \qquad s_i \in \{-1, 0, +1\}

If every partial derivative of ``g`` satisfies :math:`|\partial g / \partial x_i| \le \lambda`
(which the ``l1`` chain, and every other chain, guarantees when its bound is at most
:math:`\lambda`), then :math:`\partial f/\partial x_i = \partial g/\partial x_i + \lambda s_i`
is non-negative where :math:`s_i = +1` and non-positive where :math:`s_i = -1`, at
every input and for any weights. No training or checking is needed for the guarantee.
For vector outputs ``s`` is an ``(n_inputs, n_outputs)`` matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .certify import declared_bound
from .constraints import parse_monotonic_cst
from .errors import CertificateError
from .layers import check_budget, fold_lipschitz_layers

__all__ = ["MonotonicResidual"]

# Budgets are products of floats, so a relative slack of a few ulps is allowed.
_BUDGET_RTOL = 1e-9


class MonotonicResidual(nn.Module):
    r"""Wrap a Lipschitz module ``g`` as :math:`f(x) = g(x) + \lambda\, x S`.

    Parameters
    ----------
    module : nn.Module
        The network ``g``: a :class:`~lipmono.LipschitzMLP` or an
        :class:`nn.Sequential` of :class:`~lipmono.LipschitzLinear` layers and
        1-Lipschitz activations whose norms form a chain.
    monotonic_cst : constraint
        Direction per input (see :func:`lipmono.constraints.parse_monotonic_cst`):
        ``1``/``"increasing"``, ``-1``/``"decreasing"``, ``0``/``"none"``, a dict by
        feature name, or an ``(n_inputs, n_outputs)`` matrix.
    lipschitz : float
        :math:`\lambda`. The product of ``g``'s layer budgets must not exceed it,
        otherwise ``g`` could outweigh the linear term and :class:`CertificateError`
        is raised.
    feature_names : sequence of str, optional
        Names of the inputs, for constraints given as a dict.

    Shape
    -----
    Input ``(..., n_inputs)``, output ``(..., n_outputs)``.
    """

    def __init__(
        self,
        module: nn.Module,
        monotonic_cst,
        lipschitz: float,
        *,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.lipschitz = check_budget(lipschitz)
        inner_bound, pair = declared_bound(module)
        if inner_bound > self.lipschitz * (1 + _BUDGET_RTOL):
            raise CertificateError(
                f"the wrapped module's layer budgets multiply to {inner_bound:.6g} ({pair}), "
                f"more than the residual's lipschitz={self.lipschitz:g}; the residual could not "
                "guarantee monotonicity. Lower the module's budgets or raise lipschitz"
            )
        first = next(m for m in module.modules() if isinstance(m, nn.Linear))
        last = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
        self.in_features = first.in_features
        self.out_features = last.out_features
        self.inner = module
        self.feature_names = list(feature_names) if feature_names is not None else None
        constraints = parse_monotonic_cst(
            monotonic_cst, self.in_features, self.out_features, self.feature_names
        )
        self.register_buffer("monotonic_cst", constraints)

    def residual_matrix(self) -> Tensor:
        r"""Return :math:`\lambda S`, the ``(n_inputs, n_outputs)`` matrix of the linear term."""
        return self.lipschitz * self.monotonic_cst

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script replaces submodules in place; folding a copy first keeps
        # this module's LipschitzLinear layers intact.
        return fold_lipschitz_layers(self)

    def forward(self, x: Tensor) -> Tensor:
        residual = self.monotonic_cst.to(x.dtype) * self.lipschitz
        out = self.inner(x)
        if x.dim() == 2:
            # One fused kernel for the matmul and the sum.
            return torch.addmm(out, x, residual)
        return out + x @ residual

    def extra_repr(self) -> str:
        signs = self.monotonic_cst[:, 0].tolist() if self.out_features == 1 else "matrix"
        return f"lipschitz={self.lipschitz:g}, monotonic_cst={signs}"

