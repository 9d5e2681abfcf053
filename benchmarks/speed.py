"""Measure the cost of the Lipschitz and monotonic layers against a plain ReLU network.

Both networks have the same shape: 20 inputs, three hidden layers of 128 and one
output. The monotonic model (5 increasing inputs, GroupSort of size 2, the ``l1``
chain) and the baseline (``nn.Linear`` + ``nn.ReLU``) run in one process, with
repetitions interleaved so that both see the same machine state. Reported:

* training step: forward, backward and an Adam step at batch 1024, median time;
* evaluation: ``model.eval()`` under ``torch.inference_mode()`` at batch 65536,
  median time and rows per second.

The script prints the ratios (monotonic / baseline, so lower is better and 1.0
means the same cost) and writes them with the environment to ``--out`` as JSON.
With ``--compile`` both models run through ``torch.compile`` (default backend);
without it, the default eager path is measured.

Usage::

    .venv/bin/python benchmarks/speed.py --out benchmarks/results/speed.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _env import cpu_name, relu_mlp, write_json
from torch import nn

import lipmono

IN_FEATURES = 20
N_MONOTONIC = 5
HIDDEN = [128, 128, 128]
TRAIN_BATCH = 1024
EVAL_BATCH = 65536
GOALS = {"train_step": 1.15, "eval": 1.05}


def build_models(seed: int, compile_models: bool = False) -> dict[str, nn.Module]:
    """Return the monotonic model and the same-shape ReLU baseline, seeded.

    With ``compile_models`` each is wrapped by :func:`torch.compile`.
    """
    torch.manual_seed(seed)
    monotonic = lipmono.MonotonicMLP(
        IN_FEATURES,
        HIDDEN,
        monotonic_cst=[1] * N_MONOTONIC + [0] * (IN_FEATURES - N_MONOTONIC),
        lipschitz=1.0,
        group_size=2,
    )
    torch.manual_seed(seed)
    models = {"monotonic": monotonic, "relu": relu_mlp([IN_FEATURES, *HIDDEN, 1])}
    if compile_models:
        models = {name: torch.compile(model) for name, model in models.items()}
    return models


def make_train_step(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """Return a closure running one forward, backward and Adam step on ``(X, y)``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(X), y)
        loss.backward()
        optimizer.step()

    return step


def make_eval(model: nn.Module, X: torch.Tensor) -> Callable[[], None]:
    """Return a closure running one evaluation pass under ``torch.inference_mode``."""
    model.eval()

    def run() -> None:
        with torch.inference_mode():
            model(X)

    return run


def time_interleaved(
    closures: dict[str, Callable[[], None]], repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Run each closure ``warmup`` times untimed, then ``repeats`` times interleaved.

    Returns the wall-clock seconds of every timed call, per closure name. The order
    alternates between repetitions so that neither model always runs first.
    """
    names = list(closures)
    for _ in range(warmup):
        for name in names:
            closures[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            closures[name]()
            times[name].append(time.perf_counter() - start)
    return times


def summarize(times: dict[str, list[float]], rows: int) -> dict:
    """Return medians, rows per second and the monotonic / ReLU ratio of medians."""
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "median_seconds": medians,
        "rows_per_second": {name: rows / value for name, value in medians.items()},
        "ratio": medians["monotonic"] / medians["relu"],
        "repeats": len(next(iter(times.values()))),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/speed.json"),
        help="path of the JSON results file (default: %(default)s)",
    )
    parser.add_argument(
        "--threads", type=int, default=2,
        help="torch intra-op threads, fixed for the whole run (default: %(default)s)",
    )
    parser.add_argument(
        "--train-repeats", type=int, default=300,
        help="timed training steps per model (default: %(default)s)",
    )
    parser.add_argument(
        "--eval-repeats", type=int, default=30,
        help="timed evaluation passes per model (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and data")
    parser.add_argument(
        "--compile", action="store_true",
        help="wrap both models in torch.compile before timing (default: eager)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)

    X_train = torch.randn(TRAIN_BATCH, IN_FEATURES, generator=generator)
    y_train = torch.randn(TRAIN_BATCH, 1, generator=generator)
    models = build_models(args.seed, args.compile)
    train_times = time_interleaved(
        {name: make_train_step(m, X_train, y_train) for name, m in models.items()},
        repeats=args.train_repeats, warmup=20,
    )

    X_eval = torch.randn(EVAL_BATCH, IN_FEATURES, generator=generator)
    models = build_models(args.seed, args.compile)
    eval_times = time_interleaved(
        {name: make_eval(m, X_eval) for name, m in models.items()},
        repeats=args.eval_repeats, warmup=3,
    )

    results = {
        "train_step": summarize(train_times, TRAIN_BATCH),
        "eval": summarize(eval_times, EVAL_BATCH),
        "goals": GOALS,
        "config": {
            "in_features": IN_FEATURES,
            "n_monotonic": N_MONOTONIC,
            "hidden_sizes": HIDDEN,
            "group_size": 2,
            "chain": "l1",
            "train_batch": TRAIN_BATCH,
            "eval_batch": EVAL_BATCH,
            "seed": args.seed,
            "compile": args.compile,
        },
        "environment": {
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "threads": torch.get_num_threads(),
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    for name, section in (("train_step", results["train_step"]), ("eval", results["eval"])):
        medians = section["median_seconds"]
        print(
            f"{name:10s} monotonic {medians['monotonic'] * 1e3:8.3f} ms  "
            f"relu {medians['relu'] * 1e3:8.3f} ms  ratio {section['ratio']:.3f}  "
            f"(goal <= {GOALS[name]})"
        )
    write_json(args.out, results)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
