"""Audit a saved model on a table and write a report with plots.

Checks monotonicity with probe pairs and one-feature sweeps anchored on the
table's rows, recomputes the Lipschitz certificate and compares it with an
empirical search, and summarises the certified robustness radii of a binary
classifier. Writes report.md, report.html, audit.json and PNG plots into --out.

Exit status: 0 when every check passes, 1 when a check fails (a monotonicity
violation or a false certificate), 2 on an input error.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import DataError
from ._io import load_model, read_table, split_target

__all__ = ["add_arguments", "run"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by lipmono train or estimator.save")
    parser.add_argument("data", help="table to audit on (.csv, or .parquet/.pq), e.g. a test set")
    parser.add_argument(
        "--out",
        help="folder for the report, audit.json and the plots (default: <MODEL name>_audit "
        "in the current folder)",
    )
    parser.add_argument(
        "--target",
        help="target column, dropped from the features and used for accuracy or RMSE "
        "(default: the model's target column when the table has it)",
    )
    parser.add_argument(
        "--pairs", type=_positive_int, default=2000,
        help="number of probe pairs (default: %(default)s)",
    )
    parser.add_argument(
        "--anchors", type=_positive_int, default=200,
        help="data rows each constrained feature is swept at (default: %(default)s)",
    )
    parser.add_argument(
        "--grid", type=_positive_int, default=25,
        help="maximum grid values per sweep (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--verbose", action="store_true", help="print the library's log messages")


def _features_and_target(estimator, frame, target_name, where):
    if target_name is not None:
        features, target = split_target(frame, target_name, where)
    else:
        default = getattr(estimator, "target_name_", None)
        if default is not None and default in frame.columns:
            features, target = split_target(frame, default, where)
        else:
            features, target = frame, None
    expected = [str(name) for name in getattr(estimator, "feature_names_in_", [])]
    if expected:
        missing = [name for name in expected if name not in features.columns]
        if missing:
            raise DataError(
                f"{str(where)!r} lacks the model's feature columns {missing}; the model was "
                f"trained on: {', '.join(expected)}"
            )
        features = features[expected]
    return features, target


def run(args) -> int:
    from ..audit import audit

    started = time.perf_counter()
    estimator = load_model(args.model)
    frame = read_table(args.data)
    features, target = _features_and_target(estimator, frame, args.target, args.data)
    out = Path(args.out) if args.out else Path(f"{Path(args.model).stem}_audit")
    result = audit(
        estimator, features, target, out_dir=out,
        n_pairs=args.pairs, n_anchors=args.anchors, n_grid=args.grid, seed=args.seed,
    )
    for line in result.verdict:
        print(line)
    print(f"report written to {out / 'report.md'} in {time.perf_counter() - started:.1f} s")
    return 0 if result.passed else 1
