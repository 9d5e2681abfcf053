"""Measure inference throughput of the exports against a plain torch MLP.

The model is a MonotonicMLP with 20 inputs (5 increasing), three hidden layers
of 128, GroupSort of size 2 and the ``l1`` chain, between Standardize and
OutputAffine, in float32. The baseline is ``nn.Linear`` + ``nn.ReLU`` of the same
shape. At batch sizes 1, 1024 and 65536 the script times, in one process:

* ``torch_eager``: the unfolded model in eval mode under ``torch.inference_mode()``;
* ``torch_folded``: :func:`lipmono.export.fold` of it, the same way;
* ``onnxruntime``: :func:`lipmono.export.export_onnx` run by ONNX Runtime's CPU provider;
* ``c_export``: :func:`lipmono.export.export_c` compiled with ``cc -O2`` and called
  through ctypes on preallocated arrays (one thread);
* ``baseline``: the plain MLP under ``torch.inference_mode()``.

Repetitions are interleaved so that every variant runs under the same machine load.
Each figure is the median over repetitions of rows per second; the ratio is
variant / baseline, so higher is better and 1.0 means the same throughput.
torch and ONNX Runtime get the same number of threads (``--threads``).

Usage::

    .venv/bin/python benchmarks/inference.py

writes ``benchmarks/results/inference.json`` and the ``inference`` section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _env import cpu_name, relu_mlp, replace_section, write_json
from torch import nn

import lipmono
from lipmono.export import export_c, export_onnx, fold
from lipmono.export.cbuild import CPredictor, compile_shared, find_c_compiler

IN_FEATURES = 20
N_MONOTONIC = 5
HIDDEN = [128, 128, 128]
BATCH_SIZES = (1, 1024, 65536)
VARIANTS = ("torch_eager", "torch_folded", "onnxruntime", "c_export")
ROOT = Path(__file__).resolve().parents[1]


def build_models(seed: int) -> tuple[nn.Module, nn.Module]:
    """Return the wrapped monotonic model and the same-shape ReLU baseline, in eval mode."""
    generator = np.random.default_rng(seed)
    torch.manual_seed(seed)
    core = lipmono.MonotonicMLP(
        IN_FEATURES, HIDDEN, monotonic_cst=[1] * N_MONOTONIC + [0] * (IN_FEATURES - N_MONOTONIC),
        lipschitz=1.0, group_size=2,
    )
    mean, scale = generator.normal(size=IN_FEATURES), generator.uniform(0.5, 2, IN_FEATURES)
    model = nn.Sequential(
        lipmono.Standardize(mean, scale),
        core,
        lipmono.OutputAffine([2.0], [0.5]),
    ).eval()
    return model, relu_mlp([IN_FEATURES, *HIDDEN, 1]).eval()


def torch_runner(module: nn.Module, x: np.ndarray) -> Callable[[], np.ndarray]:
    tensor = torch.from_numpy(x)

    def run() -> np.ndarray:
        with torch.inference_mode():
            return module(tensor)

    return run


def build_runners(model, baseline, folder: Path, threads: int) -> tuple[dict, dict]:
    """Return ``{name: make_runner(x)}`` for every variant that can run here, and skip reasons."""
    import onnxruntime as ort

    makers: dict[str, Callable] = {
        "baseline": lambda x: torch_runner(baseline, x),
        "torch_eager": lambda x: torch_runner(model, x),
        "torch_folded": lambda x: torch_runner(fold(model), x),
    }
    skipped: dict[str, str] = {}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(export_onnx(model, folder / "model.onnx")), options, providers=["CPUExecutionProvider"]
    )
    makers["onnxruntime"] = lambda x: (lambda: session.run(None, {"x": x})[0])
    if find_c_compiler() is None:
        skipped["c_export"] = "no C compiler found"
    else:
        _, source = export_c(model, folder, prefix="bench")
        library = compile_shared(source, folder / "libbench.so")
        predictor = CPredictor(library, "bench", IN_FEATURES, 1)

        def make_c(x):
            out = np.empty((x.shape[0], 1), dtype=np.float32)

            def run():
                predictor.predict_into(x, out)
                return out

            return run

        makers["c_export"] = make_c
    return makers, skipped


def calls_per_sample(run: Callable, min_seconds: float) -> int:
    """Return how many calls of ``run`` take at least ``min_seconds`` (after a warm-up)."""
    for _ in range(3):
        run()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            run()
        if time.perf_counter() - start >= min_seconds or calls >= 1 << 20:
            return calls
        calls *= 2


def time_interleaved(runners: dict[str, Callable], repeats: int, min_seconds: float) -> dict:
    """Return the per-call times of every runner, measured in interleaved rounds."""
    calls = {name: calls_per_sample(run, min_seconds) for name, run in runners.items()}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                run()
            times[name].append((time.perf_counter() - start) / calls[name])
    return times


def max_abs_difference(runners: dict[str, Callable], reference: str) -> dict[str, float]:
    expected = np.asarray(runners[reference]())
    return {
        name: float(np.abs(np.asarray(run()) - expected).max())
        for name, run in runners.items()
        if name != "baseline"
    }


def compiler_version() -> str:
    compiler = find_c_compiler()
    if compiler is None:
        return "none"
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True)
    return result.stdout.splitlines()[0] if result.stdout else compiler


def environment(threads: int) -> dict:
    import onnxruntime as ort

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "compiler": compiler_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "load_average_at_start": list(os.getloadavg()),
    }


def run_benchmark(args) -> dict:
    torch.set_num_threads(args.threads)
    model, baseline = build_models(args.seed)
    rng = np.random.default_rng(args.seed)
    results: dict = {"batches": {}, "skipped": {}}
    with tempfile.TemporaryDirectory() as folder:
        makers, results["skipped"] = build_runners(model, baseline, Path(folder), args.threads)
        for batch in args.batch_sizes:
            x = rng.normal(size=(batch, IN_FEATURES)).astype(np.float32)
            runners = {name: make(x) for name, make in makers.items()}
            differences = max_abs_difference(runners, "torch_eager")
            times = time_interleaved(runners, args.repeats, args.min_seconds)
            rows = {name: batch / statistics.median(t) for name, t in times.items()}
            ratios = {name: rows[name] / rows["baseline"] for name in rows if name != "baseline"}
            results["batches"][str(batch)] = {
                "rows_per_second": rows,
                "ratio_to_baseline": ratios,
                "max_abs_difference_to_eager": differences,
                "median_seconds_per_call": {n: statistics.median(t) for n, t in times.items()},
            }
            print(f"batch {batch}: " + ", ".join(f"{n} {r:.3g} rows/s" for n, r in rows.items()))
    batch_one = results["batches"].get("1", {}).get("rows_per_second", {})
    if "c_export" in batch_one:
        results["c_export_vs_eager_at_batch_1"] = batch_one["c_export"] / batch_one["torch_eager"]
    return results


def markdown(payload: dict, command: str) -> str:
    """Return the docs section for ``payload``."""
    env = payload["environment"]
    lines = [
        f"Command: `{command}`",
        "",
        f"Model: MonotonicMLP, {IN_FEATURES} inputs ({N_MONOTONIC} increasing), hidden "
        f"{'x'.join(map(str, HIDDEN))}, GroupSort 2, between Standardize and OutputAffine, "
        "float32. Baseline: `nn.Linear` + `nn.ReLU` of the same shape under "
        "`torch.inference_mode()`.",
        f"Machine: {env['cpu']}, {env['cpu_count']} cores. Threads for torch and ONNX Runtime: "
        f"{env['threads']}; the C export runs on one. torch {env['torch']}, "
        f"ONNX Runtime {env['onnxruntime']}, {env['compiler']}. Load average at start: "
        f"{', '.join(f'{v:.1f}' for v in env['load_average_at_start'])}.",
        "",
        "Rows per second as a ratio to the baseline (higher is better; 1.00 = same "
        "throughput), median of interleaved repetitions:",
        "",
        "| batch | baseline rows/s | torch eager | folded torch | ONNX Runtime | C export |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for batch, entry in payload["results"]["batches"].items():
        ratios = entry["ratio_to_baseline"]
        cells = [f"{ratios[n]:.2f}" if n in ratios else "n/a" for n in VARIANTS]
        base = entry["rows_per_second"]["baseline"]
        lines.append(f"| {batch} | {base:,.0f} | " + " | ".join(cells) + " |")
    if env["load_average_at_start"][0] > (env["cpu_count"] or 1):
        lines += [
            "",
            "NOTE: other processes kept the load average above the core count during this "
            "run, so absolute rows per second are low and the ratios are noisy.",
        ]
    speedup = payload["results"].get("c_export_vs_eager_at_batch_1")
    if speedup is not None:
        lines += ["", f"C export at batch 1: {speedup:.1f}x the rows per second of torch eager."]
    lines += [
        "",
        "Goals: folded torch and ONNX Runtime within 5% of the baseline (ratio >= 0.95); "
        "the C export at batch 1 at least 10x torch eager.",
        "",
        *goal_lines(payload["results"]),
        "",
        "Where the time goes: in eager torch each GroupSort of size 2 takes several tensor "
        "operations (an output buffer, four slices, maximum and minimum) where the baseline "
        "runs one ReLU, and the folded model adds the skip layer and a sum. At batch 1 the "
        "per-operation overhead dominates, which is also why ONNX Runtime, with less overhead per "
        "operation, is faster than torch there. The C export computes row by row on one "
        "thread with the SSE2 code that `cc -O2` generates for x86-64, so at large batches "
        "it trails the vectorized matrix products of torch and ONNX Runtime.",
    ]
    return "\n".join(lines)


def goal_lines(results: dict) -> list[str]:
    """Return one line per goal saying whether this run met it, with the figure."""
    lines = []
    for name, label in (("torch_folded", "folded torch"), ("onnxruntime", "ONNX Runtime")):
        ratios = {b: e["ratio_to_baseline"][name] for b, e in results["batches"].items()}
        worst = min(ratios, key=ratios.get)
        verdict = "met" if ratios[worst] >= 0.95 else "not met"
        lines.append(
            f"- {label} within 5%: {verdict} (lowest ratio {ratios[worst]:.2f}, batch {worst})"
        )
    speedup = results.get("c_export_vs_eager_at_batch_1")
    if speedup is not None:
        verdict = "met" if speedup >= 10 else "not met"
        lines.append(f"- C export 10x torch eager at batch 1: {verdict} ({speedup:.1f}x)")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "inference.json",
        help="JSON file to write (default: %(default)s)",
    )
    parser.add_argument(
        "--docs", type=Path, default=ROOT / "docs" / "benchmarks.md",
        help="Markdown page whose inference section is replaced (default: %(default)s)",
    )
    parser.add_argument("--no-docs", action="store_true", help="leave the docs page as it is")
    parser.add_argument(
        "--render-only", action="store_true",
        help="measure nothing: rewrite the docs section from the JSON file given by --out",
    )
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES),
        help="batch sizes in rows (default: 1 1024 65536)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default: 7)")
    parser.add_argument(
        "--min-seconds", type=float, default=0.1,
        help="minimum duration of one timed sample, in seconds (default: 0.1)",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1,
        help="threads for torch and ONNX Runtime (default: the number of CPU cores)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and inputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.render_only:
        payload = json.loads(args.out.read_text())
        replace_section(args.docs, "inference", markdown(payload, payload["command"]))
        print(f"updated {args.docs} from {args.out}")
        return payload
    arguments = argv if argv is not None else sys.argv[1:]
    command = " ".join([".venv/bin/python benchmarks/inference.py", *arguments])
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    payload = {
        "command": command,
        "environment": environment(args.threads),
        "settings": settings,
    }
    payload["results"] = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    if not args.no_docs:
        replace_section(args.docs, "inference", markdown(payload, command.strip()))
        print(f"updated {args.docs}")
    return payload


if __name__ == "__main__":
    main()
