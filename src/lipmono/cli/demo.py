"""Train on the bundled COMPAS data and print the test accuracy and certificate.

The model predicts two-year recidivism and is monotonic increasing in
priors_count, juv_fel_count, juv_misd_count and juv_other_count: more prior
offences never lower the predicted risk. The data is ProPublica's, as split by
Liu et al. (2020); see lipmono/datasets/data/compas/ATTRIBUTION.md.
"""

from __future__ import annotations

import argparse
import time

from .info import format_certificate
from .train import add_threads_option, positive_int, set_threads

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=100,
        help="maximum number of epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--lipschitz", type=float, default=1.0, help="Lipschitz bound lambda (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--out", help="also save the model to this file")
    parser.add_argument("--verbose", action="store_true", help="show a progress bar")
    # One thread: the demo's network is so small that a second thread mostly waits.
    add_threads_option(parser, default=1)


def run(args) -> int:
    from ..datasets.bundled import COMPAS_MONOTONIC, load_compas
    from ..estimators import MonotonicClassifier

    set_threads(args.threads)
    X_train, y_train = load_compas("train")
    X_test, y_test = load_compas("test")
    estimator = MonotonicClassifier(
        COMPAS_MONOTONIC,
        lipschitz=args.lipschitz,
        # Chosen on a validation split of the training rows: about 40 epochs before
        # early stopping, a few seconds on one CPU core.
        hidden_layer_sizes=(32, 32),
        learning_rate=0.01,
        max_iter=args.epochs,
        random_state=args.seed,
        verbose=args.verbose,
        device="auto",
    )
    started = time.perf_counter()
    estimator.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    print(
        f"COMPAS: {len(X_train)} training rows, {len(X_test)} test rows, "
        f"{X_train.shape[1]} features"
    )
    print(f"trained {estimator.n_iter_} epochs in {seconds:.1f} s")
    print(f"test accuracy: {estimator.score(X_test, y_test):.4f}")
    for line in format_certificate(estimator.certificate_):
        print(line)
    if args.out:
        estimator.save(args.out)
        print(f"model written to {args.out}")
    return 0
