r"""Certified Lipschitz bounds of a lipmono model, an empirical check, and robustness radii.

A lipmono estimator computes ``a * f(z) + b`` on standardized encoded inputs
:math:`z = (x - \mu) / \sigma`. Its certificate bounds the network ``f`` on ``z``
(``lipschitz_scaled``), the output on the encoded inputs in original units
(``lipschitz_original``), and each slope :math:`|\partial\, \text{output} / \partial x_j|`
(``per_feature``). :func:`audit_certificate` recomputes it from the weights, compares
it with the stored copy, and checks it against an empirical search near the data.

For a binary classifier with logit :math:`y(x)` and a Lipschitz constant :math:`L`
from :math:`\ell_p` to the absolute value, no perturbation with
:math:`\|\delta\|_p < |y(x)| / L` changes the sign of the logit, and so the decision:
that is the certified radius, in the norm :math:`p` and the units of :math:`L`. For
the ``l1`` chain the bound is :math:`\ell_1 \to \ell_\infty` and the radius is an
:math:`\ell_1` radius.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..certify import CHAIN_NORM_PAIRS, empirical_lipschitz, lipschitz_bound
from ..errors import CertificateError
from .result import CertificateAudit, RadiusAudit

__all__ = [
    "RADIUS_THRESHOLDS",
    "QUANTILES",
    "certified_radius",
    "module_radius",
    "lipmono_parts",
    "audit_certificate",
    "audit_radius",
]

logger = logging.getLogger(__name__)

#: Radii (in standard deviations of the encoded features) whose exceedance fractions
#: the summary reports.
RADIUS_THRESHOLDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)

#: Quantiles of the radius distribution that the summary reports.
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)

# A stored certificate that differs from the recomputed one by more than this
# relative amount is reported as inconsistent.
_CERTIFICATE_RTOL = 1e-5


def certified_radius(logits, lipschitz: float) -> np.ndarray:
    """Return ``|logits| / lipschitz``, the radius within which no decision can change.

    Parameters
    ----------
    logits : array-like of shape (N,)
        Logits of a binary classifier (the decision is their sign).
    lipschitz : float
        A certified Lipschitz constant of the logit, from the input norm in which the
        radius is wanted to the absolute value.

    Returns
    -------
    numpy.ndarray of shape (N,)
    """
    if not (math.isfinite(lipschitz) and lipschitz > 0):
        raise CertificateError(
            f"lipschitz={lipschitz!r} must be positive and finite to give a radius"
        )
    return np.abs(np.asarray(logits, dtype=np.float64)) / float(lipschitz)


def module_radius(module: nn.Module, X, norm: str = "l1") -> np.ndarray:
    """Return the certified radius of each row of ``X`` for a one-output ``module``.

    ``module`` is anything :func:`lipmono.lipschitz_bound` certifies; its output is
    read as a logit. The radius is in the input norm of the chain ``norm`` (``l1``
    for ``"l1"`` and ``"l1->l1"``, ``l2``, ``linf``), in the units of ``X``.
    ``X`` has shape ``(N, in_features)``; the result has shape ``(N,)``.
    """
    bound = lipschitz_bound(module, norm)
    with torch.no_grad():
        dtype = next(module.parameters()).dtype
        logits = module(torch.as_tensor(np.asarray(X), dtype=dtype)).reshape(-1)
    return certified_radius(logits.double().numpy(), bound)


def lipmono_parts(estimator) -> tuple[np.ndarray, np.ndarray, nn.Module, nn.Module, str]:
    """Split a fitted lipmono estimator into what the certificate needs.

    Returns
    -------
    mean, scale : numpy.ndarray of shape (n_encoded,)
        The standardization ``z = (x - mean) / scale`` of the encoded inputs.
    network : nn.Module
        A float64 copy of ``model_`` in eval mode, on standardized inputs.
    output : nn.Module
        A float64 copy of the output map ``a * f + b``.
    chain : str
        The norm chain of ``model_`` (``"l1"``, ``"l2"``, ...).
    """
    pipeline = copy.deepcopy(estimator.to_torch()).double().eval()
    # Gradients are taken with respect to inputs only; frozen weights also let
    # parametrize.cached() compute each normalized weight once.
    pipeline.requires_grad_(False)
    standardize, network, output = pipeline[0], pipeline[1], pipeline[-1]
    mean = standardize.mean.detach().double().numpy()
    scale = standardize.scale.detach().double().numpy()
    chain = (getattr(estimator, "certificate_", None) or {}).get("norm") or _find_chain(network)
    return mean, scale, network, output, chain


def _find_chain(model: nn.Module) -> str:
    for sub in model.modules():
        chain = getattr(sub, "chain", None)
        if isinstance(chain, str):
            return chain
    raise CertificateError(
        f"cannot tell the norm chain of {type(model).__name__}; it has no 'chain' attribute "
        "and the estimator's certificate_ has no 'norm'"
    )


def _gradients(module: nn.Module, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the output ``(N,)`` of a one-output ``module`` and its gradient ``(N, n)``."""
    z = torch.as_tensor(Z, dtype=torch.float64).requires_grad_(True)
    with torch.enable_grad():
        out = module(z).reshape(-1)
        (grad,) = torch.autograd.grad(out.sum(), z)
    return out.detach().numpy(), grad.numpy()


def _compare_stored(stored: dict, recomputed: dict) -> None:
    """Raise :class:`CertificateError` where the stored certificate disagrees with the weights."""
    pairs = [
        (key, stored.get(key), recomputed[key])
        for key in ("lipschitz_scaled", "lipschitz_original")
    ]
    pairs += [
        (f"per_feature[{name!r}]", stored.get("per_feature", {}).get(name), value)
        for name, value in recomputed["per_feature"].items()
    ]
    for key, old, new in pairs:
        if old is None or not math.isclose(old, new, rel_tol=_CERTIFICATE_RTOL):
            raise CertificateError(
                f"the model's stored certificate has {key}={old!r} but its weights give "
                f"{new:.6g}; the model file or the estimator state is inconsistent, so refit "
                "or re-save the model"
            )


def audit_certificate(
    estimator, X_encoded: np.ndarray, *, max_points: int = 256, seed: int = 0
) -> tuple[CertificateAudit, np.ndarray]:
    """Recompute a lipmono estimator's certificate and measure how tight it is.

    Parameters
    ----------
    estimator : MonotonicClassifier or MonotonicRegressor
        A fitted lipmono estimator with one output.
    X_encoded : numpy.ndarray of shape (N, n_encoded)
        Encoded inputs in original units, from ``estimator.encode(X)``.
    max_points : int, default=256
        Rows used by the empirical search (:func:`lipmono.empirical_lipschitz`).
    seed : int, default=0
        Seed of the empirical search.

    Returns
    -------
    audit : CertificateAudit
    outputs : numpy.ndarray of shape (N,)
        The model's raw output (the logit of a binary classifier) at every row.

    Raises
    ------
    CertificateError
        If the stored certificate disagrees with the weights, or an empirical slope
        exceeds a certified bound (the certificate would be false).
    """
    from ..estimators.certificate import build_certificate

    mean, scale, network, output, chain = lipmono_parts(estimator)
    output_scale = output.scale.detach().double().numpy()
    if output_scale.size != 1:
        raise CertificateError(
            f"the model has {output_scale.size} outputs; the certificate audit covers "
            "models with one output (regression or binary classification)"
        )
    names = [str(name) for name in estimator.encoded_feature_names_]
    stored = dict(getattr(estimator, "certificate_", None) or {})
    recomputed = build_certificate(
        network, norm=chain, input_scale=scale, output_scale=output_scale, names=names,
        output=stored.get("output", "output"),
    )
    _compare_stored(stored, recomputed)

    Z = (np.asarray(X_encoded, dtype=np.float64) - mean) / scale
    with parametrize.cached():
        outputs, grad_scaled = _gradients(nn.Sequential(network, output), Z)
        empirical = empirical_lipschitz(
            network, torch.as_tensor(Z), chain, max_points=max_points, seed=seed
        )
    scaled = recomputed["lipschitz_scaled"]
    if empirical > scaled * (1 + 1e-9):
        raise CertificateError(
            f"an empirical search found a slope of {empirical:.6g}, above the certified bound "
            f"{scaled:.6g} ({CHAIN_NORM_PAIRS[chain]}); the certificate is false for this model"
        )
    slopes = np.abs(grad_scaled).max(axis=0) / scale  # largest |d output / d x_j|, original units
    for name, slope in zip(names, slopes, strict=True):
        bound = recomputed["per_feature"][name]
        if slope > bound * (1 + 1e-9):
            raise CertificateError(
                f"the slope of the output in {name!r} reaches {slope:.6g} at a data row, above "
                f"its certified bound {bound:.6g}; the certificate is false for this model"
            )
    audit = CertificateAudit(
        chain=chain,
        norm_pair=CHAIN_NORM_PAIRS[chain],
        input_norm=CHAIN_NORM_PAIRS[chain].split("->")[0],
        lipschitz_scaled=scaled,
        lipschitz_original=recomputed["lipschitz_original"],
        output_scale=float(output_scale[0]),
        per_feature=dict(recomputed["per_feature"]),
        empirical_per_feature={name: float(v) for name, v in zip(names, slopes, strict=True)},
        empirical_lower_bound=empirical,
        tightness=empirical / scaled,
        stored_certificate=stored or None,
    )
    return audit, outputs


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"q{round(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES}


def audit_radius(certificate: CertificateAudit, logits: np.ndarray) -> RadiusAudit:
    """Summarise the certified radius ``|logit| / L`` of every row.

    ``logits`` has shape ``(N,)``. The scaled radius uses ``L = output_scale *
    lipschitz_scaled`` and is in standard deviations of the encoded features. The
    original one uses ``lipschitz_original`` and is in the encoded features' own
    units. Both are in the norm ``certificate.input_norm``. The per-feature
    medians show how far each feature alone can move (original units) before the
    median row's decision could change.
    """
    radius_scaled = certified_radius(
        logits, certificate.output_scale * certificate.lipschitz_scaled
    )
    radius_original = certified_radius(logits, certificate.lipschitz_original)
    median_margin = float(np.median(np.abs(logits)))
    per_feature_median = {
        name: median_margin / bound if bound > 0 else float("inf")
        for name, bound in certificate.per_feature.items()
    }
    return RadiusAudit(
        input_norm=certificate.input_norm,
        n_samples=int(radius_scaled.size),
        quantiles_scaled=_quantiles(radius_scaled),
        quantiles_original=_quantiles(radius_original),
        fraction_above_scaled={
            f"{t:g}": float((radius_scaled > t).mean()) for t in RADIUS_THRESHOLDS
        },
        per_feature_median=per_feature_median,
        radius_scaled=radius_scaled,
        radius_original=radius_original,
    )
