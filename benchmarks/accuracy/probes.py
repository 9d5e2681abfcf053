"""Empirical monotonicity check on random probe pairs.

A probe pair is a row ``x`` and a copy ``x'`` that differs only in one
constrained feature ``j``. The copy raises ``x_j`` by ``delta > 0`` where ``j`` is
increasing and lowers it where ``j`` is decreasing, so the output must not
decrease from ``x`` to ``x'``. The pair is a violation when the output decreases
by more than ``rtol`` times the larger of the two outputs' magnitudes plus
``atol``. The small ``atol`` keeps outputs near zero from being judged at the
level of rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["make_probe_pairs", "violation_rate"]


def make_probe_pairs(
    X: np.ndarray, monotonic_cst: list[int], n_pairs: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw probe pairs around the rows of ``X``.

    Base rows are drawn from ``X`` with replacement, and the feature uniformly
    among the constrained ones. ``delta`` is uniform in ``(0, max - min]`` of that
    feature over ``X``, so the moved value may leave the observed range.

    Returns
    -------
    low, high : numpy.ndarray
        Shape ``(n_pairs, n_features)``; ``high`` is ``low`` moved along the
        constraint, so the output must not decrease from ``low`` to ``high``.
    """
    cst = np.asarray(monotonic_cst)
    constrained = np.flatnonzero(cst)
    if constrained.size == 0:
        raise ValueError("monotonic_cst constrains no feature, so there is nothing to probe")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(X), n_pairs)
    features = constrained[rng.integers(0, constrained.size, n_pairs)]
    spread = X.max(axis=0) - X.min(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    delta = (1.0 - rng.random(n_pairs)) * spread[features]
    low = X[rows].astype(np.float64)
    high = low.copy()
    high[np.arange(n_pairs), features] += cst[features] * delta
    return low, high


def violation_rate(
    decision_function: Callable[[np.ndarray], np.ndarray],
    low: np.ndarray,
    high: np.ndarray,
    rtol: float = 1e-6,
    atol: float = 1e-12,
) -> float:
    """Return the fraction of probe pairs whose output moves the wrong way.

    ``decision_function`` maps ``(N, n_features)`` to ``(N,)`` (a logit or margin
    for classifiers, the prediction for regressors).
    """
    f_low = np.asarray(decision_function(low), dtype=np.float64)
    f_high = np.asarray(decision_function(high), dtype=np.float64)
    change = f_high - f_low
    tolerance = rtol * np.maximum(np.abs(f_low), np.abs(f_high)) + atol
    return float(np.mean(change < -tolerance))
