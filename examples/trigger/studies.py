"""Measurements on fitted trigger classifiers: efficiency, tail response and stability.

Every function takes scorers (see ``models.Scorer``) and candidate tables whose
columns are the model inputs, and returns plain numbers or arrays for the
results file and the plots.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

__all__ = [
    "DROP_TOLERANCE",
    "binomial_efficiency",
    "decay_time_efficiency",
    "displacement_scan",
    "ip_chi2_stability",
    "score_drops",
    "threshold_for_retention",
    "working_point",
]

# A network's logit is computed in float32; a decrease smaller than this is rounding.
DROP_TOLERANCE = 1e-4


def threshold_for_retention(background_scores: np.ndarray, retention: float) -> float:
    """Return the score threshold that accepts a fraction ``retention`` of the background."""
    return float(np.quantile(background_scores, 1.0 - retention))


def binomial_efficiency(passed: np.ndarray) -> tuple[float, float]:
    r"""Return the pass fraction of boolean ``passed`` and its binomial standard error.

    The error is :math:`\sqrt{p(1-p)/n}`. At p = 0 or 1, where that vanishes, it
    is 1/n instead, roughly the one-sided 63 % limit. An empty input gives NaN.
    """
    n = len(passed)
    if n == 0:
        return float("nan"), float("nan")
    efficiency = float(np.mean(passed))
    error = np.sqrt(efficiency * (1 - efficiency) / n)
    return efficiency, float(error if error > 0 else 1.0 / n)


def working_point(scores: np.ndarray, labels: np.ndarray, retention: float) -> dict:
    """Return the AUC, the threshold at ``retention`` and the signal efficiency there."""
    threshold = threshold_for_retention(scores[labels == 0], retention)
    efficiency, error = binomial_efficiency(scores[labels == 1] > threshold)
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "threshold": threshold,
        "background_retention": float(np.mean(scores[labels == 0] > threshold)),
        "signal_efficiency": efficiency,
        "signal_efficiency_error": error,
    }


def decay_time_efficiency(
    scores: np.ndarray, decay_time: np.ndarray, threshold: float, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the signal efficiency and its error in each decay-time bin ``edges`` (ps)."""
    index = np.digitize(decay_time, edges) - 1
    efficiency, error = [], []
    for i in range(len(edges) - 1):
        value, sigma = binomial_efficiency(scores[index == i] > threshold)
        efficiency.append(value)
        error.append(sigma)
    return np.array(efficiency), np.array(error)


def displacement_scan(scorer, table: pd.DataFrame, columns: list[str], shifts: np.ndarray):
    """Score each candidate with ``columns`` raised by each of ``shifts``.

    Returns an ``(N, len(shifts))`` array: row ``i`` is candidate ``i`` moved
    along the scan, with every other input held at its measured value.
    """
    # One call on all shifted copies: block j of rows contains every candidate at shifts[j].
    moved = pd.concat([table] * len(shifts), ignore_index=True)
    offsets = np.repeat(np.asarray(shifts, dtype=np.float64), len(table))
    for column in columns:
        moved[column] = moved[column].to_numpy() + offsets
    return np.asarray(scorer(moved)).reshape(len(shifts), len(table)).T


def score_drops(scan: np.ndarray) -> dict:
    """Summarize how often and by how much scores fall along a displacement scan.

    A candidate counts as dropping when its score ever falls below its running
    maximum by more than :data:`DROP_TOLERANCE`.
    """
    running_max = np.maximum.accumulate(scan, axis=1)
    deficit = (running_max - scan).max(axis=1)
    dropped = deficit > DROP_TOLERANCE
    return {
        "fraction_dropping": float(np.mean(dropped)),
        "median_drop_when_dropping": float(np.median(deficit[dropped])) if dropped.any() else 0.0,
        "max_drop": float(deficit.max()),
    }


def ip_chi2_stability(scorer, table, labels, threshold, factors, smears, seed):
    """Measure how the accepted fractions move when the IP chi2 is mismodelled.

    ``factors`` multiply every IP chi2 (a resolution misestimated by a few
    percent); ``smears`` are relative widths of a log-normal factor drawn per
    candidate. Returns, for each effect, the background and signal acceptance
    divided by their nominal values at the fixed ``threshold``, and the median
    and largest change of a candidate's score.
    """
    nominal = scorer(table)
    nominal_background = np.mean(nominal[labels == 0] > threshold)
    nominal_signal = np.mean(nominal[labels == 1] > threshold)
    rng = np.random.default_rng(seed)
    results = []
    effects = [("scale", f) for f in factors] + [("smear", s) for s in smears]
    for kind, value in effects:
        moved = table.copy()
        if kind == "scale":
            moved["log_min_ip_chi2"] += np.log(value)
        else:
            moved["log_min_ip_chi2"] += rng.normal(0.0, value, len(moved))
        scores = scorer(moved)
        change = np.abs(scores - nominal)
        results.append(
            {
                "effect": kind,
                "value": float(value),
                "background_ratio": float(np.mean(scores[labels == 0] > threshold)
                                          / nominal_background),
                "signal_ratio": float(np.mean(scores[labels == 1] > threshold) / nominal_signal),
                "median_abs_score_change": float(np.median(change)),
                "max_abs_score_change": float(change.max()),
            }
        )
    return results
