r"""Lipschitz-bounded dense layer and the GroupSort activation.

:class:`LipschitzLinear` keeps its raw weight as a trainable parameter and maps it
to an effective weight through a torch parametrization
(:func:`torch.nn.utils.parametrize.register_parametrization`). Every forward pass
therefore uses a weight whose operator norm is at most the layer's budget, and the
gradient flows through the rescaling.
"""

from __future__ import annotations

import copy
import logging
import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from . import functional as F_lip
from .errors import BudgetError, ParameterError

__all__ = [
    "LipschitzNormalization",
    "LipschitzLinear",
    "GroupSort",
    "check_budget",
    "fold_lipschitz_layers",
]

logger = logging.getLogger(__name__)


def check_budget(value: float, name: str = "lipschitz") -> float:
    """Return ``value`` as a float if it is a finite positive number, else raise ``BudgetError``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BudgetError(f"{name} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise BudgetError(
            f"{name} must be a positive finite number, got {value!r}; "
            f"pass the Lipschitz bound you want, for example {name}=1.0"
        )
    return number


class LipschitzNormalization(nn.Module):
    r"""Parametrization that rescales a weight matrix to an operator-norm budget.

    .. math::

        W_\text{eff} = W \,/\, \max\bigl(1, \|W_u\| / \lambda\bigr)

    applied to each rescaling unit ``u`` (row, column or whole matrix, see
    :mod:`lipmono.functional`). With ``always=True`` every unit is scaled to norm
    exactly ``lambda`` instead.

    Guarantee: for ``l1->linf``, ``linf->linf`` and ``l1->l1`` the bound
    :math:`\|W_\text{eff}\| \le \lambda` is exact in every mode. For ``l2->l2`` the
    spectral norm is estimated by one step of power iteration per call while
    training (buffers ``u`` and ``v`` persist between steps), so the bound can be
    exceeded slightly until the iteration has converged. In eval mode, and wherever
    a certificate is issued, the spectral norm is computed exactly by an SVD.

    In eval mode with gradients disabled the effective weight is computed once and
    reused until the raw weight changes (an optimizer step, ``load_state_dict``,
    a move to another device or dtype, a call to ``train`` or ``eval``). With
    gradients enabled, or inside TorchScript, ``torch.compile`` or
    ``torch.export``, it is recomputed on every call.
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        *,
        norm: str,
        lipschitz: float,
        always: bool = False,
        n_power_iterations: int = 1,
    ) -> None:
        super().__init__()
        self.norm = F_lip.check_norm(norm)
        self.lipschitz = check_budget(lipschitz)
        self.always = bool(always)
        self.n_power_iterations = int(n_power_iterations)
        if self.norm == "l2->l2":
            generator = torch.Generator().manual_seed(0)
            u = torch.randn(out_features, generator=generator)
            v = torch.randn(in_features, generator=generator)
            self.register_buffer("u", u / u.norm())
            self.register_buffer("v", v / v.norm())
        self._clear_cache()

    def _clear_cache(self) -> None:
        self._cache: Tensor | None = None
        # The raw weight the cache was computed from, held so that its storage cannot
        # be freed and reused at the same address while the cache refers to it.
        self._cache_source: Tensor | None = None
        self._cache_version = -1

    def unit_norms(self, W: Tensor, exact: bool) -> Tensor:
        """Return the norm of each rescaling unit of ``W``.

        For ``l2->l2`` with ``exact=False`` this runs power iteration and writes the
        new vectors to the buffers ``u`` and ``v``.
        """
        if self.norm != "l2->l2" or exact:
            return F_lip.unit_norms(W, self.norm)
        u, v = F_lip.power_iteration(W.detach(), self.u, self.v, self.n_power_iterations)
        self.u.copy_(u)
        self.v.copy_(v)
        # The estimate keeps its gradient with respect to W, as in spectral normalization.
        return torch.dot(u, W @ v).abs()

    def normalize(self, W: Tensor, exact: bool = True) -> Tensor:
        """Return the effective weight for the raw weight ``W``."""
        return F_lip.rescale(W, self.unit_norms(W, exact), self.lipschitz, self.always)

    def forward(self, W: Tensor) -> Tensor:
        if self.training:
            return self.normalize(W, exact=False)
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self.normalize(W, exact=True)
        if not self._cache_is_valid(W):
            self._cache = self.normalize(W, exact=True)
            self._cache_source = W.detach()
            self._cache_version = W._version
        return self._cache

    def _cache_is_valid(self, W: Tensor) -> bool:
        # In-place updates (optimizer steps, load_state_dict) bump W._version; a move to
        # another dtype or device gives W new storage. NOTE: writes through W.data are
        # not versioned, so they are not seen; call train() or eval() after such a write.
        source = self._cache_source
        return (
            self._cache is not None
            and source is not None
            and self._cache_version == W._version
            and source.data_ptr() == W.data_ptr()
            and source.dtype == W.dtype
            and source.device == W.device
            and source.shape == W.shape
        )

    def train(self, mode: bool = True) -> LipschitzNormalization:
        self._clear_cache()
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):
        self._clear_cache()
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, lipschitz={self.lipschitz:g}, always={self.always}"


class LipschitzLinear(nn.Linear):
    r"""Dense layer whose operator norm is bounded by ``lipschitz``.

    Applies :math:`y = W_\text{eff} x + b` where :math:`W_\text{eff}` is the raw
    weight rescaled by :class:`LipschitzNormalization`, so that
    :math:`\|W_\text{eff}\|_{p\to q} \le \lambda` in the pair of norms ``norm``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the input and output, as in :class:`torch.nn.Linear`.
    bias : bool, default=True
        Whether to learn an additive bias (it does not change the Lipschitz constant).
    lipschitz : float, default=1.0
        The budget :math:`\lambda` of this layer's operator norm.
    norm : {"l2->l2", "l1->linf", "linf->linf", "l1->l1"}, default="l2->l2"
        The pair of norms of the bound. ``l2->l2`` is estimated by power iteration
        while training and computed exactly in eval mode and in certificates; the
        others are exact in every mode.
    always_normalize : bool, default=False
        If False, a row, column or matrix is rescaled only when it is over budget.
        If True, it is always scaled to the budget.

    Shape
    -----
    Input ``(..., in_features)``, output ``(..., out_features)``.

    Notes
    -----
    ``torch.jit.script`` does not support parametrizations, so scripting this layer
    yields a plain :class:`torch.nn.Linear` holding the exact effective weight at
    the time of scripting: an inference snapshot.

    Examples
    --------
    >>> import torch, lipmono
    >>> layer = lipmono.LipschitzLinear(3, 2, lipschitz=0.5, norm="l1->linf")
    >>> bool(layer.effective_weight().abs().max() <= 0.5)
    True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        lipschitz: float = 1.0,
        norm: str = "l2->l2",
        always_normalize: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        for name, size in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ParameterError(f"{name} must be a positive integer, got {size!r}")
        lipschitz = check_budget(lipschitz)
        F_lip.check_norm(norm)
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        parametrize.register_parametrization(
            self,
            "weight",
            LipschitzNormalization(
                out_features, in_features, norm=norm, lipschitz=lipschitz, always=always_normalize
            ).to(device=device, dtype=dtype),
            unsafe=True,
        )

    @property
    def normalization(self) -> LipschitzNormalization:
        """The parametrization that maps the raw weight to the effective weight."""
        return self.parametrizations.weight[0]

    @property
    def lipschitz(self) -> float:
        """The budget of this layer's operator norm."""
        return self.normalization.lipschitz

    @property
    def norm(self) -> str:
        """The pair of norms in which the budget holds."""
        return self.normalization.norm

    @property
    def raw_weight(self) -> Tensor:
        """The trainable weight before rescaling, shape ``(out_features, in_features)``."""
        return self.parametrizations.weight.original

    def effective_weight(self) -> Tensor:
        """Return the weight the layer uses in eval mode, computed exactly and detached."""
        with torch.no_grad():
            return self.normalization.normalize(self.raw_weight, exact=True).detach().clone()

    def fold(self) -> nn.Linear:
        """Return a plain :class:`torch.nn.Linear` that holds the exact effective weight."""
        W = self.effective_weight()
        plain = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None,
            device=W.device, dtype=W.dtype,
        )
        with torch.no_grad():
            plain.weight.copy_(W)
            if self.bias is not None:
                plain.bias.copy_(self.bias)
        return plain

    def __prepare_scriptable__(self) -> nn.Linear:
        logger.warning(
            "torch.jit.script replaces LipschitzLinear(%d, %d) by a plain nn.Linear holding "
            "its present effective weight, and TorchScript makes that replacement inside "
            "the parent module too; script a LipschitzMLP or MonotonicResidual (they fold a "
            "copy) or lipmono.layers.fold_lipschitz_layers(module) to keep the original intact",
            self.in_features, self.out_features,
        )
        return self.fold()

    def _get_name(self) -> str:
        # register_parametrization swaps in a subclass named "ParametrizedLipschitzLinear";
        # the repr shows the public name instead.
        return "LipschitzLinear"

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, lipschitz={self.lipschitz:g}, norm={self.norm!r}"
        )


class GroupSort(nn.Module):
    """Sort features within groups of ``group_size``; 1-Lipschitz, gradient norm preserving.

    ``group_size=2`` (MaxMin) is computed with an elementwise max and min; larger
    groups use a sort. See :func:`lipmono.functional.group_sort`.

    Shape
    -----
    Input ``(..., n)`` with ``n`` divisible by ``group_size``; output of the same shape.
    """

    def __init__(self, group_size: int = 2) -> None:
        super().__init__()
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ParameterError(f"group_size must be a positive integer, got {group_size!r}")
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        return F_lip.group_sort(x, self.group_size)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


def fold_lipschitz_layers(module: nn.Module) -> nn.Module:
    """Return a deep copy of ``module`` with every :class:`LipschitzLinear` folded.

    Each one becomes the plain :class:`torch.nn.Linear` of
    :meth:`LipschitzLinear.fold`, holding the exact effective weight at the time
    of the call. ``module`` itself is left unchanged. The copy has no
    parametrizations, so :func:`torch.jit.script` takes it as it is.
    """
    memo = {id(m): m.fold() for m in module.modules() if isinstance(m, LipschitzLinear)}
    if isinstance(module, LipschitzLinear):
        return memo[id(module)]
    return copy.deepcopy(module, memo)
