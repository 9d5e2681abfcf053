"""Plain-language verdict of an audit, one sentence group per check."""

from __future__ import annotations

from .result import AuditResult, MonotonicityAudit, ViolationExample

__all__ = ["verdict_lines", "describe_example"]


def describe_example(example: ViolationExample) -> str:
    """Describe a violating pair in one sentence.

    The feature is moved in the direction that must not lower the prediction:
    up for an increasing constraint, down for a decreasing one.
    """
    verb = "raising" if example.direction == 1 else "lowering"
    start, end = (
        (example.value_low, example.value_high)
        if example.direction == 1
        else (example.value_high, example.value_low)
    )
    before, after = (
        (example.prediction_low, example.prediction_high)
        if example.direction == 1
        else (example.prediction_high, example.prediction_low)
    )
    return (
        f"at row {example.row} of the audited data (counting from 0), {verb} "
        f"{example.feature!r} from {start:.4g} to {end:.4g} "
        f"moves the prediction from {before:.4g} down to {after:.4g}, although by the "
        "constraint it must not go down"
    )


def _monotonicity_line(m: MonotonicityAudit) -> str:
    features = ", ".join(f"{name!r}" for name in m.constraints)
    checks = (
        f"{m.pairs.n_checks} probe pairs and {m.sweeps.n_checks} sweep curves on the data"
    )
    if m.guaranteed and m.passed:
        return (
            f"Monotonicity: PASS. The model is monotonic by construction in {features}: "
            f"its architecture makes every constrained partial derivative carry the right "
            f"sign for any input. The {checks} found no violation, as the construction requires."
        )
    if m.guaranteed:
        worst = m.pairs.worst or m.sweeps.worst
        return (
            f"Monotonicity: FAILURE. This model is built to be monotonic in {features}, yet "
            f"{m.pairs.n_violations} probe pairs and {m.sweeps.n_violations} sweep curves "
            f"violate it; for example {describe_example(worst)}. This must not happen: do not "
            "rely on this model, and report it to the lipmono developers with the model file."
        )
    if m.passed:
        return (
            f"Monotonicity: no violation found. The {checks} found none in {features}. This is "
            "evidence, not proof: the model is not monotonic by construction, so inputs that "
            "were not tested may still violate the constraints."
        )
    worst = max(
        (s.worst for s in (m.pairs, m.sweeps) if s.worst is not None),
        key=lambda example: example.violation,
    )
    return (
        f"Monotonicity: FAIL. The model violates its constraints in "
        f"{m.pairs.violation_rate:.1%} of probe pairs and {m.sweeps.violation_rate:.1%} of "
        f"sweep curves. Worst case: {describe_example(worst)}."
    )


def verdict_lines(result: AuditResult, failures: list[str], notes: list[str] = ()) -> list[str]:
    """Return the verdict of ``result`` as a list of plain sentences, one item per check.

    ``failures`` are messages of certificate checks that failed, and ``notes`` are
    complete sentences about checks that did not apply.
    """
    lines = []
    if result.monotonicity is not None:
        lines.append(_monotonicity_line(result.monotonicity))
    else:
        lines.append(
            "Monotonicity: not checked, because no monotonicity constraint was given "
            "and the model declares none."
        )
    for failure in failures:
        lines.append(f"Certificate: FAILURE. {failure}")
    lines.extend(notes)
    c = result.certificate
    if c is not None:
        lines.append(
            f"Lipschitz certificate: PASS. A change of size d in the inputs (measured in the "
            f"{c.input_norm} norm, in standard deviations of each encoded feature) changes the "
            f"model's output by at most {c.output_scale * c.lipschitz_scaled:.4g} x d. This "
            "bound is proven from the weights. A search near the data found a slope of "
            f"{c.tightness:.0%} of it, so the true constant lies between the two."
        )
    elif result.is_lipmono is False:
        lines.append(
            f"Lipschitz certificate: not available. {result.model_type} is not a lipmono model, "
            "so no bound on how fast its output can change is proven."
        )
    r = result.radius
    if r is not None:
        median = r.quantiles_scaled["q50"]
        share = r.fraction_above_scaled.get("0.1", 0.0)
        lines.append(
            f"Robustness: for half of the samples no perturbation smaller than {median:.3g} "
            f"standard deviations ({r.input_norm} norm) can change the decision, and "
            f"{share:.0%} of the samples are certified at 0.1 standard deviations."
        )
    overall = "PASS" if result.passed else "FAIL"
    lines.append(f"Overall: {overall}.")
    return lines
