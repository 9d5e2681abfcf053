"""Measure training throughput against the number of processes and memory against data size.

Data: simulated displaced-vertex trigger candidates
(:func:`lipmono.datasets.trigger.make_trigger_candidates`), the 8 trigger features
and the 0/1 label, written as Parquet. The model is a MonotonicMLP with hidden
layers (64, 64), increasing in the four features the trigger example constrains.

Two measurements, each in fresh child processes so that every peak is its own:

* throughput: one epoch over ``--rows`` in-memory rows with :func:`lipmono.training.train`,
  global batch ``--batch-size``, as one process with 1 thread, one process with
  2 threads, and 2 DDP processes (gloo) with 1 thread each, started with
  ``python -m torch.distributed.run``. Rows per second count every row once
  (the two ranks share an epoch). Each setting runs ``--repeats`` times and the
  fastest run is reported. Ratios are against one process with 1 thread.
* memory: the streaming path (one statistics pass, then one training epoch on
  :class:`lipmono.streaming.StreamingBatches`) over a folder holding 1, 4 and 16
  copies of the Parquet file, against loading the same folder into memory as
  float64 tensors (what in-memory training needs). Peak resident memory is VmHWM
  from ``/proc/self/status`` (Linux only).

Usage::

    .venv/bin/python benchmarks/scale.py --out benchmarks/results/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _env import cpu_name, replace_section, write_json

MONOTONIC = [1, 1, 1, 1, 0, 0, 0, 0]
HIDDEN = [64, 64]
SIZES = (1, 4, 16)


def resident_mb(field: str = "VmHWM") -> float:
    """Return a memory figure of this process from ``/proc/self/status`` in MiB.

    ``VmHWM`` is the peak resident memory, ``VmRSS`` the current one.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status; this benchmark needs Linux")


def _import_all() -> float:
    # Both memory workers import the same modules before measuring, so that their
    # peaks differ by the data they hold and not by the libraries they load.
    import pyarrow.dataset  # noqa: F401
    import torch  # noqa: F401

    import lipmono.streaming  # noqa: F401
    import lipmono.training  # noqa: F401
    from lipmono.datasets.trigger import FEATURES  # noqa: F401

    return resident_mb("VmRSS")


def _model(n_features: int):
    import torch

    from lipmono import MonotonicMLP

    torch.manual_seed(0)
    return MonotonicMLP(n_features, HIDDEN, monotonic_cst=MONOTONIC, lipschitz=1.0).double()


def _loss(output, target):
    import torch

    return torch.nn.functional.binary_cross_entropy_with_logits(output[:, 0], target)


def worker_throughput(data: Path, batch_size: int) -> dict:
    """Train one epoch on the whole file in memory; run alone or under torchrun."""
    import pyarrow.parquet as pq
    import torch

    from lipmono.datasets.trigger import FEATURES
    from lipmono.distributed import distributed_session
    from lipmono.training import TrainingConfig, tensor_batches, train

    table = pq.read_table(data)
    X = torch.as_tensor(table.select(list(FEATURES)).to_pandas().to_numpy(), dtype=torch.float64)
    y = torch.as_tensor(table["label"].to_numpy(), dtype=torch.float64)
    X = (X - X.mean(0)) / X.std(0)
    with distributed_session() as context:
        per_rank = batch_size // context.world_size
        model = _model(X.shape[1])
        config = TrainingConfig(max_epochs=1, early_stopping=False, device="cpu")
        # An untimed epoch over the first 20 batches warms up allocators and the group.
        head = slice(0, 20 * batch_size)
        train(_model(X.shape[1]), _loss, tensor_batches(X[head], y[head], per_rank, 1), config)
        started = time.perf_counter()
        result = train(model, _loss, tensor_batches(X, y, per_rank, 0), config)
        seconds = time.perf_counter() - started
    return {
        "rank": context.rank,
        "world_size": context.world_size,
        "threads": torch.get_num_threads(),
        "rows": int(X.shape[0]),
        "seconds": seconds,
        "rows_per_second": X.shape[0] / seconds,
        "train_loss": result.history[-1]["train_loss"],
    }


def worker_stream(folder: Path, batch_size: int) -> dict:
    """Fit the scaler in one pass and train one epoch from the files."""
    import pyarrow as pa

    from lipmono import streaming as S
    from lipmono.datasets.trigger import FEATURES
    from lipmono.training import TrainingConfig, train

    baseline = _import_all()
    started = time.perf_counter()
    stats = S.fit_stream_statistics(folder, list(FEATURES), ["label"], batch_size=batch_size)
    schema = S.table_schema(stats, list(FEATURES))
    converter = S.TableConverter(schema, S.encoded_standardizer(stats, schema), target="label")
    batches = S.StreamingBatches(
        folder, converter.columns, batch_size, converter=converter, n_rows=stats.n_rows
    )
    result = train(
        _model(len(FEATURES)), _loss, batches,
        TrainingConfig(max_epochs=1, early_stopping=False, device="cpu"),
    )
    seconds = time.perf_counter() - started
    return {
        "rows": stats.n_rows,
        "seconds": seconds,
        "rows_per_second": stats.n_rows / seconds,
        "rss_after_imports_mb": baseline,
        "peak_rss_mb": resident_mb(),
        "arrow_peak_mb": pa.default_memory_pool().max_memory() / 2**20,
        "max_rows_materialised": batches.max_rows_materialised,
        "train_loss": result.history[-1]["train_loss"],
    }


def worker_load(folder: Path) -> dict:
    """Load the whole folder as float64 tensors, as in-memory training needs it."""
    import pyarrow.dataset as ds
    import torch

    from lipmono.datasets.trigger import FEATURES

    baseline = _import_all()
    table = ds.dataset(folder, format="parquet").to_table()
    X = torch.as_tensor(table.select(list(FEATURES)).to_pandas().to_numpy(), dtype=torch.float64)
    y = torch.as_tensor(table["label"].to_numpy(), dtype=torch.float64)
    tensor_mb = (X.nelement() * X.element_size() + y.nelement() * y.element_size()) / 2**20
    return {
        "rows": int(X.shape[0]),
        "tensor_mb": tensor_mb,
        "rss_after_imports_mb": baseline,
        "peak_rss_mb": resident_mb(),
    }


def worker_first_step() -> dict:
    """Train one epoch on 2,048 random rows: the memory torch needs to train at all."""
    import torch

    from lipmono.training import TrainingConfig, tensor_batches, train

    baseline = _import_all()
    X = torch.randn(2048, len(MONOTONIC), dtype=torch.float64)
    y = (X[:, 0] > 0).to(torch.float64)
    config = TrainingConfig(max_epochs=1, early_stopping=False, device="cpu")
    train(_model(X.shape[1]), _loss, tensor_batches(X, y, 1024, 0), config)
    return {"rss_after_imports_mb": baseline, "peak_rss_mb": resident_mb()}


def _run_child(arguments: list[str], threads: int, processes: int = 1) -> list[dict]:
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    records = Path(tempfile.mkdtemp(prefix="lipmono-scale-records-"))
    script = [str(Path(__file__).resolve()), *arguments, "--record-dir", str(records)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", *script,
        ]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")
    # Each rank writes its own file: lines that two ranks print at once can interleave.
    found = [json.loads(path.read_text()) for path in sorted(records.glob("*.json"))]
    shutil.rmtree(records)
    return found


def make_data(folder: Path, rows: int) -> Path:
    """Write ``rows`` simulated candidates to ``folder/1x/part-0.parquet`` and copies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lipmono.datasets.trigger import FEATURES, make_trigger_candidates

    frame = make_trigger_candidates(rows, seed=0)[[*FEATURES, "label"]]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    first = folder / "1x"
    first.mkdir(parents=True)
    pq.write_table(table, first / "part-0.parquet", row_group_size=65_536)
    for size in SIZES[1:]:
        target = folder / f"{size}x"
        target.mkdir()
        for copy in range(size):
            shutil.copyfile(first / "part-0.parquet", target / f"part-{copy}.parquet")
    return first / "part-0.parquet"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/scale.json"),
        help="path of the JSON results file (default: %(default)s)",
    )
    parser.add_argument(
        "--rows", type=int, default=200_000,
        help="rows of the 1x data set; 16x contains 16 times as many (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1024,
        help="global batch in rows, split over the processes (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3,
        help="runs of each throughput setting; the fastest is reported (default: %(default)s)",
    )
    parser.add_argument(
        "--page", type=Path, default=None,
        help="also rewrite the scale section of this page, e.g. docs/benchmarks.md",
    )
    parser.add_argument(
        "--worker", choices=["throughput", "stream", "load", "first-step"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record-dir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_worker(args: argparse.Namespace) -> None:
    if args.worker == "throughput":
        record = worker_throughput(args.data, args.batch_size)
    elif args.worker == "stream":
        record = worker_stream(args.data, args.batch_size)
    elif args.worker == "first-step":
        record = worker_first_step()
    else:
        record = worker_load(args.data)
    rank = os.environ.get("RANK", "0")
    (args.record_dir / f"rank-{rank}.json").write_text(json.dumps(record))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker is not None:
        run_worker(args)
        return {}
    import pyarrow
    import torch

    common = ["--batch-size", str(args.batch_size)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lipmono-scale-") as temporary:
        folder = Path(temporary)
        data = make_data(folder, args.rows)
        throughput = {}
        for name, threads, processes in (
            ("1 process, 1 thread", 1, 1),
            ("1 process, 2 threads", 2, 1),
            ("2 processes (DDP, gloo), 1 thread each", 1, 2),
        ):
            runs = []
            for _ in range(args.repeats):
                records = _run_child(
                    ["--worker", "throughput", "--data", str(data), *common], threads, processes
                )
                # An epoch ends when its slowest rank ends.
                seconds = max(record["seconds"] for record in records)
                runs.append((seconds, next(r for r in records if r["rank"] == 0)["train_loss"]))
            # The fastest repeat is the one least slowed by other work on the machine.
            seconds, train_loss = min(runs)
            throughput[name] = {
                "processes": processes,
                "threads_per_process": threads,
                "seconds": seconds,
                "seconds_of_each_repeat": [run[0] for run in runs],
                "rows_per_second": args.rows / seconds,
                "train_loss": train_loss,
            }
            print(f"{name:40s} {args.rows / seconds:10.0f} rows/s", flush=True)
        baseline = throughput["1 process, 1 thread"]["rows_per_second"]
        for entry in throughput.values():
            entry["ratio_to_one_process"] = entry["rows_per_second"] / baseline

        memory = {}
        for size in SIZES:
            part = folder / f"{size}x"
            stream = _run_child(["--worker", "stream", "--data", str(part), *common], 1)[0]
            load = _run_child(["--worker", "load", "--data", str(part)], 1)[0]
            memory[f"{size}x"] = {"rows": stream["rows"], "stream": stream, "in_memory": load}
            for entry in (stream, load):
                entry["growth_mb"] = entry["peak_rss_mb"] - entry["rss_after_imports_mb"]
            print(
                f"{size:2d}x {stream['rows']:9d} rows: streaming peak RSS "
                f"{stream['peak_rss_mb']:7.1f} MiB (+{stream['growth_mb']:.1f} over imports, "
                f"{stream['rows_per_second']:.0f} rows/s); in-memory load peak RSS "
                f"{load['peak_rss_mb']:7.1f} MiB (+{load['growth_mb']:.1f})",
                flush=True,
            )

    first_step = _run_child(["--worker", "first-step"], 1)[0]
    first_step["growth_mb"] = first_step["peak_rss_mb"] - first_step["rss_after_imports_mb"]
    results = {
        "throughput": throughput,
        "memory": memory,
        "first_training_step": first_step,
        "config": {
            "rows_1x": args.rows,
            "global_batch": args.batch_size,
            "hidden_sizes": HIDDEN,
            "monotonic_cst": MONOTONIC,
            "epochs": 1,
            "throughput_repeats": args.repeats,
            "dtype": "float64",
        },
        "environment": {
            "torch": torch.__version__,
            "pyarrow": pyarrow.__version__,
            "python": sys.version.split()[0],
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            # Other work on the machine skews the timings; the 1-minute load average
            # before and after the run shows how busy it was.
            "load_average_1min": [load_before[0], os.getloadavg()[0]],
        },
    }
    write_json(args.out, results)
    print(f"wrote {args.out}")
    if args.page is not None:
        replace_section(args.page, "scale", render_section(results))
        print(f"updated the scale section of {args.page}")
    return results


def render_section(results: dict) -> str:
    """Return the Markdown of the results page's scale section for ``results``."""
    config, env = results["config"], results["environment"]
    load = env["load_average_1min"]
    throughput = [
        f"| {name} | {entry['rows_per_second']:,.0f} | {entry['ratio_to_one_process']:.2f} "
        f"| {entry['train_loss']:.4f} |"
        for name, entry in results["throughput"].items()
    ]

    memory = []
    for size, entry in results["memory"].items():
        stream, load_in_memory = entry["stream"], entry["in_memory"]
        memory.append(
            f"| {size} | {entry['rows']:,} | {stream['peak_rss_mb']:.0f} "
            f"(+{stream['growth_mb']:.0f}) | {stream['arrow_peak_mb']:.1f} "
            f"| {stream['rows_per_second']:,.0f} | {load_in_memory['peak_rss_mb']:.0f} "
            f"(+{load_in_memory['growth_mb']:.0f}) | {load_in_memory['tensor_mb']:.0f} |"
        )

    ddp = results["throughput"]["2 processes (DDP, gloo), 1 thread each"]
    threads = results["throughput"]["1 process, 2 threads"]
    faster = "faster" if ddp["ratio_to_one_process"] > 1 else "slower"
    explanations = []
    if ddp["ratio_to_one_process"] < 1:
        explanations.append(
            f"Each rank computes only {config['global_batch'] // 2} rows per step of a small "
            "network, so the gradient all-reduce over gloo most likely costs more than the "
            "computation it splits."
        )
    if threads["ratio_to_one_process"] < 1:
        explanations.append(
            "One process with 2 threads is slower than with 1 thread; the cause was not "
            "investigated here."
        )

    streams = [entry["stream"]["peak_rss_mb"] for entry in results["memory"].values()]
    loads = [entry["in_memory"]["peak_rss_mb"] for entry in results["memory"].values()]
    rows = [entry["rows"] for entry in results["memory"].values()]

    lines = [
        "Command (4 to 7 minutes on the 2-core machine, depending on other load):",
        "",
        "    .venv/bin/python benchmarks/scale.py --out benchmarks/results/scale.json \\",
        "        --page docs/benchmarks.md",
        "",
        "Data: simulated displaced-vertex trigger candidates (8 features and the label, "
        f"`lipmono.datasets.trigger`), {config['rows_1x']:,} rows per copy, as Parquet with "
        "row groups of 65,536 rows. Model: `MonotonicMLP` with hidden layers "
        f"{tuple(config['hidden_sizes'])}, increasing in 4 features, float64, one epoch, "
        f"global batch {config['global_batch']}. Machine: {env['cpu_count']} cores "
        f"({env['cpu']}), torch {env['torch']}, pyarrow {env['pyarrow']}. The 1-minute "
        f"load average was {load[0]:.1f} before the run and {load[1]:.1f} after it, from "
        f"other jobs on the machine, so each throughput setting ran "
        f"{config['throughput_repeats']} times and the fastest run is shown.",
        "",
        "**Throughput** (the 1x rows in memory, `lipmono.training.train`):",
        "",
        "| setting | rows/s | ratio to 1 process, 1 thread | training loss after the epoch |",
        "|---|---|---|---|",
        *throughput,
        "",
        " ".join([
            f"Here two DDP processes are {faster} than one. With the global batch split over "
            "the ranks, both take the same steps on the same global batches, so they end the "
            "epoch with the same training loss up to rounding.",
            *explanations,
        ]),
        "",
        "**Peak memory against data size** (1, 4 and 16 copies of the file in one folder):",
        "",
        "| data | rows | streaming: peak RSS, MiB (growth over imports) | streaming: Arrow "
        "peak, MiB | streaming: rows/s (statistics pass and epoch) | in memory: peak RSS, "
        "MiB (growth) | float64 tensors, MiB |",
        "|---|---|---|---|---|---|---|",
        *memory,
        "",
        f"From {rows[0]:,} to {rows[-1]:,} rows the streaming peak moves by "
        f"{max(streams) - min(streams):.1f} MiB, while loading the data into memory grows "
        f"by {loads[-1] - loads[0]:.0f} MiB. Training on 2,048 random rows alone grows a "
        f"process by {results['first_training_step']['growth_mb']:.0f} MiB over the same "
        "imports, so most of the streaming growth is torch's memory for training, not data. "
        "The streaming epoch includes the statistics pass, so it reads the files twice.",
    ]

    # Wrap the prose lines at 80 columns; table rows and the command stay as they are.
    wrapped = [
        line if line.startswith(("|", " ")) or not line else textwrap.fill(line, 80)
        for line in lines
    ]
    return "\n".join(wrapped)


if __name__ == "__main__":
    main()
