"""Builders for Lipschitz and monotonic multilayer perceptrons."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from . import functional as F_lip
from .errors import BudgetError, ParameterError
from .layers import GroupSort, LipschitzLinear, check_budget, fold_lipschitz_layers
from .monotonic import MonotonicResidual

__all__ = ["split_budget", "LipschitzMLP", "MonotonicMLP"]


def split_budget(lipschitz: float, n_layers: int, layer_lipschitz=None) -> list[float]:
    """Return per-layer budgets whose product is ``lipschitz``.

    Without ``layer_lipschitz`` each of the ``n_layers`` layers gets
    ``lipschitz ** (1 / n_layers)``. Explicit budgets must be positive, one per
    layer, and multiply to ``lipschitz`` (relative tolerance 1e-6); otherwise
    :class:`~lipmono.errors.BudgetError` shows their product.
    """
    lipschitz = check_budget(lipschitz)
    if layer_lipschitz is None:
        return [lipschitz ** (1.0 / n_layers)] * n_layers
    budgets = [
        check_budget(value, f"layer_lipschitz[{i}]") for i, value in enumerate(layer_lipschitz)
    ]
    if len(budgets) != n_layers:
        raise BudgetError(
            f"layer_lipschitz has {len(budgets)} entries but the network has "
            f"{n_layers} dense layers; give one budget per layer"
        )
    product = math.prod(budgets)
    if not math.isclose(product, lipschitz, rel_tol=1e-6):
        raise BudgetError(
            f"layer_lipschitz={budgets} multiplies to {product:.6g}, not lipschitz={lipschitz:g}; "
            "give per-layer budgets whose product equals lipschitz"
        )
    return budgets


def _check_sizes(in_features, hidden_sizes, out_features, group_size) -> list[int]:
    if isinstance(hidden_sizes, int):
        hidden_sizes = [hidden_sizes]
    sizes = [in_features, *hidden_sizes, out_features]
    names = ["in_features"] + [f"hidden_sizes[{i}]" for i in range(len(hidden_sizes))]
    names.append("out_features")
    for name, size in zip(names, sizes, strict=True):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ParameterError(f"{name} must be a positive integer, got {size!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ParameterError(f"group_size must be a positive integer, got {group_size!r}")
    for i, size in enumerate(hidden_sizes):
        if size % group_size != 0:
            raise ParameterError(
                f"hidden_sizes[{i}]={size} is not divisible by group_size={group_size}; "
                f"GroupSort sorts groups of {group_size}, so use a multiple of {group_size}"
            )
    return sizes


class LipschitzMLP(nn.Module):
    r"""Multilayer perceptron with a certified Lipschitz bound.

    Dense layers alternate with GroupSort. Each dense layer's operator norm is
    bounded in the norm pair its position in the chain requires, and the layer
    budgets multiply to ``lipschitz``, so

    .. math::

        \|g(x) - g(y)\|_q \le \lambda \|x - y\|_p

    for the chain's pair :math:`(p, q)`:

    ==========  ==========================================  ===============
    ``norm``    layers                                      bound holds in
    ==========  ==========================================  ===============
    ``l1``      ``l1->linf`` first, ``linf->linf`` after     l1 -> linf
    ``linf``    ``linf->linf``                               linf -> linf
    ``l2``      ``l2->l2``                                   l2 -> l2
    ``l1->l1``  ``l1->l1``                                   l1 -> l1
    ==========  ==========================================  ===============

    The ``l1`` chain bounds every partial derivative by :math:`\lambda`, exactly what
    :class:`~lipmono.MonotonicResidual` needs, and is the least restrictive chain
    that does.

    Parameters
    ----------
    in_features : int
        Number of inputs.
    hidden_sizes : int or sequence of int
        Width of each hidden layer; each must be divisible by ``group_size``.
    out_features : int, default=1
        Number of outputs.
    lipschitz : float, default=1.0
        The model's bound :math:`\lambda`.
    norm : {"l1", "linf", "l2", "l1->l1"}, default="l1"
        The chain, named by its input norm.
    group_size : int, default=2
        GroupSort group size; 2 is MaxMin.
    layer_lipschitz : sequence of float, optional
        Budget of each dense layer; must multiply to ``lipschitz``. Defaults to
        ``lipschitz ** (1 / n_layers)`` each.
    always_normalize : bool, default=False
        Scale each weight unit to its budget even when it is under it.
    bias : bool, default=True
        Whether dense layers learn a bias.
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: int | Sequence[int],
        out_features: int = 1,
        *,
        lipschitz: float = 1.0,
        norm: str = "l1",
        group_size: int = 2,
        layer_lipschitz: Sequence[float] | None = None,
        always_normalize: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        sizes = _check_sizes(in_features, hidden_sizes, out_features, group_size)
        n_layers = len(sizes) - 1
        layer_norms = F_lip.chain_norms(norm, n_layers)
        budgets = split_budget(lipschitz, n_layers, layer_lipschitz)
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers.append(
                LipschitzLinear(
                    sizes[i], sizes[i + 1], bias=bias, lipschitz=budgets[i],
                    norm=layer_norms[i], always_normalize=always_normalize,
                )
            )
            if i < n_layers - 1:
                layers.append(GroupSort(group_size))
        self.net = nn.Sequential(*layers)
        self.in_features = in_features
        self.out_features = out_features
        self.hidden_sizes = sizes[1:-1]
        self.lipschitz = float(lipschitz)
        self.chain = norm
        self.group_size = group_size
        self.layer_lipschitz = budgets

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script replaces submodules in place; folding a copy first keeps
        # this module's LipschitzLinear layers intact.
        return fold_lipschitz_layers(self)

    def forward(self, x):
        return self.net(x)


class MonotonicMLP(MonotonicResidual):
    r"""A :class:`LipschitzMLP` wrapped in a :class:`MonotonicResidual`.

    :math:`f(x) = g(x) + \lambda \sum_i s_i x_i` where ``g`` is a
    :class:`LipschitzMLP` of bound ``lipschitz``: monotonic in every constrained
    input by construction, and :math:`2\lambda`-Lipschitz at most in
    :math:`\ell_1 \to \ell_\infty` (:func:`lipmono.lipschitz_bound` reports the
    figure from the actual weights).

    Parameters
    ----------
    in_features, hidden_sizes, out_features
        As in :class:`LipschitzMLP`.
    monotonic_cst : constraint
        Direction per input: -1/0/1 by position, ``"increasing"``,
        ``"decreasing"``, ``"none"``, a dict by feature name (with
        ``feature_names``), or an ``(n_inputs, n_outputs)`` matrix.
    lipschitz : float, default=1.0
        :math:`\lambda`.
    feature_names : sequence of str, optional
        Input names, for a dict of constraints.
    **kwargs
        Passed to :class:`LipschitzMLP` (``norm``, ``group_size``,
        ``layer_lipschitz``, ``always_normalize``, ``bias``).

    Examples
    --------
    >>> import torch, lipmono
    >>> model = lipmono.MonotonicMLP(3, [16, 16], monotonic_cst=[1, 0, -1], lipschitz=2.0)
    >>> x = torch.zeros(5, 3); x[:, 0] = torch.linspace(-1, 1, 5)
    >>> bool((model(x).diff(dim=0) >= 0).all())
    True
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: int | Sequence[int],
        out_features: int = 1,
        *,
        monotonic_cst,
        lipschitz: float = 1.0,
        feature_names: Sequence[str] | None = None,
        **kwargs,
    ) -> None:
        mlp = LipschitzMLP(in_features, hidden_sizes, out_features, lipschitz=lipschitz, **kwargs)
        super().__init__(mlp, monotonic_cst, lipschitz, feature_names=feature_names)
