"""Result records of an audit: plain dataclasses that convert to JSON-able dicts."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ViolationExample",
    "CheckSummary",
    "SweepCurves",
    "MonotonicityAudit",
    "CertificateAudit",
    "RadiusAudit",
    "AuditResult",
    "to_jsonable",
]


def to_jsonable(value):
    """Convert dataclasses, numpy scalars and arrays, and non-finite floats for JSON.

    Fields whose metadata sets ``"json": False`` (large per-sample arrays) are left
    out. Non-finite floats become ``None`` because JSON has no NaN or infinity.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _hidden(**kwargs):
    # Per-sample or per-curve arrays: kept on the object for plots, left out of to_dict().
    return field(repr=False, metadata={"json": False}, **kwargs)


@dataclass
class ViolationExample:
    """One pair of inputs that breaks a monotonicity constraint.

    The two inputs are the data row ``row`` with ``feature`` set to ``value_low``
    and to ``value_high`` (``value_low < value_high``). For an increasing
    constraint the prediction at ``value_high`` must not be below the one at
    ``value_low``, and ``violation`` is by how much it is (positive), in the units
    of the response.
    """

    row: int
    feature: str
    direction: int
    value_low: float
    value_high: float
    prediction_low: float
    prediction_high: float
    violation: float


@dataclass
class CheckSummary:
    """Outcome of one kind of monotonicity check (probe pairs or sweeps).

    ``n_checks`` counts pairs for probe pairs and curves for sweeps; a curve
    violates when any consecutive step along it does. ``per_feature`` maps each
    constrained feature to its own ``n_checks``, ``n_violations`` and
    ``max_violation``.
    """

    kind: str
    n_checks: int
    n_violations: int
    violation_rate: float
    max_violation: float
    worst: ViolationExample | None
    per_feature: dict[str, dict[str, float]]


@dataclass
class SweepCurves:
    """Individual conditional expectation curves of one feature.

    ``grid`` has shape ``(G,)``, ``curves`` shape ``(A, G)`` with one row per
    anchor row ``anchors``, and ``violating`` shape ``(A,)`` marks the curves that
    break the constraint.
    """

    feature: str
    direction: int
    grid: np.ndarray
    curves: np.ndarray
    anchors: np.ndarray
    violating: np.ndarray


@dataclass
class MonotonicityAudit:
    """Monotonicity checks on a fitted model's response.

    ``guaranteed`` is true for lipmono models, whose construction makes every
    constrained partial derivative carry the right sign; the checks must then find
    nothing. ``passed`` is true when neither check found a violation above
    ``tolerance``.
    """

    response: str
    constraints: dict[str, int]
    tolerance: float
    guaranteed: bool
    pairs: CheckSummary
    sweeps: CheckSummary
    passed: bool
    curves: list[SweepCurves] = _hidden(default_factory=list)


@dataclass
class CertificateAudit:
    """The certified Lipschitz bound of a lipmono model next to an empirical one.

    ``lipschitz_scaled`` bounds the network ``f`` from standardized encoded inputs
    to its output, in the pair ``norm_pair``; the model's output is
    ``output_scale * f + shift``. ``lipschitz_original`` bounds the model's output
    as a function of the encoded inputs in their original units. ``per_feature``
    bounds each slope ``|d output / d x_j|`` (original units) and
    ``empirical_per_feature`` is the largest slope observed at the data rows.
    ``empirical_lower_bound`` is the steepest slope of ``f`` found by a search near
    the data, and ``tightness = empirical_lower_bound / lipschitz_scaled``, at most 1
    for a valid certificate.
    """

    chain: str
    norm_pair: str
    input_norm: str
    lipschitz_scaled: float
    lipschitz_original: float
    output_scale: float
    per_feature: dict[str, float]
    empirical_per_feature: dict[str, float]
    empirical_lower_bound: float
    tightness: float
    stored_certificate: dict | None


@dataclass
class RadiusAudit:
    """Certified robustness radii of a binary classifier, summarised.

    No perturbation ``delta`` with ``norm(delta) < radius`` in ``input_norm``
    changes the decision, where ``radius = |logit| / L``. ``radius_scaled`` has
    shape ``(N,)`` and is measured on the standardized encoded inputs (units of
    standard deviations), ``radius_original`` on the encoded inputs in their
    original units.
    """

    input_norm: str
    n_samples: int
    quantiles_scaled: dict[str, float]
    quantiles_original: dict[str, float]
    fraction_above_scaled: dict[str, float]
    per_feature_median: dict[str, float]
    radius_scaled: np.ndarray = _hidden(default=None)
    radius_original: np.ndarray = _hidden(default=None)


@dataclass
class AuditResult:
    """Everything an audit found, ready for a report or ``json.dump(result.to_dict())``."""

    model_type: str
    is_lipmono: bool
    task: str
    n_samples: int
    n_features: int
    monotonicity: MonotonicityAudit | None
    certificate: CertificateAudit | None
    radius: RadiusAudit | None
    performance: dict[str, float] | None
    history: list[dict] | None
    passed: bool
    verdict: list[str]
    runtime_seconds: float
    settings: dict = field(default_factory=dict)
    plots: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the result as nested dicts, lists and numbers that ``json.dumps`` accepts."""
        return to_jsonable(self)
