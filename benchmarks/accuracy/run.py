"""Run the accuracy benchmark: every data set, protocol, seed and model.

Usage (from the repository root)::

    python -m benchmarks.accuracy.run                # full run, rewrites the page section
    python -m benchmarks.accuracy.run --quick        # one seed, few epochs, subsampled data
    python -m benchmarks.accuracy.run --from-json benchmarks/results/accuracy.json
                                                     # rewrite the page section only

Results go to ``benchmarks/results/accuracy.json`` (``accuracy_quick.json`` in
quick mode). The full mode also replaces the accuracy section of
``docs/benchmarks.md``; the quick mode does so only when ``--docs`` is given.
Nothing is downloaded: the data is read from ``--data-dir``.
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

# Limit OpenMP (HistGradientBoosting, XGBoost, LightGBM) to one thread per process
# before any of them is imported: on two busy cores, unlimited OpenMP threads made a
# 300-row HistGradientBoosting fit take minutes.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

if __package__ in (None, ""):
    # Run as a script: make the repository root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.accuracy.config import SPECS, quick_spec  # noqa: E402
from benchmarks.accuracy.probes import make_probe_pairs  # noqa: E402
from benchmarks.accuracy.protocols import Data, run_honest, run_literature  # noqa: E402
from benchmarks.accuracy.report import render_section, replace_section  # noqa: E402

logger = logging.getLogger("benchmarks.accuracy")

REPO_ROOT = Path(__file__).resolve().parents[2]
N_PROBE_PAIRS = 100_000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data",
        help="folder with one sub-folder per data set (default: ../shared/data next to the "
        "repository)",
    )
    parser.add_argument("--quick", action="store_true", help="one seed, few epochs, small data")
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(SPECS), default=sorted(SPECS),
        help="data sets to run (default: all)",
    )
    parser.add_argument("--results", type=Path, help="JSON output file")
    parser.add_argument(
        "--docs", type=Path,
        help="markdown page whose accuracy section is replaced (default in full mode: "
        "docs/benchmarks.md)",
    )
    parser.add_argument(
        "--from-json", type=Path,
        help="skip the runs: rewrite the page section from this results file",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="worker processes, one data set each (default: 2)"
    )
    parser.add_argument(
        "--n-probe-pairs", type=int, default=N_PROBE_PAIRS,
        help="random probe pairs per model for the violation rate",
    )
    return parser.parse_args(argv)


def _versions() -> str:
    import lightgbm
    import sklearn
    import torch
    import xgboost

    return (
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"xgboost {xgboost.__version__}, lightgbm {lightgbm.__version__}, "
        f"scikit-learn {sklearn.__version__}"
    )


def load_data(spec, data_dir: Path, n_pairs: int) -> tuple[Data, dict]:
    """Load one data set as arrays and draw its probe pairs from the test rows."""
    split = spec.loader(data_dir)
    X_train = split.X_train.to_numpy(dtype=np.float64)
    y_train = split.y_train.to_numpy()
    if spec.max_train_rows is not None and len(X_train) > spec.max_train_rows:
        rows = np.random.default_rng(0).choice(len(X_train), spec.max_train_rows, replace=False)
        X_train, y_train = X_train[rows], y_train[rows]
    X_test = split.X_test.to_numpy(dtype=np.float64)
    probes = make_probe_pairs(X_test, split.monotonic_cst, n_pairs, seed=12345)
    data = Data(
        spec, split.task, list(split.monotonic_cst), X_train, y_train,
        X_test, split.y_test.to_numpy(), probes,
    )
    info = {
        "metric": spec.metric,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "n_features": X_train.shape[1],
        "n_constrained": int(np.count_nonzero(split.monotonic_cst)),
        "notes": split.notes,
    }
    return data, info


def run_dataset(name: str, quick: bool, data_dir: Path, n_pairs: int) -> dict:
    """Run both protocols on one data set; returns its JSON entry."""
    import torch

    # One thread per process: these networks are small, and two threads on two
    # busy cores were measured about ten times slower per step than one.
    torch.set_num_threads(1)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    spec = quick_spec(SPECS[name]) if quick else SPECS[name]
    entry = {
        "status": spec.status, "metric": spec.metric,
        "published": [asdict(p) for p in spec.published],
        "goals": spec.goals,
    }
    if spec.status != "run":
        entry["reason"] = spec.reason
        return entry
    started = time.perf_counter()
    data, info = load_data(spec, data_dir, n_pairs)
    entry.update(info)
    literature_seeds, honest_seeds = _seeds(quick)
    entry["literature"] = {"rows": run_literature(data, literature_seeds)}
    rows, selection = run_honest(data, honest_seeds)
    entry["honest"] = {"rows": rows, "selection": selection}
    entry["minutes"] = (time.perf_counter() - started) / 60
    logger.info("%s done in %.1f minutes", name, entry["minutes"])
    return entry


def _seeds(quick: bool) -> tuple[list[int], list[int]]:
    return ([0], [0]) if quick else ([0, 1, 2], [0, 1, 2, 3, 4])


def run(args: argparse.Namespace) -> dict:
    """Run every requested data set and return the results as a JSON-ready dict.

    Data sets run in ``args.jobs`` worker processes, the largest first.
    """
    started = time.perf_counter()
    order = sorted(args.datasets, key=lambda n: n != "blogfeedback")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            name: pool.submit(run_dataset, name, args.quick, args.data_dir, args.n_probe_pairs)
            for name in order
        }
        datasets = {name: futures[name].result() for name in sorted(args.datasets)}
    literature_seeds, honest_seeds = _seeds(args.quick)
    return {
        "meta": {
            "command": "python -m benchmarks.accuracy.run" + (" --quick" if args.quick else ""),
            "mode": "quick" if args.quick else "full",
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_minutes": (time.perf_counter() - started) / 60,
            "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU, "
            f"{args.jobs} worker processes with one torch thread each",
            "versions": _versions(),
            "literature_seeds": literature_seeds,
            "honest_seeds": honest_seeds,
            "n_probe_pairs": args.n_probe_pairs,
            "results_file": "",
        },
        "datasets": datasets,
    }


def write_json(path: Path, results: dict) -> None:
    """Write ``results`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, default=_json_default)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    if not args.data_dir.is_dir():
        print(
            f"error: data folder not found: {args.data_dir}; pass --data-dir with the folder "
            "that holds compas/, blogfeedback/, auto_mpg/ and heart_disease/",
            file=sys.stderr,
        )
        return 2
    if args.from_json is not None:
        docs_path = args.docs or REPO_ROOT / "docs" / "benchmarks.md"
        results = json.loads(args.from_json.read_text(encoding="utf-8"))
        replace_section(docs_path, render_section(results))
        print(f"updated the accuracy section of {docs_path} from {args.from_json}")
        return 0
    default_name = "accuracy_quick.json" if args.quick else "accuracy.json"
    results_path = args.results or REPO_ROOT / "benchmarks" / "results" / default_name
    docs_path = args.docs or (None if args.quick else REPO_ROOT / "docs" / "benchmarks.md")

    results = run(args)
    try:
        display_path = results_path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        display_path = results_path
    results["meta"]["results_file"] = str(display_path)
    write_json(results_path, results)
    print(f"wrote {results_path}")
    if docs_path is not None:
        replace_section(docs_path, render_section(results))
        print(f"updated the accuracy section of {docs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
