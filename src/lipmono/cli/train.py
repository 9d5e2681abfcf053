"""Train a monotonic network on a CSV or Parquet table and save it.

The task is classification when the target is not numeric or has exactly two
distinct values, and regression otherwise (override with --task). A checkpoint
is written next to the model (OUT.ckpt) after every epoch, and with
--checkpoint-every N also after every N batches; after an interruption, run the
same command with --resume to continue. The checkpoint is removed once the model
is saved. With --stream, DATA (a file or a folder of Parquet or CSV files) is
read in batches instead of into memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..distributed import distributed_session
from ..errors import ConstraintError, DataError, ParameterError
from ._io import column_list, read_table, split_target

__all__ = [
    "add_arguments", "run", "infer_task", "infer_stream_task", "parse_hidden", "set_threads"
]


def parse_hidden(text: str) -> tuple[int, ...]:
    """Parse ``"64,64"`` into ``(64, 64)`` for --hidden."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid layer sizes {text!r}; give positive integers separated by commas, like 64,64"
        ) from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(
            f"invalid layer sizes {text!r}; give positive integers separated by commas, like 64,64"
        )
    return sizes


def positive_int(text: str) -> int:
    """Parse a whole number of at least 1, for --epochs and --batch-size."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}; give a whole number >= 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", help="training table (.csv, or .parquet/.pq); with --stream also a folder of them"
    )
    parser.add_argument("--target", required=True, help="name of the target column")
    parser.add_argument(
        "--increasing",
        action="append",
        metavar="COLS",
        help="columns the output must increase with (comma separated; may be repeated)",
    )
    parser.add_argument(
        "--decreasing",
        action="append",
        metavar="COLS",
        help="columns the output must decrease with (comma separated; may be repeated)",
    )
    parser.add_argument(
        "--task",
        choices=["auto", "regression", "classification"],
        default="auto",
        help="kind of model (default: auto, see above)",
    )
    add_model_options(parser)
    parser.add_argument(
        "--out", default="model.safetensors", help="model file to write (default: %(default)s)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if it exists")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also write OUT.ckpt after every N batches, so --resume continues within an "
        "epoch (default: at the end of each epoch only)",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="read DATA in batches with pyarrow instead of into memory, for data larger than "
        "memory; DATA may be a folder of Parquet or CSV files",
    )


def add_model_options(parser: argparse.ArgumentParser, *, epochs: int = 200) -> None:
    """Add the estimator options shared by train and demo."""
    parser.add_argument(
        "--lipschitz", type=float, default=1.0, help="Lipschitz bound lambda (default: %(default)s)"
    )
    parser.add_argument(
        "--hidden",
        type=parse_hidden,
        default=(64, 64),
        metavar="SIZES",
        help="hidden layer widths, comma separated (default: 64,64)",
    )
    parser.add_argument(
        "--group-size", type=int, default=2, help="GroupSort group size (default: %(default)s)"
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=epochs,
        help="maximum number of epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=256,
        help="mini-batch size (default: %(default)s)",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam step size (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--device", default="auto", help="torch device: auto, cpu, cuda:0 (default: %(default)s)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show a progress bar and per-epoch losses"
    )
    add_threads_option(parser, default=None)


def add_threads_option(parser: argparse.ArgumentParser, *, default: int | None) -> None:
    """Add --threads, the number of CPU threads torch uses."""
    shown = "torch's default" if default is None else str(default)
    parser.add_argument(
        "--threads", type=int, default=default,
        help=f"number of CPU threads for torch (default: {shown})",
    )


def set_threads(threads: int | None) -> None:
    """Apply --threads; a value below 1 is rejected."""
    if threads is None:
        return
    import torch

    if threads < 1:
        raise ParameterError(f"--threads must be at least 1, got {threads}")

    torch.set_num_threads(threads)


def infer_task(target) -> str:
    """Return "classification" for a non-numeric or two-valued target, else "regression"."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    values = target.dropna().unique()
    check_distinct_targets(target.name, values.tolist())
    return "classification" if len(values) == 2 else "regression"


def check_distinct_targets(target: str, values: list) -> None:
    """Raise DataError when a target column has fewer than two distinct values."""
    if len(values) < 2:
        found = f"only the value {values[0]!r}" if values else "no values"
        raise DataError(
            f"the target column {target!r} contains {found}, so there is nothing to learn; "
            "use a column that varies, or rows with at least two target values"
        )


def constraints_from(args, features: list[str]) -> dict[str, int]:
    """Return ``{column: direction}`` from --increasing and --decreasing."""
    increasing = column_list(args.increasing)
    decreasing = column_list(args.decreasing)
    both = sorted(set(increasing) & set(decreasing))
    if both:
        raise ConstraintError(
            f"columns given as both --increasing and --decreasing: {', '.join(both)}"
        )
    if args.target in increasing + decreasing:
        raise ConstraintError(f"{args.target!r} is the target; constrain feature columns only")
    unknown = [name for name in increasing + decreasing if name not in features]
    if unknown:
        raise ConstraintError(
            f"constrained column(s) {', '.join(map(repr, unknown))} not found; the feature "
            f"columns are: {', '.join(map(str, features))}"
        )
    return {**{name: 1 for name in increasing}, **{name: -1 for name in decreasing}}


def estimator_from(args, task: str, constraints):
    """Build the estimator of ``task`` from the shared model options."""
    from ..estimators import MonotonicClassifier, MonotonicRegressor

    cls = MonotonicClassifier if task == "classification" else MonotonicRegressor
    return cls(
        constraints,
        lipschitz=args.lipschitz,
        hidden_layer_sizes=args.hidden,
        group_size=args.group_size,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_iter=args.epochs,
        random_state=args.seed,
        verbose=args.verbose,
        device=args.device,
    )


def run(args) -> int:
    if Path(args.out).is_dir():
        raise ParameterError(
            f"--out {str(args.out)!r} is a folder; give a model file name such as "
            f"{str(Path(args.out) / 'model.safetensors')!r}"
        )
    folder = Path(args.out).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {str(folder)!r} does not exist; create it first")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ParameterError(
            f"--checkpoint-every must be at least 1 batch, got {args.checkpoint_every}"
        )
    set_threads(args.threads)

    checkpoint = Path(f"{args.out}.ckpt")
    if checkpoint.exists() and not args.resume:
        # Starting over would overwrite the interrupted run's progress without a word.
        raise ParameterError(
            f"checkpoint {str(checkpoint)!r} from an interrupted run exists; rerun with "
            "--resume to continue it, or delete it to start over"
        )
    fit = _stream_fit(args) if args.stream else _memory_fit(args)
    # Under torchrun every rank runs this command; the ranks train together with DDP
    # and only rank 0 writes the model and the messages below.
    with distributed_session() as context:
        task, estimator = fit(
            checkpoint_path=checkpoint, resume=args.resume, checkpoint_every=args.checkpoint_every
        )
        if context.is_main:
            estimator.save(args.out)
            checkpoint.unlink(missing_ok=True)
    if not context.is_main:
        return 0

    last = estimator.history_[-1]
    print(
        f"task: {task}; {estimator.training_['n_samples']} rows, "
        f"{estimator.n_features_in_} feature columns"
    )
    print(
        f"epochs: {estimator.n_iter_} (best {estimator.best_epoch_}); final train loss "
        f"{last['train_loss']:.4f}"
        + (f", validation loss {last['val_loss']:.4f}" if last["val_loss"] is not None else "")
    )
    print(
        f"certified Lipschitz bound: {estimator.certificate_['lipschitz_original']:.4g} "
        f"({estimator.certificate_['norm_pair']}, original units)"
    )
    print(f"model written to {args.out}")
    return 0


def _memory_fit(args):
    """Read DATA into memory; return a function that fits and returns (task, estimator)."""
    frame = read_table(args.data)
    features, target = split_target(frame, args.target, args.data)
    if features.shape[1] == 0:
        raise DataError(
            f"{str(args.data)!r} has no feature columns besides the target {args.target!r}"
        )
    task = infer_task(target) if args.task == "auto" else args.task
    estimator = estimator_from(args, task, constraints_from(args, list(features.columns)))

    def fit(**options):
        return task, estimator.fit(features, target, **options)

    return fit


def _stream_fit(args):
    """Open DATA for batch reading; return a function that fits and returns (task, estimator)."""
    from ..estimators.streamed import feature_columns
    from ..streaming import open_dataset

    dataset = open_dataset(args.data)
    features = feature_columns(dataset, args.target, None)
    task = infer_stream_task(dataset, args.target) if args.task == "auto" else args.task
    estimator = estimator_from(args, task, constraints_from(args, features))

    def fit(**options):
        return task, estimator.fit_stream(dataset, target=args.target, **options)

    return fit


def infer_stream_task(dataset, target: str) -> str:
    """Return the task for a streamed target column, with the rule of :func:`infer_task`.

    A numeric target is read (that column alone) until a third distinct value shows.
    """
    import pyarrow as pa

    from ..estimators.streamed import distinct_values, value_type

    data_type = value_type(dataset, target)
    if not (pa.types.is_integer(data_type) or pa.types.is_floating(data_type)):
        return "classification"
    values = distinct_values(dataset, target, max_values=3, stop_above=2)
    check_distinct_targets(target, list(values))
    return "classification" if len(values) == 2 else "regression"
