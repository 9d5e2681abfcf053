"""Figures of the trigger example, written as PNG files with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "plot_decay_time_efficiency",
    "plot_displacement_scan",
    "plot_features",
    "plot_ip_chi2_stability",
    "plot_lambda_scan",
    "plot_roc",
]

# One colour and marker per model, the same in every figure.
STYLES = {
    "monotonic Lipschitz": dict(color="tab:blue", marker="o"),
    "Lipschitz, not monotonic": dict(color="tab:orange", marker="s"),
    "unconstrained network": dict(color="tab:red", marker="^"),
    "boosted trees": dict(color="tab:green", marker="D"),
}


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)
    return path


def plot_features(frame, features, path: Path) -> Path:
    """Histogram each simulated feature by candidate category."""
    columns = 4
    rows = int(np.ceil(len(features) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows))
    for axis, feature in zip(axes.ravel(), features, strict=False):
        values = frame[feature].to_numpy()
        low, high = np.quantile(values, [0.001, 0.995])
        bins = np.linspace(low, high, 60)
        for category, group in frame.groupby("category", observed=True):
            axis.hist(group[feature], bins=bins, histtype="step", density=True, label=category)
        axis.set_xlabel(feature)
        axis.set_yscale("log")
    axes.ravel()[0].legend(title="category")
    for axis in axes.ravel()[len(features):]:
        axis.set_visible(False)
    figure.suptitle("Simulated candidates (normalized to unit area)")
    return _save(figure, path)


def plot_roc(curves: dict, retention: float, path: Path) -> Path:
    """Signal efficiency against background retention, one curve per model."""
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, (background, signal) in curves.items():
        axis.plot(background, signal, label=name, color=STYLES[name]["color"])
    axis.axvline(retention, color="grey", linestyle=":", label=f"working point {retention:.1%}")
    axis.set_xscale("log")
    axis.set_xlim(1e-4, 1)
    axis.set_xlabel("background retention")
    axis.set_ylabel("signal efficiency")
    axis.grid(alpha=0.3)
    axis.legend()
    return _save(figure, path)


def plot_decay_time_efficiency(edges, efficiencies: dict, retention: float, path: Path) -> Path:
    """Signal efficiency in bins of true decay time at a fixed background retention."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    half_widths = 0.5 * np.diff(edges)
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for name, (efficiency, error) in efficiencies.items():
        axis.errorbar(
            centres, efficiency, xerr=half_widths, yerr=error, linestyle="none",
            label=name, markersize=4, **STYLES[name],
        )
    axis.set_xlabel("true b-hadron decay time [ps]")
    axis.set_ylabel("signal efficiency")
    axis.set_title(f"Threshold accepting {retention:.1%} of the background")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    return _save(figure, path)


def plot_displacement_scan(shifts, examples: dict, drops: dict, training_max, path: Path) -> Path:
    """Score along the joint displacement scan for a few candidates, and drop fractions.

    ``examples`` maps a model name to an ``(n_examples, len(shifts))`` score
    array; ``drops`` maps a scan name to ``{model: fraction dropping}``.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, scan in examples.items():
        for i, row in enumerate(scan):
            left.plot(shifts, row - row[0], color=STYLES[name]["color"], alpha=0.8,
                      linestyle=["-", "--", ":"][i % 3], label=name if i == 0 else None)
    left.axvline(training_max, color="grey", linestyle=":",
                 label="median shift that passes the largest training value")
    left.set_xlabel("shift of log(min IP chi2) and log(FD chi2)")
    left.set_ylabel("score change (logit)")
    left.set_title("Three candidates moved to larger displacement")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)

    scans = list(drops)
    models = list(next(iter(drops.values())))
    width = 0.8 / len(models)
    for j, name in enumerate(models):
        values = [100 * drops[scan][name] for scan in scans]
        positions = np.arange(len(scans)) + (j - (len(models) - 1) / 2) * width
        bars = right.bar(positions, values, width, label=name, color=STYLES[name]["color"])
        right.bar_label(bars, fmt="%.1f", fontsize=7)
    right.set_xticks(np.arange(len(scans)), scans)
    right.set_ylabel("candidates whose score ever falls [%]")
    right.set_title("Fraction of candidates penalized for more displacement")
    right.legend(fontsize=8)
    return _save(figure, path)


def plot_ip_chi2_stability(stability: dict, path: Path) -> Path:
    """Accepted-background ratio when the IP chi2 is scaled or smeared."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, rows in stability.items():
        scale = [r for r in rows if r["effect"] == "scale"]
        smear = [r for r in rows if r["effect"] == "smear"]
        left.plot([r["value"] for r in scale], [r["background_ratio"] for r in scale],
                  label=name, **STYLES[name])
        right.plot([100 * r["value"] for r in smear], [r["background_ratio"] for r in smear],
                   label=name, **STYLES[name])
    left.set_xlabel("factor applied to every IP chi2")
    right.set_xlabel("log-normal smearing of IP chi2 [%]")
    for axis in (left, right):
        axis.axhline(1.0, color="grey", linestyle=":")
        axis.set_ylabel("accepted background / nominal")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _save(figure, path)


def plot_lambda_scan(lambdas, rows: list[dict], references: dict, retention: float,
                     path: Path) -> Path:
    """AUC and signal efficiency at the working point against the Lipschitz bound."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(lambdas, [r["auc"] for r in rows], **STYLES["monotonic Lipschitz"],
              label="monotonic Lipschitz")
    right.errorbar(lambdas, [r["signal_efficiency"] for r in rows],
                   yerr=[r["signal_efficiency_error"] for r in rows],
                   label="monotonic Lipschitz", **STYLES["monotonic Lipschitz"])
    for name, reference in references.items():
        color = STYLES[name]["color"]
        left.axhline(reference["auc"], color=color, linestyle="--", label=name)
        right.axhline(reference["signal_efficiency"], color=color, linestyle="--", label=name)
    left.set_ylabel("AUC")
    right.set_ylabel(f"signal efficiency at {retention:.1%} background")
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("Lipschitz bound lambda")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _save(figure, path)
