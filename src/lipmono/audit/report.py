"""The audit report: Markdown that a person can read without the code, with PNGs beside it.

:func:`write_report` writes ``dependence.png``, ``training.png`` and ``radius.png``
(each when its data exists), then ``audit.json`` (:meth:`AuditResult.to_dict`)
and ``report.html``, then ``report.md`` last. Every file is written to a temporary
name in the folder and renamed into place, so a reader never sees a half-written
file, and a ``report.md`` exists only once everything it links to does.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

from .. import __version__
from ..serialization import atomic_write_bytes
from .html import markdown_to_html
from .result import AuditResult
from .verdict import describe_example

__all__ = ["render_markdown", "write_report", "write_text_atomic"]

logger = logging.getLogger(__name__)


def write_text_atomic(path, text: str) -> str:
    """Write ``text`` as UTF-8 to ``path`` atomically and return the path."""
    atomic_write_bytes(path, text.encode("utf-8"))
    return str(path)


def _number(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [cell if isinstance(cell, str) else _number(cell) for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _monotonicity_section(result: AuditResult) -> list[str]:
    m = result.monotonicity
    lines = ["## Monotonicity", ""]
    if m is None:
        return lines + ["No monotonicity constraints were given and the model declares none.", ""]
    settings = result.settings
    lines += [
        f"Checked response: `{m.response}`. A drop larger than {m.tolerance:.3g} in the "
        "direction a constraint forbids counts as a violation.",
        "",
        f"- **Probe pairs** ({m.pairs.n_checks}): a random data row is copied, one constrained "
        "feature is moved by a random distance up to its observed range, and the two "
        "predictions are compared.",
        f"- **Sweeps** ({m.sweeps.n_checks} curves): each constrained feature is varied over a "
        f"grid of up to {settings.get('n_grid')} values across its observed range, with every "
        f"other feature fixed at one of {settings.get('n_anchors')} data rows. A curve violates "
        "when the prediction drops in the forbidden direction between any two of its points.",
        "",
    ]

    if m.guaranteed:
        lines += [
            "This is a lipmono model: monotonicity holds by construction, for every input, so "
            "these checks must find nothing. Any violation would be a fault in the software.",
            "",
        ]

    rows = []
    for name, direction in m.constraints.items():
        pair = m.pairs.per_feature.get(name, {})
        sweep = m.sweeps.per_feature.get(name, {})
        rows.append([
            name, "increasing" if direction == 1 else "decreasing",
            pair.get("n_checks", 0), pair.get("n_violations", 0), pair.get("max_violation"),
            sweep.get("n_checks", 0), sweep.get("n_violations", 0), sweep.get("max_violation"),
        ])
    lines += _table(
        ["feature", "constraint", "pairs", "violating pairs", "largest drop",
         "curves", "violating curves", "largest drop"],
        rows,
    )

    lines += [
        f"Violation rate: {m.pairs.violation_rate:.2%} of probe pairs, "
        f"{m.sweeps.violation_rate:.2%} of sweep curves.",
        "",
    ]
    constant = [name for name in m.constraints if name not in m.sweeps.per_feature]
    if constant:
        lines += [
            f"Not checked, because they are constant in the audited data: {', '.join(constant)}.",
            "",
        ]
    for summary in (m.pairs, m.sweeps):
        if summary.worst is not None:
            example = describe_example(summary.worst)
            lines += [f"Worst case among the {summary.kind}: {example}.", ""]

    if "dependence" in result.plots:
        lines += [
            "![Partial dependence and ICE curves](dependence.png)",
            "",
            "Each grey line is one data row with one feature varied; red lines violate the "
            "constraint; the black line is their mean (the partial dependence).",
            "",
        ]
    return lines


def _certificate_section(result: AuditResult) -> list[str]:
    c = result.certificate
    lines = ["## Lipschitz certificate", ""]
    if c is None:
        reason = (
            "see the verdict"
            if result.is_lipmono
            else f"{result.model_type} is not a lipmono model, so no bound is proven"
        )
        return lines + [f"Not available: {reason}.", ""]
    lines += [
        f"The certified bound L is proven from the model's weights in the norm pair "
        f"`{c.norm_pair}` (chain `{c.chain}`): for any two inputs x and x', "
        f"|f(x) - f(x')| <= L * ||x - x'||, with the {c.input_norm} norm on the inputs. "
        "The empirical lower bound is the steepest slope that a gradient search over pairs of "
        "inputs near the data found; their ratio shows how tight the certificate is.",
        "",
    ]
    rows = [
        ["certified L of the network f", c.lipschitz_scaled, "standardized encoded inputs"],
        ["empirical lower bound of f", c.empirical_lower_bound, "standardized encoded inputs"],
        ["tightness (empirical / certified)", c.tightness, ""],
        ["certified L of the model output", c.lipschitz_original, "encoded inputs, original units"],
    ]
    if c.output_scale != 1.0:
        rows.insert(3, ["output scale a (output = a f + b)", c.output_scale, "output units"])
    lines += _table(["quantity", "value", "units"], rows)
    lines += [
        "Per feature, the certificate bounds the slope |df/dx_j| (original units); the last "
        "column is the largest slope seen at the data rows.",
        "",
    ]
    rows = [
        [name, bound, c.empirical_per_feature.get(name)] for name, bound in c.per_feature.items()
    ]
    lines += _table(["encoded feature", "certified max slope", "largest slope at the data"], rows)
    return lines


def _radius_section(result: AuditResult) -> list[str]:
    r = result.radius
    if r is None:
        return []
    lines = [
        "## Certified robustness radius",
        "",
        f"For each of the {r.n_samples} samples, no perturbation whose {r.input_norm} norm is "
        "below the radius |logit| / L can change the predicted class. The scaled radius is in "
        "standard deviations of the encoded features, the original one in the encoded "
        "features' own units.",
        "",
    ]
    rows = [
        [key.replace("q", "") + "%", r.quantiles_scaled[key], r.quantiles_original[key]]
        for key in r.quantiles_scaled
    ]
    lines += _table(["quantile", "radius (standard deviations)", "radius (original units)"], rows)
    rows = [[f"> {limit}", f"{share:.1%}"] for limit, share in r.fraction_above_scaled.items()]
    lines += _table(["radius (standard deviations)", "share of samples certified"], rows)
    lines += [
        "Moving a single feature alone: the median sample's decision cannot change while the "
        "feature moves by less than this (original units).",
        "",
    ]
    lines += _table(
        ["encoded feature", "median one-feature radius"],
        [[name, value] for name, value in r.per_feature_median.items()],
    )
    if "radius" in result.plots:
        lines += ["![Distribution of certified radii](radius.png)", ""]
    return lines


def _training_section(result: AuditResult) -> list[str]:
    if not result.history:
        return []
    last = result.history[-1]
    lines = [
        "## Training",
        "",
        f"{len(result.history)} epochs; final training loss {_number(last.get('train_loss'))}, "
        f"final validation loss {_number(last.get('val_loss'))}.",
        "",
    ]
    if "training" in result.plots:
        lines += ["![Training curve](training.png)", ""]
    return lines


def _performance_section(result: AuditResult) -> list[str]:
    if not result.performance:
        return []
    lines = ["## Predictive performance on the audited data", ""]
    return lines + _table(["metric", "value"], [[k, v] for k, v in result.performance.items()])


def render_markdown(result: AuditResult) -> str:
    """Return the report of ``result`` as Markdown; images are linked by file name."""
    kind = "lipmono model" if result.is_lipmono else "model"
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Audit of a {result.model_type} ({kind}, {result.task})",
        "",
        f"Written {timestamp} by lipmono {__version__}; the audit took "
        f"{result.runtime_seconds:.1f} s on {result.n_samples} rows x {result.n_features} "
        f"columns. Settings: {', '.join(f'{k}={v}' for k, v in result.settings.items())}.",
        "",
        "## Verdict",
        "",
    ]
    lines += [f"- {line}" for line in result.verdict] + [""]
    for section in (
        _monotonicity_section, _certificate_section, _radius_section,
        _training_section, _performance_section,
    ):
        lines += section(result)
    lines += [
        "## Files",
        "",
        "`audit.json` holds every number in this report in machine-readable form.",
        "",
    ]
    return "\n".join(lines)


def write_report(result: AuditResult, out_dir) -> dict[str, str]:
    """Write the plots, ``audit.json``, ``report.html`` and ``report.md`` into ``out_dir``.

    Creates ``out_dir`` if needed. Records the plot paths in ``result.plots`` and
    returns every written path by name (``"report"``, ``"html"``, ``"json"``, and the
    plots).
    """
    from .plots import plot_dependence, plot_radius, plot_training

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file; give a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    if result.monotonicity is not None and result.monotonicity.curves:
        plots["dependence"] = plot_dependence(
            result.monotonicity.curves, result.monotonicity.response, out / "dependence.png"
        )
    if result.history:
        plots["training"] = plot_training(result.history, out / "training.png")
    if result.radius is not None:
        plots["radius"] = plot_radius(result.radius, out / "radius.png")
    result.plots = {name: Path(path).name for name, path in plots.items()}
    written = dict(plots)
    written["json"] = write_text_atomic(
        out / "audit.json", json.dumps(result.to_dict(), indent=2, allow_nan=False)
    )
    markdown = render_markdown(result)
    title = f"Audit of a {result.model_type}"
    written["html"] = write_text_atomic(out / "report.html", markdown_to_html(markdown, title))
    written["report"] = write_text_atomic(out / "report.md", markdown)
    logger.info("audit report written to %s", written["report"])
    return written
