"""Monotonicity checks that work on any fitted model with ``predict`` or ``predict_proba``.

Two checks, both anchored on real data rows so that they probe where the model is used:

* probe pairs: two copies of a data row that differ only in one constrained feature,
  the second value drawn at a random distance up to the feature's observed range;
* sweeps: for each constrained feature, a grid over its observed range with every
  other feature fixed at an anchor row (individual conditional expectation curves).

A pair or step violates an increasing constraint when the response at the larger
value is below the response at the smaller one by more than ``tolerance``, and the
mirror image for a decreasing one. Finding no violation is evidence, not proof; a
lipmono model's monotonicity is proven by its construction, and the checks then
confirm it on the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..constraints import parse_monotonic_cst
from ..errors import ConstraintError, DataError
from .result import CheckSummary, MonotonicityAudit, SweepCurves, ViolationExample

__all__ = [
    "FeatureTable",
    "resolve_response",
    "resolve_constraints",
    "probe_pairs",
    "sweep_features",
    "check_monotonicity",
]

logger = logging.getLogger(__name__)

# Default tolerance, relative to max(1, largest |response| on the data): float32
# rounding inside a model stays well below it, and a change in a prediction this
# small is immaterial for any decision.
_DEFAULT_RTOL = 1e-5

# Rows per call to the model, to bound memory on large sweeps.
_CHUNK_ROWS = 65536


class FeatureTable:
    """Read and replace columns of a numpy array or a pandas DataFrame alike.

    Parameters
    ----------
    X : array-like of shape (N, n_features) or pandas.DataFrame
        The data, in the form the model's ``predict`` accepts.
    feature_names : sequence of str, optional
        Names for an array; a DataFrame's columns are used otherwise.
    """

    def __init__(self, X, feature_names=None) -> None:
        self.is_frame = hasattr(X, "iloc") and hasattr(X, "columns")
        if self.is_frame:
            self.data = X.reset_index(drop=True)
            self.names = [str(name) for name in X.columns]
        else:
            array = np.asarray(X)
            if array.ndim != 2:
                raise DataError(
                    f"X must be a 2-D table of shape (N, n_features), got shape {array.shape}"
                )
            if array.dtype.kind in "iub":
                array = array.astype(np.float64)
            self.data = array
            self.names = (
                [str(name) for name in feature_names]
                if feature_names is not None
                else [f"x{j}" for j in range(array.shape[1])]
            )
            if len(self.names) != array.shape[1]:
                raise DataError(
                    f"X has {array.shape[1]} columns but {len(self.names)} feature names were "
                    "given; pass one name per column"
                )
        if self.n_rows < 1:
            raise DataError("X has no rows; the audit needs at least one data row")

    @property
    def n_rows(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_features(self) -> int:
        return len(self.names)

    def column(self, j: int) -> np.ndarray:
        """Return column ``j`` as float64, raising :class:`DataError` if it is not numeric."""
        values = self.data.iloc[:, j] if self.is_frame else self.data[:, j]
        try:
            result = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise DataError(
                f"column {self.names[j]!r} is constrained but not numeric ({error}); "
                "a monotonicity constraint needs an ordered numeric feature"
            ) from None
        if not np.isfinite(result).all():
            raise DataError(
                f"column {self.names[j]!r} contains NaN or infinite values; "
                "impute or drop them before the audit"
            )
        return result

    def rows_with(self, rows: np.ndarray, j: int, values: np.ndarray):
        """Return the rows ``rows`` with column ``j`` replaced by ``values``, in X's form."""
        if self.is_frame:
            batch = self.data.iloc[rows].reset_index(drop=True)
            batch[self.data.columns[j]] = np.asarray(values, dtype=np.float64)
            return batch
        batch = self.data[rows].copy()
        if batch.dtype == object:
            batch[:, j] = np.asarray(values, dtype=np.float64).astype(object)
        else:
            batch = batch.astype(np.result_type(batch.dtype, np.float64))
            batch[:, j] = values
        return batch

    def rows(self, rows: np.ndarray):
        """Return the rows ``rows`` unchanged, in X's form."""
        if self.is_frame:
            return self.data.iloc[rows].reset_index(drop=True)
        return self.data[rows]


def resolve_response(model, response="auto") -> tuple[Callable, str]:
    """Return a function ``X -> (N,)`` float array and a description of it.

    ``"auto"`` picks the probability of the positive class for a binary classifier
    with ``predict_proba`` and ``predict`` otherwise. ``"predict_proba"``,
    ``"decision_function"`` and ``"predict"`` name a method; a callable is used as
    it is.
    """
    if callable(response):
        return _checked(response, getattr(response, "__name__", "custom response")), "custom"
    choices = ("auto", "predict_proba", "decision_function", "predict")
    if response not in choices:
        raise ValueError(
            f"response={response!r} is not supported; use one of {', '.join(choices)} "
            "or a callable mapping X to one number per row"
        )
    if response == "auto":
        response = "predict_proba" if hasattr(model, "predict_proba") else "predict"
    method = getattr(model, response, None)
    if method is None:
        raise ValueError(
            f"{type(model).__name__} has no {response} method; choose another response"
        )
    if response == "predict_proba":
        classes = getattr(model, "classes_", None)
        label = f"probability of class {classes[-1]}" if classes is not None else "probability"

        def positive_probability(X):
            proba = np.asarray(method(X), dtype=np.float64)
            if proba.ndim == 2 and proba.shape[1] == 2:
                return proba[:, 1]
            raise DataError(
                f"predict_proba returned shape {proba.shape}; the monotonicity audit needs one "
                "number per row, so it covers binary classifiers. For more classes pass "
                "response='predict' or a callable that returns the score to check"
            )

        return _checked(positive_probability, "predict_proba"), f"predict_proba[:, 1] ({label})"
    return _checked(method, response), response


def _checked(function: Callable, name: str) -> Callable:
    def call(X) -> np.ndarray:
        values = np.asarray(function(X), dtype=np.float64)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise DataError(
                f"{name} returned shape {values.shape}; the audit needs one number per row"
            )
        if not np.isfinite(values).all():
            raise DataError(f"{name} returned NaN or infinite values on the audit's inputs")
        return values

    return call


def _predict_chunked(predict: Callable, table: FeatureTable, rows, j, values) -> np.ndarray:
    parts = []
    for start in range(0, len(rows), _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        parts.append(predict(table.rows_with(rows[start:stop], j, values[start:stop])))
    return np.concatenate(parts)


def resolve_constraints(model, monotonic_cst, feature_names) -> np.ndarray:
    """Return the constraint of each feature as an int array of -1, 0 and 1.

    ``monotonic_cst`` takes every form :func:`lipmono.parse_monotonic_cst` accepts
    (a -1/0/1 list, a dict by column name, ...). When it is ``None`` the model's own
    ``monotonic_cst`` attribute is used, as lipmono and scikit-learn's gradient
    boosting models have.
    """
    if monotonic_cst is None:
        monotonic_cst = getattr(model, "monotonic_cst", None)
    if monotonic_cst is None:
        raise ConstraintError(
            f"no monotonicity constraints to check: {type(model).__name__} has no "
            "monotonic_cst; pass monotonic_cst as a -1/0/1 list or a dict by column name"
        )
    matrix = parse_monotonic_cst(monotonic_cst, len(feature_names), 1, list(feature_names))
    return matrix[:, 0].numpy().astype(np.int64)


def _summary(kind, drops, features, names, directions, tolerance, example) -> CheckSummary:
    """Summarise per-check maximum drops; ``example(i)`` builds the worst case of check i."""
    violating = drops > tolerance
    per_feature = {}
    for j in np.unique(features):
        mine = features == j
        per_feature[names[j]] = {
            "direction": int(directions[j]),
            "n_checks": int(mine.sum()),
            "n_violations": int(violating[mine].sum()),
            "max_violation": float(max(0.0, drops[mine].max(initial=0.0))),
        }
    worst = example(int(np.argmax(drops))) if violating.any() else None
    n_checks = int(drops.size)
    return CheckSummary(
        kind=kind,
        n_checks=n_checks,
        n_violations=int(violating.sum()),
        violation_rate=float(violating.mean()) if n_checks else 0.0,
        max_violation=float(max(0.0, drops.max(initial=0.0))),
        worst=worst,
        per_feature=per_feature,
    )


def probe_pairs(predict, table, constraints, ranges, *, n_pairs, rng, tolerance) -> CheckSummary:
    """Run ``n_pairs`` random probe pairs and summarise their violations.

    ``ranges`` maps each probed feature index ``j`` to its observed ``(min_j, max_j)``.
    Each pair takes a random data row and a random constrained feature ``j`` with
    current value ``x``. It draws a distance ``m`` uniformly in ``[0, max_j - min_j]``
    and moves ``x`` by ``m`` in the constrained direction, clipped to the observed
    range. A value already at that end of the range moves the other way.
    """
    features_available = np.array(sorted(ranges), dtype=np.int64)
    rows = rng.integers(0, table.n_rows, size=n_pairs)
    features = rng.choice(features_available, size=n_pairs)
    low = np.empty(n_pairs)
    high = np.empty(n_pairs)
    for j in np.unique(features):
        mine = features == j
        lo, hi = ranges[j]
        current = table.column(j)[rows[mine]]
        distance = rng.uniform(0.0, 1.0, size=mine.sum()) * (hi - lo)
        moved = np.clip(current + constraints[j] * distance, lo, hi)
        stuck = moved == current
        moved[stuck] = np.clip(current[stuck] - constraints[j] * distance[stuck], lo, hi)
        low[mine] = np.minimum(current, moved)
        high[mine] = np.maximum(current, moved)
    f_low = np.empty(n_pairs)
    f_high = np.empty(n_pairs)
    for j in np.unique(features):
        mine = np.flatnonzero(features == j)
        both_rows = np.concatenate([rows[mine], rows[mine]])
        both_values = np.concatenate([low[mine], high[mine]])
        predictions = _predict_chunked(predict, table, both_rows, j, both_values)
        f_low[mine] = predictions[: mine.size]
        f_high[mine] = predictions[mine.size:]
    signs = constraints[features]
    drops = signs * (f_low - f_high)

    def example(i):
        return ViolationExample(
            row=int(rows[i]), feature=table.names[features[i]], direction=int(signs[i]),
            value_low=float(low[i]), value_high=float(high[i]),
            prediction_low=float(f_low[i]), prediction_high=float(f_high[i]),
            violation=float(drops[i]),
        )

    return _summary("probe pairs", drops, features, table.names, constraints, tolerance, example)


def _grid(values: np.ndarray, n_grid: int) -> np.ndarray:
    unique = np.unique(values)
    if unique.size <= n_grid:
        return unique
    return np.linspace(unique[0], unique[-1], n_grid)


def _largest_drops(oriented: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return, per row of ``oriented`` ``(A, G)``, the largest ``oriented[k] - oriented[l]``
    with ``k < l`` and the indices ``k`` and ``l`` that reach it."""
    running_max = np.maximum.accumulate(oriented, axis=1)
    drawdown = running_max - oriented
    high_index = drawdown.argmax(axis=1)
    rows = np.arange(oriented.shape[0])
    drops = drawdown[rows, high_index]
    low_index = np.array(
        [int(np.argmax(oriented[a, : high_index[a] + 1])) for a in rows], dtype=np.int64
    )
    return drops, low_index, high_index


def sweep_features(
    predict, table, constraints, ranges, anchors, *, n_grid, tolerance
) -> tuple[CheckSummary, list[SweepCurves]]:
    """Sweep each constrained feature over its observed range at every anchor row.

    The grid contains the feature's distinct observed values when there are at most
    ``n_grid`` of them, and ``n_grid`` evenly spaced values from its minimum to its
    maximum otherwise. A curve's violation is the largest drop between any two of
    its grid points in the direction the constraint forbids, so a slow decline over
    many small steps counts in full.
    """
    all_drops, all_features, all_pairs, curves_out = [], [], [], []
    for j in sorted(ranges):
        grid = _grid(table.column(j), n_grid)
        n_anchor, n_point = anchors.size, grid.size
        rows = np.repeat(anchors, n_point)
        values = np.tile(grid, n_anchor)
        curves = _predict_chunked(predict, table, rows, j, values).reshape(n_anchor, n_point)
        # Oriented so that the constraint requires a non-decreasing sequence along the grid.
        drops, first, second = _largest_drops(constraints[j] * curves)
        all_drops.append(drops)
        all_pairs.append(np.column_stack([first, second]))
        all_features.append(np.full(n_anchor, j))
        curves_out.append(
            SweepCurves(
                feature=table.names[j], direction=int(constraints[j]), grid=grid,
                curves=curves, anchors=anchors.copy(), violating=drops > tolerance,
            )
        )
    drops = np.concatenate(all_drops)
    features = np.concatenate(all_features)
    pairs = np.concatenate(all_pairs)
    curves_by_feature = {c.feature: c for c in curves_out}

    def example(i):
        curve = curves_by_feature[table.names[features[i]]]
        a = i % anchors.size
        # The grid point first in the forbidden drop is the lower value for an increasing
        # constraint and the higher one for a decreasing constraint.
        k, m = sorted(int(index) for index in pairs[i])
        return ViolationExample(
            row=int(anchors[a]), feature=curve.feature, direction=curve.direction,
            value_low=float(curve.grid[k]), value_high=float(curve.grid[m]),
            prediction_low=float(curve.curves[a, k]),
            prediction_high=float(curve.curves[a, m]),
            violation=float(drops[i]),
        )

    summary = _summary("sweeps", drops, features, table.names, constraints, tolerance, example)
    return summary, curves_out


def check_monotonicity(
    model,
    X,
    monotonic_cst=None,
    *,
    response="auto",
    feature_names=None,
    n_pairs: int = 2000,
    n_anchors: int = 200,
    n_grid: int = 25,
    tolerance: float | None = None,
    guaranteed: bool = False,
    seed: int = 0,
) -> MonotonicityAudit:
    """Check a fitted model's monotonicity with probe pairs and one-feature sweeps.

    Parameters
    ----------
    model : object
        Any fitted model with ``predict`` (and ``predict_proba`` for classifiers):
        lipmono, scikit-learn, XGBoost, LightGBM, ...
    X : array-like of shape (N, n_features) or pandas.DataFrame
        Data rows that anchor the checks, in the form ``model.predict`` accepts.
    monotonic_cst : list, dict or None
        Expected direction per feature (-1, 0, 1, or a dict by column name). ``None``
        uses the model's own ``monotonic_cst``.
    response : {"auto", "predict_proba", "decision_function", "predict"} or callable
        The output that must be monotonic (see :func:`resolve_response`).
    feature_names : sequence of str, optional
        Column names of an array ``X``; defaults to ``model.feature_names_in_``.
    n_pairs : int, default=2000
        Number of probe pairs.
    n_anchors : int, default=200
        Number of data rows (drawn without replacement) each feature is swept at.
    n_grid : int, default=25
        Maximum number of grid values per sweep.
    tolerance : float, optional
        Smallest drop counted as a violation, in the response's units. Defaults to
        ``1e-5 * max(1, max |response|)`` over the anchor rows.
    guaranteed : bool, default=False
        Whether the model is monotonic by construction, so that any violation is a
        fault in the model rather than a finding about it.
    seed : int, default=0
        Seed of the random draws.

    Returns
    -------
    MonotonicityAudit
    """
    for name, value in (("n_pairs", n_pairs), ("n_anchors", n_anchors), ("n_grid", n_grid)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_grid < 2:
        raise ValueError(f"n_grid must be at least 2 to form a step, got {n_grid}")
    if feature_names is None and not hasattr(X, "columns"):
        feature_names = getattr(model, "feature_names_in_", None)
    table = FeatureTable(X, feature_names)
    constraints = resolve_constraints(model, monotonic_cst, table.names)
    constrained = np.flatnonzero(constraints)
    if constrained.size == 0:
        raise ConstraintError("every monotonic_cst entry is 0, so there is nothing to check")
    ranges = {}
    for j in constrained:
        column = table.column(j)
        if column.max() > column.min():
            ranges[int(j)] = (float(column.min()), float(column.max()))
        else:
            logger.warning("feature %r is constant in X, so it cannot be probed", table.names[j])
    if not ranges:
        raise DataError(
            "every constrained feature is constant in X; give data where they vary"
        )
    predict, description = resolve_response(model, response)
    rng = np.random.default_rng(seed)
    anchors = np.sort(rng.choice(table.n_rows, size=min(n_anchors, table.n_rows), replace=False))
    if tolerance is None:
        scale = np.abs(predict(table.rows(anchors))).max()
        tolerance = _DEFAULT_RTOL * max(1.0, float(scale))
    elif not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")

    pairs = probe_pairs(
        predict, table, constraints, ranges, n_pairs=n_pairs, rng=rng, tolerance=tolerance
    )
    sweeps, curves = sweep_features(
        predict, table, constraints, ranges, anchors, n_grid=n_grid, tolerance=tolerance
    )
    passed = pairs.n_violations == 0 and sweeps.n_violations == 0
    if guaranteed and not passed:
        logger.error(
            "a model that is monotonic by construction violated its constraints "
            "(%d probe pairs, %d sweep curves, largest drop %.3g); this is a fault in lipmono "
            "or in the model file",
            pairs.n_violations, sweeps.n_violations,
            max(pairs.max_violation, sweeps.max_violation),
        )
    return MonotonicityAudit(
        response=description,
        constraints={table.names[j]: int(constraints[j]) for j in constrained},
        tolerance=float(tolerance),
        guaranteed=bool(guaranteed),
        pairs=pairs,
        sweeps=sweeps,
        passed=passed,
        curves=curves,
    )
