"""Markdown rendering of the accuracy results and replacement of the page section."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .config import METRICS, SPECS

__all__ = ["render_section", "replace_section", "goal_checks", "ANALYSIS"]

START, END = "<!-- accuracy:start -->", "<!-- accuracy:end -->"

_LABELS = {
    "lipmono": "lipmono MonotonicMLP",
    "lipmono_unconstrained": "same network, unconstrained",
    "xgboost": "XGBoost, monotone",
    "lightgbm": "LightGBM, monotone",
    "hist_gradient_boosting": "HistGradientBoosting, monotone",
    "lipmono_estimator": "lipmono estimator, own early stopping",
}

#: Hand-written remarks per data set, shown under its tables: what the numbers
#: mean and, where a goal is missed, what was tried. Update after a full run.
ANALYSIS: dict[str, str] = {
    "compas": (
        "The boosters lead by about half a point in both protocols. Tried for the network, "
        "literature protocol, three seeds each: widths [16, 16], [32, 32] and [64, 64]; "
        "lambda 1, 2 and 4; learning rates 1e-3 and 3e-3; batches 32, 64 and 256; "
        "`standard` and `quantile` scaling. Every mean landed between 68.3 % and 68.8 %, "
        "so the literature goal of 69.6 % was not reached with any of them."
    ),
    "blogfeedback": (
        "Scaling decided this data set. A first full run on the loader's [0, 1] features "
        "(`none`, lambda 4) plateaued at RMSE 0.164 (literature) and 0.165 (honest); "
        "lambda 20 was worse after 8 epochs (0.175). Standardizing the inputs left RMSE "
        "near 1 after 3 epochs, because rare rows sit hundreds of standard deviations out. "
        "The `quantile` map with lambda 0.25-0.5 brought it to 0.151; a wider [128, 128] "
        "network did not help (0.153 at 20 epochs). The boosters stay better by about "
        "0.005. The unconstrained network is 0.001 better than the monotonic one but "
        "violates the constraints on about a third of the probe pairs. The published "
        "numbers use a slightly different test file (see the loader), so they compare "
        "only approximately."
    ),
    "auto_mpg": (
        "On this split no model comes near the published 7.35-7.58: the boosters stay "
        "above 10 and a linear regression scores 11.55. LMN's 7.58 comes from random "
        "80/20 splits with other test rows. With `quantile` scaling the network leads the "
        "boosters under the literature protocol (9.86). Cross-validation on the training "
        "rows preferred `standard` scaling, which scores 11.42 on the test set, behind "
        "XGBoost's 10.80. Tried in tuning: lambda 1, 2, 4 and 8 with `standard` scaling "
        "(10.9-14.5), lambda 0.5, 1 and 2 with `quantile` scaling (9.8-11.5), widths "
        "[64, 64] (10.5), learning rates 3e-3 and 1e-2, batches 16 and 64."
    ),
    "heart_disease": (
        "Every literature setting tried stops at 54 of 61 test rows (88.52 %); 90 % needs "
        "55. Tried: lambda 0.25, 0.5, 1 and 2, learning rates 1e-3 and 3e-3, batches 16, "
        "32 and 64, `standard` and `quantile` scaling. One test row is 1.6 points, so the "
        "differences between models here are a few rows. Under the honest protocol the "
        "network leads the boosters by about two points. Nolte et al.'s script also used "
        "the file's row index as a feature, which this loader drops."
    ),
    "overall": (
        "The monotonic network violated no constraint on any probe pair, as its "
        "construction guarantees, and neither did the boosters with monotone constraints. "
        "The unconstrained network violated them at the rates shown. Under the honest "
        "protocol the network leads every booster only on Heart Disease. It trails them by "
        "about half a point of accuracy on COMPAS, by about 0.005 RMSE on BlogFeedback "
        "and by about 0.6 MSE on Auto-MPG. The estimator row (`MonotonicClassifier` or "
        "`MonotonicRegressor` with the chosen architecture and its built-in early stopping "
        "on 10% of the training rows) lands within one standard deviation of the harness "
        "loop on Auto-MPG, BlogFeedback and Heart Disease, and about one point lower on "
        "COMPAS, where stopping on the validation loss ran all 40 epochs. Seeds fix every "
        "result: a repeated full run reproduced every metric exactly. The full runs shared "
        "the two cores with other jobs (load average between 1 and 12), so fit times are "
        "upper bounds."
    ),
}


def _fmt(value: float, metric: str) -> str:
    return f"{value:.2f}" if metric in ("accuracy", "mse") else f"{value:.4f}"


def _better(a: float, b: float, metric: str) -> bool:
    return a > b if METRICS[metric].higher_is_better else a < b


def goal_checks(results: dict) -> list[str]:
    """Return one line per goal: the value reached, the target, met or missed by how much."""
    lines = []
    ahead = []
    for name, entry in results["datasets"].items():
        if entry.get("status") != "run":
            continue
        metric = entry["metric"]
        for protocol, target in SPECS[name].goals.items():
            ours = next(r for r in entry[protocol]["rows"] if r["model"] == "lipmono")
            value = ours["mean"]
            met = value >= target if METRICS[metric].higher_is_better else value <= target
            gap = abs(value - target)
            verdict = "met" if met else f"missed by {_fmt(gap, metric)}"
            lines.append(
                f"- {name}, {protocol}: {_fmt(value, metric)} (mean) against the goal "
                f"{_fmt(target, metric)}: {verdict}"
            )
        honest = {r["model"]: r["mean"] for r in entry["honest"]["rows"]}
        trees = [m for m in honest if not m.startswith("lipmono")]
        if all(_better(honest["lipmono"], honest[m], metric) for m in trees):
            ahead.append(name)
    minutes = results["meta"]["wall_minutes"]
    if results["meta"]["mode"] == "full":
        verdict = "met" if minutes <= 60 else f"missed by {minutes - 60:.1f} minutes"
        lines.append(f"- full run: {minutes:.1f} minutes against the goal of 60: {verdict}")
    count = sum(1 for e in results["datasets"].values() if e.get("status") == "run")
    lines.append(
        f"- honest protocol, ahead of every tree baseline (mean) on {len(ahead)} of {count} "
        f"data sets ({', '.join(ahead) or 'none'}); the goal is at least three of four"
    )
    return lines


def _table(rows: list[dict], metric: str, length_name: str) -> list[str]:
    out = [
        f"| model | {METRICS[metric].name} mean ± std | min – max | size | "
        f"{length_name} | fit time (s) | violation rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lengths = sorted(set(row["selected_per_seed"]))
        length = str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]}–{lengths[-1]}"
        out.append(
            f"| {_LABELS[row['model']]} | {_fmt(row['mean'], metric)} ± {_fmt(row['std'], metric)}"
            f" | {_fmt(row['min'], metric)} – {_fmt(row['max'], metric)}"
            f" | {row['size']:,} {row['size_unit']} | {length}"
            f" | {row['fit_seconds_mean']:.1f} | {row['violation_rate_max']:.4%} |"
        )
    return out


def _header(meta: dict) -> list[str]:
    return [
        f"Command: `{meta['command']}` ({meta['mode']} mode), finished {meta['finished']}, "
        f"{meta['wall_minutes']:.1f} minutes on {meta['machine']}. "
        f"Versions: {meta['versions']}. Raw results: `{meta['results_file']}`.",
        "",
        "Two protocols, both on the papers' fixed train/test splits:",
        "",
        "- **Literature**: fixed settings, and the epoch (networks) or number of trees with "
        "the best *test* score is reported, as most monotonic-network papers do. This "
        "selection looks at the test set, so its numbers are optimistic. They are here only "
        f"to compare with published tables. Seeds {meta['literature_seeds']}.",
        "- **Honest**: settings and the number of epochs or trees are chosen by 3-fold "
        "cross-validation on the training rows (one 80/20 holdout for BlogFeedback). The "
        "choice is refit on all training rows and scored once on the test set. "
        f"Mean ± sample std over seeds {meta['honest_seeds']}.",
        "",
        "The network is `lipmono.MonotonicMLP` (GroupSort, l1 chain, monotonic residual) "
        "trained by the harness's own loop (`benchmarks/accuracy/network.py`: Adam, "
        "cross-entropy or squared error, regression targets standardized), because the "
        "literature protocol needs the test score after every epoch. Inputs pass through a "
        "per-feature non-decreasing map fitted on the training rows, listed per data set "
        "as *scaling*: `standard` (standardization), `quantile` (empirical CDF, then "
        "standardization) or `none`. A non-decreasing map keeps every constraint's "
        "direction in the original units. The unconstrained network has the same widths and "
        "Lipschitz bound with every constraint set to 0. The boosters get the same "
        "constraints through their own `monotone_constraints` or `monotonic_cst`.",
        "",
        "Columns: *size* counts trainable scalars for the networks and leaves summed over "
        "all trees for the boosters (each tree also has leaves − 1 split nodes). "
        "*Fit time* is wall-clock seconds per fit on one thread, including the per-epoch "
        "test evaluation in the literature protocol; the machine was shared with other "
        "jobs, so times are upper bounds. *Violation rate* is the largest fraction, over "
        f"seeds, of {meta['n_probe_pairs']:,} random probe pairs whose output moves the "
        "wrong way by more than 1e-6 relative. A pair is a test row and a copy moved along "
        "one constrained feature in its direction, by up to the feature's range. Networks "
        "are probed in float64.",
        "",
        "Published numbers are quoted as given in the literature. The tables they come "
        "from were not re-checked against the papers here.",
        "",
    ]


def _net_setting(setting: dict) -> str:
    return (
        f"widths {list(setting['hidden'])}, lambda {setting['lipschitz']:g}, learning rate "
        f"{setting['learning_rate']:g}, batch {setting['batch_size']}, scaling "
        f"`{setting.get('scaling', 'standard')}`"
    )


def _dataset_block(name: str, entry: dict) -> list[str]:
    lines = [f"### {name}", ""]
    if entry.get("status") != "run":
        return [*lines, f"Not run: {entry['reason']}.", ""]
    metric = entry["metric"]

    lines.append(
        f"{entry['n_train']:,} train and {entry['n_test']:,} test rows, "
        f"{entry['n_features']} features, {entry['n_constrained']} constrained. "
        f"{entry['notes']}"
    )
    lines.append("")
    for item in entry["published"]:
        lines.append(
            f"- Published: {_fmt(item['value'], metric)} ({item['model']}; {item['source']})"
        )
    literature = entry["literature"]["rows"]
    lines.extend([
        "",
        f"Literature settings: networks {_net_setting(literature[0]['setting'])}, up to "
        f"{literature[0]['setting']['epochs']} epochs; boosters "
        f"{literature[2]['setting']['max_leaves']} leaves per tree, learning rate "
        f"{literature[2]['setting']['learning_rate']:g}, up to "
        f"{literature[2]['setting']['n_estimators']} trees.",
        "",
        "Literature protocol (best epoch or tree count on the test set):",
        "",
    ])
    lines.extend(_table(entry["literature"]["rows"], metric, "best epoch / trees"))
    lines.extend(["", "Honest protocol (settings chosen on the training rows):", ""])
    lines.extend(_table(entry["honest"]["rows"], metric, "epochs / trees"))
    lines.append("")

    chosen = []
    for model, choice in entry["honest"]["selection"].items():
        setting = choice["chosen"]
        if model.startswith("lipmono"):
            chosen.append(f"{_LABELS[model]}: {_net_setting(setting)}, {choice['length']} epochs")
        else:
            chosen.append(
                f"{_LABELS[model]}: {setting['max_leaves']} leaves per tree, learning rate "
                f"{setting['learning_rate']:g}, {choice['length']} trees"
            )
    lines.extend([f"Honest choices: {'; '.join(chosen)}.", ""])
    if name in ANALYSIS:
        lines.extend([ANALYSIS[name], ""])
    return lines


def render_section(results: dict) -> str:
    """Return the markdown between the accuracy markers."""
    lines = _header(results["meta"])
    for name, entry in results["datasets"].items():
        lines.extend(_dataset_block(name, entry))
    lines.extend([
        "### ChestXRay",
        "",
        "Not run: only the label table (`sample_labels.csv`, 5,606 rows) is available, "
        "without the X-ray images, and the published benchmark feeds ResNet-18 image "
        "features to the network, so it cannot be reproduced.",
        "",
        "### Goals",
        "",
        *goal_checks(results),
    ])
    if "overall" in ANALYSIS:
        lines.extend(["", ANALYSIS["overall"]])
    return "\n".join(lines)


def replace_section(page: Path, section: str) -> None:
    """Replace the text between the accuracy markers of ``page``, atomically."""
    text = page.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(
            f"{page} lacks the markers {START} and {END}; add them where the accuracy "
            "section belongs"
        )
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new_text = f"{head}{START}\n{section}\n{END}{tail}"
    fd, tmp = tempfile.mkstemp(dir=page.parent, prefix=f".{page.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(new_text)
    os.replace(tmp, page)
