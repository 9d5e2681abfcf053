r"""Certified and empirical Lipschitz bounds.

A feed-forward network of dense layers and 1-Lipschitz activations satisfies

.. math::

    \|g(x) - g(y)\|_q \le \Bigl(\prod_l \|W_l\|_{p_l \to q_l}\Bigr) \|x - y\|_p,
    \qquad q_l = p_{l+1},

because each activation used here (GroupSort, ReLU and similar) is 1-Lipschitz in
every p-norm. :func:`lipschitz_bound` evaluates this product on the effective
weights that the module actually uses, so a fault in the normalization shows up
as a bound above the requested budget. :func:`empirical_lipschitz` searches for
inputs where the model is steep, which gives a lower bound; the ratio of the two
shows how tight the certificate is.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from . import functional as F_lip
from .errors import CertificateError
from .layers import GroupSort, LipschitzLinear

__all__ = [
    "CHAIN_NORM_PAIRS",
    "iter_chain",
    "declared_bound",
    "lipschitz_bound",
    "empirical_lipschitz",
    "jacobian_norm",
]

#: For each chain, the pair of vector norms (input, output) its bound holds in.
CHAIN_NORM_PAIRS = {"l1": "l1->linf", "linf": "linf->linf", "l2": "l2->l2", "l1->l1": "l1->l1"}

# Activations that are 1-Lipschitz in every p-norm (elementwise with slope in [-1, 1],
# or a permutation of the inputs at every point).
_ONE_LIPSCHITZ = (
    GroupSort, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.Hardtanh, nn.ReLU6, nn.Softsign,
)


def iter_chain(module: nn.Module) -> Iterator[nn.Module]:
    """Yield the dense layers and activations of a feed-forward ``module`` in order.

    Understands :class:`nn.Sequential`, modules that expose their layers as ``net``
    (:class:`~lipmono.LipschitzMLP`), dense layers and the 1-Lipschitz activations.
    Raises :class:`CertificateError` on anything else, since an unknown module could
    have any Lipschitz constant.
    """
    if isinstance(module, (LipschitzLinear, nn.Linear)):
        yield module
    elif isinstance(module, nn.LeakyReLU) and abs(module.negative_slope) <= 1:
        return
    elif isinstance(module, _ONE_LIPSCHITZ) or (
        isinstance(module, nn.Dropout) and not module.training
    ):
        return
    elif isinstance(module, nn.Sequential):
        for child in module:
            yield from iter_chain(child)
    elif isinstance(getattr(module, "net", None), nn.Sequential) and hasattr(module, "chain"):
        yield from iter_chain(module.net)
    else:
        raise CertificateError(
            f"cannot certify a module of type {type(module).__name__}; a certificate covers "
            "nn.Sequential stacks of LipschitzLinear or nn.Linear layers with 1-Lipschitz "
            "activations (GroupSort, ReLU, ...), LipschitzMLP and MonotonicResidual"
        )


def _dense_layers(module: nn.Module) -> list[nn.Linear]:
    layers = list(iter_chain(module))
    if not layers:
        raise CertificateError(f"{type(module).__name__} has no dense layer to certify")
    return layers


def _effective_weight(layer: nn.Linear) -> Tensor:
    if isinstance(layer, LipschitzLinear):
        return layer.effective_weight()
    return layer.weight.detach()


#: For each chain, the output norm of a dense layer given its input norm.
_DENSE_OUTPUT_NORM = {
    "l1": {"l1": "linf", "linf": "linf"},
    "linf": {"linf": "linf"},
    "l2": {"l2": "l2"},
    "l1->l1": {"l1": "l1"},
}


def _check_chain(norm: str) -> str:
    if norm not in CHAIN_NORM_PAIRS:
        raise ValueError(
            f"norm={norm!r} is not a supported chain; use one of {', '.join(CHAIN_NORM_PAIRS)}"
        )
    return norm


def _part_bound(module: nn.Module, chain: str, p: str) -> tuple[Tensor, str]:
    """Return the bound of ``module`` as a map from the norm ``p``, and its output norm.

    The bound is a float64 scalar tensor computed from the effective weights.
    """
    # Imported here because monotonic.py imports this module at its top.
    from .affine import OutputAffine, Standardize
    from .monotonic import MonotonicResidual

    if isinstance(module, MonotonicResidual):
        inner, q = _part_bound(module.inner, chain, p)
        # f = g + R^T x, so the linear term's operator norm adds to g's bound.
        residual = module.residual_matrix().detach().to(torch.float64).T
        return inner + F_lip.operator_norm(residual, f"{p}->{q}"), q
    if isinstance(module, nn.Linear):
        q = _DENSE_OUTPUT_NORM[chain].get(p)
        if q is None:
            raise CertificateError(
                f"a dense layer receives the {p} norm, which the {chain!r} chain does not "
                "bound; certify this module with the chain it was built for"
            )
        W = _effective_weight(module).to(torch.float64)
        return F_lip.operator_norm(W, f"{p}->{q}"), q
    if isinstance(module, (Standardize, OutputAffine)):
        # A diagonal map diag(d) has norm max |d_i| from any l_p to the same l_p.
        diagonal = 1.0 / module.scale if isinstance(module, Standardize) else module.scale
        return diagonal.detach().to(torch.float64).abs().max(), p
    children = module if isinstance(module, nn.Sequential) else _mlp_layers(module)
    if children is not None:
        bound = torch.ones((), dtype=torch.float64)
        for child in children:
            child_bound, p = _part_bound(child, chain, p)
            bound = bound * child_bound
        return bound, p
    # What is left must be a 1-Lipschitz activation. iter_chain raises for anything else.
    list(iter_chain(module))
    return torch.ones((), dtype=torch.float64), p


def _mlp_layers(module: nn.Module) -> nn.Sequential | None:
    net = getattr(module, "net", None)
    return net if isinstance(net, nn.Sequential) and hasattr(module, "chain") else None


def lipschitz_bound(module: nn.Module, norm: str = "l1") -> float:
    r"""Return the certified Lipschitz constant of ``module`` for the chain ``norm``.

    Parameters
    ----------
    module : nn.Module
        A :class:`~lipmono.LipschitzMLP`, :class:`~lipmono.MonotonicResidual`, a
        dense layer, or an :class:`nn.Sequential` of these, 1-Lipschitz activations,
        :class:`~lipmono.Standardize` and :class:`~lipmono.OutputAffine`.
        Plain :class:`nn.Linear` layers are certified by their actual weights.
    norm : {"l1", "linf", "l2", "l1->l1"}, default="l1"
        The chain. ``"l1"`` bounds :math:`\ell_1 \to \ell_\infty`, that is every
        partial derivative :math:`|\partial f_k / \partial x_i|`; ``"l2"`` bounds
        :math:`\ell_2 \to \ell_2`; ``"linf"`` bounds :math:`\ell_\infty \to \ell_\infty`;
        ``"l1->l1"`` bounds :math:`\ell_1 \to \ell_1`.

    Returns
    -------
    float
        The product over the parts of ``module`` of their exact operator norms,
        computed in float64 from the effective weights in their eval-mode form
        (the spectral norm by an SVD, never the power-iteration estimate). A
        monotonic residual adds the norm of its linear term to the bound of the
        module it wraps. The requested budgets are never read, so a fault in the
        normalization shows up as a bound above them.

    Raises
    ------
    CertificateError
        If ``module`` has no dense layer or contains a part whose Lipschitz
        constant is unknown.

    Examples
    --------
    >>> import torch, lipmono
    >>> model = lipmono.LipschitzMLP(3, [8], lipschitz=2.0)
    >>> lipschitz_bound(model) <= 2.0 * (1 + 1e-6)
    True
    """
    chain = _check_chain(norm)
    if not any(isinstance(m, nn.Linear) for m in module.modules()):
        raise CertificateError(f"{type(module).__name__} has no dense layer to certify")
    with torch.no_grad():
        bound, _ = _part_bound(module, chain, CHAIN_NORM_PAIRS[chain].split("->")[0])
    return float(bound)


def declared_bound(module: nn.Module) -> tuple[float, str]:
    """Return the product of the layers' budgets and the norm pair it holds in.

    This bound holds for every value the weights can take during training, not
    only the present ones, provided every dense layer is a
    :class:`~lipmono.LipschitzLinear` and consecutive layers' norms connect
    (the output norm of one is the input norm of the next).
    """
    layers = _dense_layers(module)
    product = 1.0
    pairs = []
    for layer in layers:
        if not isinstance(layer, LipschitzLinear):
            raise CertificateError(
                f"a {type(layer).__name__} layer has no budget, so its norm can grow without "
                "limit during training; use lipmono.LipschitzLinear for every dense layer"
            )
        product *= layer.lipschitz
        pairs.append(layer.norm.split("->"))
    for index in range(1, len(pairs)):
        if pairs[index - 1][1] != pairs[index][0]:
            raise CertificateError(
                f"layer {index - 1} bounds {'->'.join(pairs[index - 1])} but layer {index} "
                f"bounds {'->'.join(pairs[index])}; the norms must connect to form a chain"
            )
    return product, f"{pairs[0][0]}->{pairs[-1][1]}"


def jacobian_norm(module: nn.Module, x: Tensor, norm: str = "l1") -> Tensor:
    """Return the operator norm of the Jacobian of ``module`` at each row of ``x``.

    ``x`` has shape ``(N, in_features)``; the result has shape ``(N,)``. The norm
    is the pair of the chain ``norm`` (see :data:`CHAIN_NORM_PAIRS`).
    """
    pair = CHAIN_NORM_PAIRS[norm]
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = module(x).reshape(x.shape[0], -1)
        rows = []
        for k in range(y.shape[1]):
            (grad,) = torch.autograd.grad(y[:, k].sum(), x, retain_graph=k + 1 < y.shape[1])
            rows.append(grad)
    J = torch.stack(rows, dim=1)  # (N, out, in)
    return torch.stack([F_lip.operator_norm(J[i], pair) for i in range(J.shape[0])])


def _vector_norm(v: Tensor, which: str) -> Tensor:
    order = {"l1": 1, "l2": 2, "linf": float("inf")}[which]
    return torch.linalg.vector_norm(v, ord=order, dim=-1)


def empirical_lipschitz(
    module: nn.Module,
    X: Tensor,
    norm: str = "l1",
    *,
    n_steps: int = 100,
    step_size: float = 0.05,
    max_points: int = 256,
    seed: int = 0,
) -> float:
    """Return a lower bound of the Lipschitz constant of ``module`` near the data ``X``.

    Two searches run from up to ``max_points`` rows of ``X``: gradient ascent over
    pairs ``(x, x + delta)`` on the ratio ``|f(x) - f(x + delta)|_q / |delta|_p``,
    and the Jacobian norm at every point visited. Every value found is a true
    lower bound; the largest is returned. Networks of dense layers and GroupSort
    are piecewise linear, so their Jacobian norm has no useful gradient: the pair
    ratio is what the ascent climbs.

    The module is evaluated in eval mode, the form that :func:`lipschitz_bound`
    certifies (exact spectral norms, no buffer updates); each submodule's mode is
    restored afterwards.
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        return _search_lipschitz(module, X, norm, n_steps, step_size, max_points, seed)
    finally:
        for submodule, mode in modes:
            submodule.training = mode


def _search_lipschitz(
    module: nn.Module,
    X: Tensor,
    norm: str,
    n_steps: int,
    step_size: float,
    max_points: int,
    seed: int,
) -> float:
    p_name, q_name = CHAIN_NORM_PAIRS[norm].split("->")
    generator = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(X)
    if X.shape[0] > max_points:
        X = X[torch.randperm(X.shape[0], generator=generator)[:max_points]]
    dtype = next((p.dtype for p in module.parameters()), X.dtype)
    X = X.to(dtype)
    if X.shape[0] > 1:
        scale = X.std(dim=0, keepdim=True).clamp(min=1e-3)
    else:
        scale = torch.ones_like(X[:1])
    x = X.clone().requires_grad_(True)
    noise = torch.randn(X.shape, generator=generator, dtype=dtype)
    delta = (0.1 * scale * noise).requires_grad_(True)
    optimizer = torch.optim.Adam([x, delta], lr=step_size)
    best = jacobian_norm(module, X, norm).max()
    for _ in range(n_steps):
        with torch.enable_grad():
            diff = (module(x) - module(x + delta)).reshape(x.shape[0], -1)
            ratio = _vector_norm(diff, q_name) / _vector_norm(delta, p_name).clamp(min=1e-12)
            optimizer.zero_grad()
            (-ratio.sum()).backward()
        best = torch.maximum(best, ratio.detach().max())
        optimizer.step()
    best = torch.maximum(best, jacobian_norm(module, x.detach(), norm).max())
    return float(best)
