r"""Pure tensor functions behind the Lipschitz layers.

A dense layer computes ``y = W x`` with ``W`` of shape ``(out_features, in_features)``.
Its operator norm from :math:`(\mathbb{R}^n, \|\cdot\|_p)` to :math:`(\mathbb{R}^m, \|\cdot\|_q)`
has a closed form for the pairs used here:

=============  ===========================  =============================
norm           value of the operator norm   unit that is rescaled
=============  ===========================  =============================
``l1->linf``   :math:`\max_{ij} |W_{ij}|`    each row, by its largest entry
``linf->linf`` :math:`\max_i \sum_j |W_{ij}|` each row, by its abs-sum
``l1->l1``     :math:`\max_j \sum_i |W_{ij}|` each column, by its abs-sum
``l2->l2``     largest singular value         the whole matrix
=============  ===========================  =============================

Rescaling whole rows or columns, never single entries, keeps a gradient on every
entry: a clamp of single entries would give each saturated entry a zero gradient,
and it could never leave the boundary again.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import ParameterError

__all__ = [
    "NORMS",
    "CHAINS",
    "chain_norms",
    "check_norm",
    "operator_norm",
    "unit_norms",
    "rescale",
    "power_iteration",
    "max_min",
    "group_sort",
]

#: Operator norms that a :class:`~lipmono.LipschitzLinear` can bound.
NORMS = ("l1->linf", "linf->linf", "l1->l1", "l2->l2")

#: Input norm of a chain, mapped to (first layer's norm, later layers' norm).
CHAINS = {
    "l1": ("l1->linf", "linf->linf"),
    "linf": ("linf->linf", "linf->linf"),
    "l2": ("l2->l2", "l2->l2"),
    "l1->l1": ("l1->l1", "l1->l1"),
}


def check_norm(norm: str) -> str:
    """Return ``norm`` if it names a supported operator norm, else raise ``ParameterError``."""
    if norm not in NORMS:
        raise ParameterError(
            f"norm={norm!r} is not a supported operator norm; use one of {', '.join(NORMS)}"
        )
    return norm


def chain_norms(chain: str, n_layers: int) -> list[str]:
    """Return the operator norm of each of ``n_layers`` layers in the chain ``chain``.

    The ``l1`` chain starts with ``l1->linf`` and continues with ``linf->linf``: the
    product of these norms bounds every partial derivative of the network, which is
    what the monotonic residual needs.
    """
    if chain not in CHAINS:
        raise ParameterError(
            f"norm={chain!r} is not a supported chain; use one of {', '.join(CHAINS)}"
        )
    first, later = CHAINS[chain]
    return [first] + [later] * (n_layers - 1)


def unit_norms(W: Tensor, norm: str) -> Tensor:
    """Return the norm of each rescaling unit of ``W`` (rows, columns or the matrix).

    The result broadcasts against ``W``: shape ``(out, 1)`` for row units,
    ``(1, in)`` for column units and ``()`` for ``l2->l2``, where the spectral norm
    is computed exactly (an SVD).

    A row or column of a single entry is not used as a unit, because rescaling it
    is a clamp and a clamped entry gets a zero gradient. The whole matrix is the
    unit instead (shape ``()``, the operator norm), which gives the same bound:
    that happens for rows when ``in_features == 1`` and for columns when
    ``out_features == 1``. A 1 x 1 matrix has no other unit, so once it is over
    budget its gradient is zero.
    """
    if norm in ("l1->linf", "linf->linf") and W.shape[-1] == 1:
        return W.abs().amax()
    if norm == "l1->l1" and W.shape[-2] == 1:
        return W.abs().amax()
    if norm == "l1->linf":
        return W.abs().amax(dim=1, keepdim=True)
    if norm == "linf->linf":
        return W.abs().sum(dim=1, keepdim=True)
    if norm == "l1->l1":
        return W.abs().sum(dim=0, keepdim=True)
    if norm == "l2->l2":
        return torch.linalg.matrix_norm(W, ord=2)
    raise ValueError(check_norm(norm))


def operator_norm(W: Tensor, norm: str) -> Tensor:
    """Return the exact operator norm of ``W`` in the pair ``norm`` (see module docs)."""
    return unit_norms(W, norm).max()


def rescale(W: Tensor, unit: Tensor, budget: float, always: bool = False) -> Tensor:
    r"""Rescale each unit of ``W`` so that its norm ``unit`` is at most ``budget``.

    .. math::

        W_\text{eff} = W \,/\, \max(1, \|W_u\| / \lambda)
        \quad\text{or, with ``always``,}\quad W_\text{eff} = \lambda W / \|W_u\|

    The default leaves units under budget untouched, so it constrains as little as
    possible. A unit of norm zero is left at zero.
    """
    ratio = unit / budget
    if always:
        # A zero unit has no direction to stretch, so it stays zero.
        divisor = torch.where(ratio > 0, ratio, torch.ones_like(ratio))
    else:
        divisor = torch.clamp(ratio, min=1.0)
    return W / divisor


def power_iteration(W: Tensor, u: Tensor, v: Tensor, n_iter: int = 1) -> tuple[Tensor, Tensor]:
    """Run ``n_iter`` steps of power iteration on ``W`` from the vectors ``u`` and ``v``.

    Returns the updated unit vectors ``(u, v)``; ``u @ W @ v`` then estimates the
    largest singular value from below. The caller owns the buffers and decides
    whether to write the result back.
    """
    with torch.no_grad():
        for _ in range(n_iter):
            v = torch.nn.functional.normalize(W.mT @ u, dim=0, eps=1e-12)
            u = torch.nn.functional.normalize(W @ v, dim=0, eps=1e-12)
    return u, v


class _MaxMin(torch.autograd.Function):
    """MaxMin with a backward that routes the gradient by a saved 0/1 weight.

    Autograd's own backward of ``torch.maximum`` and ``torch.minimum`` builds four
    masked copies, and boolean masks are slow on CPU. Here the forward saves
    ``w = 1`` where the first half contains the maximum and ``w = 0`` elsewhere, and
    the backward is two ``torch.lerp`` calls, which return one endpoint exactly
    when the weight is 0 or 1. Ties send the first half's gradient to the second
    input: a valid subgradient that keeps the gradient a permutation of the output
    gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        a, b = x[..., :half], x[..., half:]
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        top = torch.maximum(a, b, out=out[..., :half])
        torch.minimum(a, b, out=out[..., half:])
        # top is exactly a or b, so top - b is 0 where b is the maximum (or a tie)
        # and positive where a is, and its sign is exactly 0 or 1.
        a_is_max = torch.sub(top, b).sign_()
        ctx.save_for_backward(a_is_max)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (a_is_max,) = ctx.saved_tensors
        half = grad.shape[-1] // 2
        top, bottom = grad[..., :half], grad[..., half:]
        if torch.is_grad_enabled():
            # create_graph=True: keep the backward differentiable (no out= writes).
            return torch.cat(
                (torch.lerp(bottom, top, a_is_max), torch.lerp(top, bottom, a_is_max)), dim=-1
            )
        grad_x = torch.empty_like(grad, memory_format=torch.contiguous_format)
        torch.lerp(bottom, top, a_is_max, out=grad_x[..., :half])
        torch.lerp(top, bottom, a_is_max, out=grad_x[..., half:])
        return grad_x


def _max_min_reference(x: Tensor) -> Tensor:
    # Differentiable composite of standard ops: TorchScript, torch.export and
    # torch.compile see this form (compilers fuse it into one kernel anyway).
    a, b = x.chunk(2, dim=-1)
    return torch.cat((torch.maximum(a, b), torch.minimum(a, b)), dim=-1)


@torch.jit.unused
def _max_min_eager(x: Tensor) -> Tensor:
    # torch.func transforms (vmap, jacrev, ...) support neither the out= writes nor
    # this autograd function, so they also get the composite.
    if (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or torch._C._are_functorch_transforms_active()
    ):
        return _max_min_reference(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MaxMin.apply(x)
    # No autograd graph: write both halves into one buffer, no concatenation.
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    torch.maximum(a, b, out=out[..., :half])
    torch.minimum(a, b, out=out[..., half:])
    return out


def max_min(x: Tensor) -> Tensor:
    """Return ``cat(maximum(a, b), minimum(a, b))`` for the two halves ``a, b`` of ``x``.

    This is GroupSort with groups of two, pairing feature ``i`` with feature
    ``i + n/2`` (``n`` even, the size of the last dimension). Eager mode uses a
    custom autograd function (see :class:`_MaxMin`). TorchScript, tracing,
    compilers and ``torch.func`` transforms see the composite of ``torch.maximum``,
    ``torch.minimum`` and ``torch.cat``. Both give the same values and, away from
    ties, the same gradients.
    """
    if torch.jit.is_scripting():
        return _max_min_reference(x)
    return _max_min_eager(x)


def group_sort(x: Tensor, group_size: int = 2) -> Tensor:
    """Sort the last dimension of ``x`` within groups of ``group_size``.

    ``group_size=2`` (MaxMin) pairs feature ``i`` with feature ``i + n/2`` and puts
    the maxima in the first half and the minima in the second: elementwise
    max and min, no sort (see :func:`max_min`). Any other size sorts each group of
    consecutive features in descending order; ``group_size = n`` sorts the whole
    vector (FullSort). Both are permutations of the inputs at every point, so they
    are 1-Lipschitz in every p-norm and preserve the gradient norm.

    Raises ``ValueError`` if the last dimension is not divisible by ``group_size``.
    """
    n = x.shape[-1]
    if n % group_size != 0:
        raise ValueError(
            f"GroupSort needs a feature count divisible by group_size, got {n} features "
            f"and group_size={group_size}; pick a layer width that is a multiple of {group_size}"
        )
    if group_size == 1:
        return x
    if group_size == 2:
        return max_min(x)
    grouped = x.unflatten(-1, (n // group_size, group_size))
    return grouped.sort(dim=-1, descending=True).values.flatten(-2)
