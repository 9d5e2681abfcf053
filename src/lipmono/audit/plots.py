"""Audit figures: partial dependence with ICE curves, the training curve, certified radii.

The figures are drawn with matplotlib's object-oriented API on an Agg canvas, so
they never touch pyplot's global state or the user's interactive backend. Each
function writes one PNG atomically (a temporary file in the same folder, then a
rename) and returns its path. matplotlib is imported only here, on first use.
"""

from __future__ import annotations

import io
import math
import textwrap

import numpy as np

from ..serialization import atomic_write_bytes
from .result import RadiusAudit, SweepCurves

__all__ = ["plot_dependence", "plot_training", "plot_radius", "save_figure"]

# At most this many conforming and this many violating ICE curves are drawn per
# feature, so that the figure stays legible. The panel title gives the full counts.
_MAX_ICE_CURVES = 60
_DPI = 110


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "the audit's plots need matplotlib; install it with "
            "pip install 'lipmono[plot]', or call audit(..., plots=False)"
        ) from None
    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def save_figure(figure, path) -> str:
    """Write ``figure`` as a PNG to ``path`` atomically and return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return str(path)


def _subsample(indices: np.ndarray, rng) -> np.ndarray:
    if indices.size <= _MAX_ICE_CURVES:
        return indices
    return np.sort(rng.choice(indices, size=_MAX_ICE_CURVES, replace=False))


def plot_dependence(curves: list[SweepCurves], response: str, path) -> str:
    """Draw partial dependence and ICE curves, one panel per constrained feature.

    Grey lines are individual conditional expectation curves (one data row, one
    feature varied), red ones break the constraint, and the black line is their
    mean, the partial dependence.
    """
    n_panels = len(curves)
    n_columns = 2 if n_panels == 4 else min(3, n_panels)
    n_rows = math.ceil(n_panels / n_columns)
    figure = _figure(4.2 * n_columns, 3.3 * n_rows)
    axes = figure.subplots(n_rows, n_columns, squeeze=False).ravel()
    rng = np.random.default_rng(0)
    for ax, curve in zip(axes, curves, strict=False):
        for a in _subsample(np.flatnonzero(~curve.violating), rng):
            ax.plot(curve.grid, curve.curves[a], color="0.6", alpha=0.35, linewidth=0.8)
        for a in _subsample(np.flatnonzero(curve.violating), rng):
            ax.plot(curve.grid, curve.curves[a], color="tab:red", alpha=0.6, linewidth=0.9)
        ax.plot(curve.grid, curve.curves.mean(axis=0), color="black", linewidth=2.2)
        direction = {1: "increasing", -1: "decreasing"}[curve.direction]
        n_bad = int(curve.violating.sum())
        ax.set_title(
            f"{curve.feature} ({direction})\n{n_bad} of {curve.violating.size} curves violate",
            fontsize=9,
        )
        ax.set_xlabel(curve.feature)
        ax.grid(alpha=0.3)
    for ax in axes[::n_columns]:
        ax.set_ylabel(textwrap.fill(response, 36), fontsize=8)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    figure.suptitle(
        "Partial dependence (black) and ICE curves (grey; red = violates the constraint)",
        fontsize=10,
    )
    return save_figure(figure, path)


def plot_training(history: list[dict], path) -> str:
    """Draw the training and validation loss per epoch from an estimator's ``history_``."""
    figure = _figure(6.0, 3.6)
    ax = figure.subplots()
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        values = [row.get(key) for row in history]
        pairs = zip(epochs, values, strict=True)
        points = [(e, v) for e, v in pairs if v is not None and np.isfinite(v)]
        if points:
            x, y = zip(*points, strict=True)
            ax.plot(x, y, marker="o" if len(points) < 30 else None, markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training curve", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(figure, path)


def plot_radius(radius: RadiusAudit, path) -> str:
    """Draw the distribution of certified radii (standardized units): histogram and survival curve.

    The histogram covers radii up to the 99th percentile, so that a few very large
    radii do not squeeze the rest. The survival curve shows all positive radii on a
    log scale.
    """
    figure = _figure(9.0, 3.6)
    left, right = figure.subplots(1, 2)
    values = np.sort(radius.radius_scaled)
    upper = float(np.quantile(values, 0.99))
    span = (0.0, upper if upper > 0 else 1.0)
    left.hist(values, bins=40, range=span, color="tab:blue", alpha=0.8)
    left.axvline(np.median(values), color="black", linestyle="--", label="median")
    left.set_xlabel(f"certified radius ({radius.input_norm}, standard deviations)")
    left.set_ylabel("samples")
    left.set_title("Histogram (up to the 99th percentile)", fontsize=9)
    left.legend()
    left.grid(alpha=0.3)
    fraction_above = 1.0 - np.arange(values.size) / values.size
    positive = values > 0
    right.step(values[positive], fraction_above[positive], where="post", color="tab:blue")
    right.set_xscale("log")
    right.set_xlabel(f"radius r ({radius.input_norm}, standard deviations)")
    right.set_ylabel("share of samples certified at r")
    right.set_title("Share of samples whose radius is at least r", fontsize=9)
    right.set_ylim(0, 1.02)
    right.grid(alpha=0.3, which="both")
    figure.suptitle(
        "No perturbation smaller than a sample's radius can change its decision", fontsize=10
    )
    return save_figure(figure, path)
