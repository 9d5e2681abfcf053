"""Train trigger classifiers on simulated b-hadron candidates and measure why monotonicity matters.

One command reproduces every number and figure of docs/trigger.md::

    python examples/trigger/run.py --out docs/trigger

``--quick`` runs the same steps on small samples in about a minute, as a
smoke test. The results file ``results.json`` contains every number that the
figures show.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import plots
import sklearn
import throughput
import torch
from inputs import FOUR_INPUTS, MONOTONIC, model_inputs
from models import (
    NetworkSettings,
    fit_boosted_trees,
    fit_lipschitz_network,
    fit_unconstrained_network,
)
from sklearn.metrics import roc_curve
from studies import (
    decay_time_efficiency,
    displacement_scan,
    ip_chi2_stability,
    score_drops,
    working_point,
)
from threadpoolctl import threadpool_limits

import lipmono
from lipmono.datasets import make_trigger_candidates
from lipmono.datasets.trigger import FEATURES

logger = logging.getLogger("trigger")

MONOTONIC_NAME = "monotonic Lipschitz"


@dataclass(frozen=True)
class Config:
    """Sample sizes and settings of one run; :data:`QUICK` shrinks them for a smoke test."""

    # Training candidates, 20 % of them b hadrons; the same sample for every model.
    n_train: int = 200_000
    # Independent test candidates for every measurement.
    n_test: int = 500_000
    # b hadrons simulated with a ten times longer lifetime, far outside the training range.
    n_long_lived: int = 50_000
    long_lived_lifetime: float = 15.0
    # Main working point: the threshold accepts this fraction of the background.
    retention: float = 0.001
    # A looser working point reported beside it.
    loose_retention: float = 0.01
    lipschitz: float = 2.0
    lambda_scan: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    network: NetworkSettings = NetworkSettings()
    # Width of the compact model exported to C.
    compact_hidden: tuple[int, ...] = (32, 32)
    # Candidates per displacement scan and the largest shift in log(chi2).
    n_scan: int = 2_000
    max_shift: float = 12.0
    n_shifts: int = 49
    ip_chi2_factors: tuple[float, ...] = (0.9, 0.95, 1.0, 1.05, 1.1)
    ip_chi2_smears: tuple[float, ...] = (0.0, 0.05, 0.1)
    n_throughput: int = 1_000_000
    seed: int = 2026


QUICK = Config(
    n_train=12_000, n_test=20_000, n_long_lived=2_000, lambda_scan=(1.0, 2.0),
    network=NetworkSettings(max_iter=3), n_scan=200, n_shifts=9, n_throughput=50_000,
    retention=0.01, loose_retention=0.05,
)

DECAY_TIME_EDGES = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0])


def simulate(config: Config) -> dict:
    """Simulate the training, test and long-lived samples; return them with model inputs."""
    train = make_trigger_candidates(config.n_train, seed=config.seed)
    test = make_trigger_candidates(config.n_test, seed=config.seed + 1)
    long_lived = make_trigger_candidates(
        config.n_long_lived, seed=config.seed + 2, signal_fraction=0.99, charm_fraction=0.0,
        fake_fraction=0.0, b_lifetime=config.long_lived_lifetime,
    )
    long_lived = long_lived[long_lived["label"] == 1]
    return {
        "train": train, "test": test, "long_lived": long_lived,
        "X_train": model_inputs(train), "X_test": model_inputs(test),
        "X_long_lived": model_inputs(long_lived),
    }


def fit_models(samples: dict, config: Config) -> dict:
    """Fit the four classifiers of the comparison on the same training sample."""
    X, y = samples["X_train"], samples["train"]["label"].to_numpy()
    settings, seed = config.network, config.seed
    return {
        MONOTONIC_NAME: fit_lipschitz_network(
            X, y, monotonic=MONOTONIC, lipschitz=config.lipschitz, settings=settings, seed=seed,
            name=MONOTONIC_NAME,
        ),
        "Lipschitz, not monotonic": fit_lipschitz_network(
            X, y, monotonic=None, lipschitz=config.lipschitz, settings=settings, seed=seed,
            name="Lipschitz, not monotonic",
        ),
        "unconstrained network": fit_unconstrained_network(
            X, y, settings=settings, seed=seed, name="unconstrained network"
        ),
        "boosted trees": fit_boosted_trees(X, y, seed=seed, name="boosted trees"),
    }


def measure_performance(models: dict, samples: dict, config: Config, out: Path) -> dict:
    """Working points, ROC curves and efficiency against decay time for every model."""
    test, X_test = samples["test"], samples["X_test"]
    labels = test["label"].to_numpy()
    signal = labels == 1
    results, curves, efficiencies = {}, {}, {}
    for name, scorer in models.items():
        scores = scorer(X_test)
        point = working_point(scores, labels, config.retention)
        loose = working_point(scores, labels, config.loose_retention)
        long_lived_scores = scorer(samples["X_long_lived"])
        efficiency, error = decay_time_efficiency(
            scores[signal], test["decay_time"].to_numpy()[signal], point["threshold"],
            DECAY_TIME_EDGES,
        )
        efficiencies[name] = (efficiency, error)
        background_rate, signal_rate, _ = roc_curve(labels, scores)
        keep = np.unique(np.geomspace(1, len(background_rate) - 1, 400).astype(int))
        curves[name] = (background_rate[keep], signal_rate[keep])
        results[name] = {
            "training_seconds": scorer.seconds,
            "working_point": point,
            "loose_working_point": loose,
            "long_lived_efficiency": float(np.mean(long_lived_scores > point["threshold"])),
            "decay_time_efficiency": efficiency.tolist(),
            "decay_time_efficiency_error": error.tolist(),
        }
        logger.info("%s: AUC %.4f, efficiency %.3f at %.2g background", name, point["auc"],
                    point["signal_efficiency"], config.retention)
    plots.plot_roc(curves, config.retention, out / "roc.png")
    plots.plot_decay_time_efficiency(DECAY_TIME_EDGES, efficiencies, config.retention,
                                     out / "efficiency_vs_decay_time.png")
    return results


def measure_displacement(models: dict, samples: dict, config: Config, out: Path) -> dict:
    """Move real test candidates to larger displacement and count falling scores."""
    rng = np.random.default_rng(config.seed + 3)
    X_test = samples["X_test"]
    rows = rng.choice(len(X_test), size=min(config.n_scan, len(X_test)), replace=False)
    table = X_test.iloc[rows].reset_index(drop=True)
    shifts = np.linspace(0.0, config.max_shift, config.n_shifts)
    scans = {
        "IP chi2": ["log_min_ip_chi2"],
        "FD chi2": ["log_fd_chi2"],
        "IP and FD chi2": ["log_min_ip_chi2", "log_fd_chi2"],
    }
    drops, examples = {}, {}
    for scan_name, columns in scans.items():
        drops[scan_name] = {}
        for name, scorer in models.items():
            scan = displacement_scan(scorer, table, columns, shifts)
            drops[scan_name][name] = score_drops(scan)
            if scan_name == "IP and FD chi2":
                examples[name] = scan[:3]
    # How far the joint scan must go to leave the training sample, for the median candidate.
    training_max = float(np.median(
        samples["X_train"]["log_min_ip_chi2"].max() - table["log_min_ip_chi2"]
    ))
    fractions = {scan: {m: v["fraction_dropping"] for m, v in d.items()} for scan, d in
                 drops.items()}
    plots.plot_displacement_scan(shifts, examples, fractions, training_max,
                                 out / "displacement_scan.png")
    return {"shifts": shifts.tolist(), "n_candidates": len(table), "drops": drops,
            "median_shift_to_training_max": training_max}


def measure_stability(models: dict, samples: dict, results: dict, config: Config,
                      out: Path) -> dict:
    """Accepted fractions at the nominal threshold when the IP chi2 is mismodelled."""
    labels = samples["test"]["label"].to_numpy()
    stability = {
        name: ip_chi2_stability(
            scorer, samples["X_test"], labels, results[name]["working_point"]["threshold"],
            config.ip_chi2_factors, config.ip_chi2_smears, config.seed + 4,
        )
        for name, scorer in models.items()
    }
    for name, scorer in models.items():
        certificate = getattr(scorer.model, "certificate_", None)
        if certificate is None:
            continue
        # |d logit / d log(IP chi2)| is certified, so scaling every IP chi2 by f moves
        # each logit by at most that bound times |log f|.
        slope = certificate["per_feature"]["log_min_ip_chi2"]
        for row in stability[name]:
            if row["effect"] == "scale":
                row["certified_max_abs_score_change"] = slope * abs(float(np.log(row["value"])))
    plots.plot_ip_chi2_stability(stability, out / "ip_chi2_stability.png")
    return stability


def scan_lambda(models: dict, samples: dict, results: dict, config: Config, out: Path) -> list:
    """Refit the monotonic network for each Lipschitz bound and measure it."""
    X, y = samples["X_train"], samples["train"]["label"].to_numpy()
    labels = samples["test"]["label"].to_numpy()
    rows = []
    for lipschitz in config.lambda_scan:
        if lipschitz == config.lipschitz:
            scorer = models[MONOTONIC_NAME]
        else:
            scorer = fit_lipschitz_network(
                X, y, monotonic=MONOTONIC, lipschitz=lipschitz, settings=config.network,
                seed=config.seed, name=f"monotonic, lambda={lipschitz:g}",
            )
        row = working_point(scorer(samples["X_test"]), labels, config.retention)
        rows.append({"lipschitz": lipschitz, "training_seconds": scorer.seconds, **row})
    references = {
        name: results[name]["working_point"]
        for name in ("unconstrained network", "boosted trees")
    }
    plots.plot_lambda_scan(list(config.lambda_scan), rows, references, config.retention,
                           out / "lambda_scan.png")
    return rows


def measure_throughput(samples: dict, config: Config, out: Path) -> dict:
    """Fit the compact four-input monotonic model and time it as C and as folded torch."""
    X = samples["X_train"][FOUR_INPUTS]
    y = samples["train"]["label"].to_numpy()
    monotonic = {name: MONOTONIC[name] for name in FOUR_INPUTS if name in MONOTONIC}
    compact = fit_lipschitz_network(
        X, y, monotonic=monotonic, lipschitz=config.lipschitz,
        settings=replace(config.network, hidden_layer_sizes=config.compact_hidden),
        seed=config.seed, name="compact monotonic",
    )
    labels = samples["test"]["label"].to_numpy()
    result = {
        "inputs": FOUR_INPUTS,
        "hidden_layer_sizes": list(config.compact_hidden),
        "working_point": working_point(compact(samples["X_test"]), labels, config.retention),
    }
    test_rows = samples["X_test"][FOUR_INPUTS]
    rows = test_rows.iloc[np.arange(config.n_throughput) % len(test_rows)].reset_index(drop=True)
    from lipmono.export import fold

    result["folded_torch"] = throughput.torch_throughput(fold(compact.model.to_torch()), rows)
    with tempfile.TemporaryDirectory() as folder:
        result["c"] = throughput.c_throughput(compact.model, rows, Path(folder))
    for build in result["c"]:
        logger.info("compact model: %.3g candidates/s in C (%s)", build["candidates_per_second"],
                    build["compiler"])
    logger.info("compact model: %.3g candidates/s in folded torch",
                result["folded_torch"]["candidates_per_second"])
    return result


def environment() -> dict:
    """Versions and hardware behind the numbers."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "lipmono": lipmono.__version__,
    }


def write_json(document: dict, path: Path) -> None:
    """Write ``document`` to ``path`` through a temporary file, so no half-written file remains."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    temporary.replace(path)


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/trigger"),
                        help="folder for the PNG figures and results.json (created if missing)")
    parser.add_argument("--quick", action="store_true",
                        help="small samples and few epochs: a smoke test, not the "
                        "documented numbers")
    parser.add_argument("--seed", type=int, default=Config.seed,
                        help="seed of every simulated sample and model (default %(default)s)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    # One thread for torch and for OpenMP in scikit-learn: every figure is per core,
    # and a busy machine slows oversubscribed OpenMP loops many times over.
    torch.set_num_threads(1)
    threadpool_limits(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    config = replace(QUICK if arguments.quick else Config(), seed=arguments.seed)
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    samples = simulate(config)
    plots.plot_features(samples["train"], list(FEATURES), out / "features.png")
    models = fit_models(samples, config)
    results = {
        "config": asdict(config),
        "environment": environment(),
        "sample": {
            "train_counts": samples["train"]["category"].value_counts().to_dict(),
            "test_counts": samples["test"]["category"].value_counts().to_dict(),
        },
    }
    results["models"] = measure_performance(models, samples, config, out)
    results["displacement"] = measure_displacement(models, samples, config, out)
    results["ip_chi2_stability"] = measure_stability(models, samples, results["models"], config,
                                                     out)
    results["lambda_scan"] = scan_lambda(models, samples, results["models"], config, out)
    results["compact_model"] = measure_throughput(samples, config, out)
    results["seconds"] = time.perf_counter() - start
    write_json(results, out / "results.json")
    print(f"wrote {out / 'results.json'} and the figures in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
