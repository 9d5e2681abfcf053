r"""The certificate of a fitted estimator, in standardized and in original units.

The network ``f`` takes standardized inputs :math:`z_i = (x_i - m_i) / s_i` and its
output is mapped to :math:`o_k = a_k f_k + b_k` with positive :math:`s_i, a_k`.
By the chain rule

.. math::

    \left|\frac{\partial o_k}{\partial x_i}\right|
        = \frac{a_k}{s_i} \left|\frac{\partial f_k}{\partial z_i}\right| ,

so each bound on a partial derivative of ``f`` converts to original units by
the factor :math:`a_k / s_i`, and a bound on ``f`` in any of the chains'
operator norms converts with at most :math:`\max_k a_k / \min_i s_i`.

Per feature, :math:`|\partial f_k / \partial z_i|` is at most
:math:`|\partial g_k / \partial z_i| + \lambda |S_{ik}|` for the monotonic
residual :math:`f = g + \lambda z S`. In the ``l1`` chain the first term is at
most :math:`\max_j |W^{(1)}_{ji}| \prod_{l \ge 2} \|W^{(l)}\|_{\infty \to \infty}`
(GroupSort's Jacobian is a permutation, of norm 1). In the other chains every
partial derivative is bounded by the chain's operator norm, which is used as is.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import functional as F_lip
from ..certify import CHAIN_NORM_PAIRS, iter_chain, lipschitz_bound

__all__ = ["build_certificate", "DIRECTION_NAMES"]

#: Direction names used in certificates, keyed by constraint sign.
DIRECTION_NAMES = {1: "increasing", -1: "decreasing"}


def _effective_weight(layer) -> torch.Tensor:
    if hasattr(layer, "effective_weight"):
        return layer.effective_weight().to(torch.float64)
    return layer.weight.detach().to(torch.float64)


def _inner_per_feature(inner, norm: str, n_inputs: int) -> np.ndarray:
    """Bound on ``max_k |dg_k / dz_i|`` for each input ``i`` of the inner network ``g``."""
    if norm != "l1":
        return np.full(n_inputs, lipschitz_bound(inner, norm))
    layers = list(iter_chain(inner))
    first = _effective_weight(layers[0])
    rest = 1.0
    for layer in layers[1:]:
        rest *= float(F_lip.operator_norm(_effective_weight(layer), "linf->linf"))
    return first.abs().amax(dim=0).numpy() * rest


def build_certificate(
    model,
    *,
    norm: str,
    input_scale: np.ndarray,
    output_scale: np.ndarray,
    names: list[str],
    output: str,
) -> dict:
    """Return the certificate of ``model`` (a fitted :class:`~lipmono.MonotonicResidual`).

    Parameters
    ----------
    model : MonotonicResidual
        The network on standardized inputs.
    norm : str
        Its chain.
    input_scale : ndarray of shape (n_inputs,)
        Positive scale of each encoded input.
    output_scale : ndarray of shape (n_outputs,)
        Positive scale applied to each output.
    names : list of str
        Name of each encoded input.
    output : str
        What the output is, for readers: ``"logit"``, ``"logits"`` or ``"target"``.

    Returns
    -------
    dict
        ``norm``, ``norm_pair``, ``lipschitz`` (requested), ``lipschitz_scaled``,
        ``lipschitz_original``, ``per_feature`` and ``per_feature_scaled``
        (bounds on ``|d output / d x_i|`` by encoded name) and ``monotonic``
        (direction name by constrained encoded name).
    """
    input_scale = np.asarray(input_scale, dtype=np.float64)
    output_factor = float(np.max(output_scale))
    scaled = lipschitz_bound(model, norm)
    residual = model.residual_matrix().detach().to(torch.float64).abs().amax(dim=1).numpy()
    per_feature_scaled = _inner_per_feature(model.inner, norm, len(names)) + residual
    per_feature = per_feature_scaled * output_factor / input_scale
    if norm == "l1":
        # In l1 -> linf the operator norm is the largest partial derivative.
        original = float(per_feature.max())
    else:
        original = scaled * output_factor / float(input_scale.min())
    signs = model.monotonic_cst.detach()[:, 0].to(torch.int64).tolist()
    return {
        "norm": norm,
        "norm_pair": CHAIN_NORM_PAIRS[norm],
        "lipschitz": float(model.lipschitz),
        "lipschitz_scaled": scaled,
        "lipschitz_original": original,
        "output": output,
        "per_feature": dict(zip(names, per_feature.tolist(), strict=True)),
        "per_feature_scaled": dict(zip(names, per_feature_scaled.tolist(), strict=True)),
        "monotonic": {
            name: DIRECTION_NAMES[sign] for name, sign in zip(names, signs, strict=True) if sign
        },
    }
