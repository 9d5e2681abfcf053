"""The training loop shared by the estimators and the ``lipmono train`` command.

:func:`train` runs Adam over the batches that a factory yields for each epoch,
evaluates a validation loss, stops early when it stops improving, and writes a
checkpoint after each epoch, so an interrupted run resumes where it stopped.

The loop has three places meant for distributed and streaming training:

(a) :func:`wrap_module` wraps the module in ``DistributedDataParallel`` when the
    process belongs to a process group of more than one rank (see
    :mod:`lipmono.distributed`; :func:`train` joins the group that torchrun
    describes in its environment variables);
(b) :func:`is_main_process` guards every write (checkpoints, progress bar), so
    only rank 0 writes;
(c) :class:`TrainingState` counts completed epochs, and ``make_batches(epoch)``
    receives that counter, so a factory can shard or seek a stream by epoch.

A checkpoint is one safetensors file (see :mod:`lipmono.serialization`). Its
tensors are the module's weights, the best weights so far, Adam's moment tensors
and the torch and numpy random states. Its JSON contains the epoch, the data
position (batches of the current epoch already trained on) with their partial
loss sums, the Python random state, the world size, the early-stopping counters
and the loss history. It also contains a fingerprint of the data and settings, so
a resumed run with other data is rejected. With ``checkpoint_every`` it is also written within
an epoch. Batch order depends only on the seed and the epoch number, so a
resumed run reproduces an uninterrupted one exactly (bit for bit on CPU).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .distributed import (
    DistributedContext,
    all_reduce_sums,
    check_parameters_in_sync,
    current_context,
    init_distributed,
    shard_order,
    unwrap_model,
    wrap_model,
)
from .errors import ModelFileError, ParameterError
from .serialization import FORMAT_VERSION, read_container, write_container

__all__ = [
    "TrainingConfig",
    "TrainingState",
    "TrainingResult",
    "tensor_batches",
    "resolve_device",
    "wrap_module",
    "is_main_process",
    "train",
]

logger = logging.getLogger(__name__)

BatchFactory = Callable[[int], Iterable[tuple[Tensor, Tensor]]]
LossFunction = Callable[[Tensor, Tensor], Tensor]


@dataclass
class TrainingConfig:
    """Settings of :func:`train`."""

    # Adam step size; 1e-3 is Adam's usual default and suits these small networks.
    learning_rate: float = 1e-3
    # Number of passes over the training data at most.
    max_epochs: int = 200
    # Stop when the validation loss has not improved for n_iter_no_change epochs,
    # and restore the best weights; without validation data, watch the training loss.
    early_stopping: bool = True
    # Epochs without improvement tolerated before stopping (as in scikit-learn's MLP).
    n_iter_no_change: int = 10
    # An epoch improves on the best loss only if it is lower by more than tol (absolute).
    tol: float = 1e-4
    # Seed for batch order and any randomness inside the module.
    seed: int = 0
    # Show a progress bar (on stderr) and log one line per epoch at INFO level.
    verbose: bool = False
    # Torch device to train on, for example "cpu" or "cuda:0".
    device: str = "cpu"
    # Checkpoint file written after every epoch, or None for no checkpoint.
    checkpoint_path: str | None = None
    # Also write the checkpoint after every this many batches within an epoch (None: at
    # epoch ends only). A resumed run continues with the batch after the last one saved.
    checkpoint_every: int | None = None


@dataclass
class TrainingState:
    """Everything needed to continue training after the last completed epoch."""

    epoch: int = 0  # epochs completed
    best_loss: float = math.inf  # lowest monitored loss so far
    best_epoch: int = 0  # epoch (1-based) that reached best_loss; 0 before any epoch
    epochs_no_improve: int = 0  # epochs since best_loss last improved
    history: list[dict] = field(default_factory=list)  # one entry per completed epoch
    best_state: dict[str, Tensor] | None = None  # module weights at best_epoch
    batch: int = 0  # data position: batches of the current epoch already trained on
    epoch_loss: float = 0.0  # summed loss times rows of those batches (all ranks)
    epoch_rows: int = 0  # rows in those batches (all ranks)


@dataclass
class TrainingResult:
    """Outcome of :func:`train`."""

    history: list[dict]
    n_epochs: int
    best_epoch: int
    stopped_early: bool
    seconds: float


def tensor_batches(X: Tensor, y: Tensor, batch_size: int, seed: int) -> BatchFactory:
    """Return a factory yielding shuffled ``(x, y)`` mini-batches of in-memory tensors.

    The order of epoch ``e`` depends only on ``(seed, e)``, so resuming at any
    epoch gives the same batches as an uninterrupted run. In a distributed run
    each rank takes its shard of that order (:func:`lipmono.distributed.shard_order`),
    so ``batch_size`` is the batch of one process.
    """
    n = X.shape[0]

    def make_batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        order = shard_order(order, current_context())
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            yield X[index], y[index]

    return make_batches


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the torch device for ``device``; ``"auto"`` picks CUDA when torch detects a GPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ParameterError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda:0'"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            f"device={str(device)!r} requests a GPU, but this torch build ({torch.__version__}) "
            "finds no CUDA device; use 'cpu' or 'auto'"
        )
    return resolved


def wrap_module(module: nn.Module, context: DistributedContext | None = None) -> nn.Module:
    """Return the module to train: wrapped in ``DistributedDataParallel`` when distributed."""
    return wrap_model(module, context or current_context())


def is_main_process() -> bool:
    """Return whether this process writes checkpoints and progress (rank 0, or not distributed)."""
    distributed = torch.distributed
    return not (distributed.is_available() and distributed.is_initialized()) or (
        distributed.get_rank() == 0
    )


def _copy_state(module: nn.Module) -> dict[str, Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _evaluate(module: nn.Module, loss_fn: LossFunction, data, device) -> float:
    X, y = data
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, X.shape[0], 8192):
            xb = X[start : start + 8192].to(device)
            yb = y[start : start + 8192].to(device)
            total += float(loss_fn(module(xb), yb)) * xb.shape[0]
    return total / X.shape[0]


def train(
    module: nn.Module,
    loss_fn: LossFunction,
    make_batches: BatchFactory,
    config: TrainingConfig,
    *,
    validation: tuple[Tensor, Tensor] | None = None,
    resume: bool = False,
    fingerprint: str = "",
) -> TrainingResult:
    """Train ``module`` in place with Adam; return the history.

    Parameters
    ----------
    module : nn.Module
        The network, already on ``config.device``.
    loss_fn : callable
        ``loss_fn(output, target)`` returning the mean loss of a batch.
    make_batches : callable
        ``make_batches(epoch)`` yields ``(x, y)`` batches for that epoch (0-based).
    config : TrainingConfig
        Settings.
    validation : tuple of Tensor, optional
        ``(X_val, y_val)`` for early stopping; without it the training loss is monitored.
    resume : bool, default=False
        Continue from ``config.checkpoint_path`` when that file exists.
    fingerprint : str, default=""
        Identifies the data and settings; a checkpoint with another fingerprint
        is rejected on resume.

    Returns
    -------
    TrainingResult
        With early stopping, ``module`` ends with the weights of the best epoch.
    """
    context = init_distributed()
    device = context.device if context.backend == "nccl" else torch.device(config.device)
    every = config.checkpoint_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ValueError(f"checkpoint_every must be a positive integer or None, got {every!r}")
    trained = wrap_module(module, context)
    optimizer = torch.optim.Adam(trained.parameters(), lr=config.learning_rate)
    state = TrainingState()
    if resume and config.checkpoint_path is not None:
        if context.is_main:
            _remove_interrupted_writes(config.checkpoint_path)
        state = _load_checkpoint(config.checkpoint_path, module, optimizer, fingerprint) or state
        if not context.is_main:
            # Rank 0 carries the partial loss sums of all ranks (see _run_epoch).
            state.epoch_loss, state.epoch_rows = 0.0, 0
    start_time = time.perf_counter()
    progress = _progress_bar(config, state.epoch)
    stopped_early = False
    try:
        while state.epoch < config.max_epochs:
            if config.early_stopping and state.epochs_no_improve >= config.n_iter_no_change:
                stopped_early = True
                break
            def save_checkpoint() -> None:
                if is_main_process() and config.checkpoint_path is not None:
                    _write_checkpoint(config.checkpoint_path, module, optimizer, state, fingerprint)

            _run_epoch(
                trained, loss_fn, make_batches, optimizer, state, validation, config, device,
                context, save_checkpoint,
            )
            save_checkpoint()
            if progress is not None:
                progress.update(1)
                progress.set_postfix(_postfix(state.history[-1]))
    finally:
        if progress is not None:
            progress.close()
    if config.early_stopping and state.best_state is not None:
        module.load_state_dict(state.best_state)
    module.eval()
    if context.is_distributed:
        digest = check_parameters_in_sync(module, context)
        logger.info(
            "rank %d of %d ends with parameters %s", context.rank, context.world_size, digest
        )
    return TrainingResult(
        history=state.history,
        n_epochs=state.epoch,
        best_epoch=state.best_epoch,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - start_time,
    )


def _run_epoch(
    module, loss_fn, make_batches, optimizer, state, validation, config, device, context, save
):
    started = time.perf_counter()
    module.train()

    # A resumed run skips the batches trained on before the checkpoint. The order of an
    # epoch depends only on the seed and the epoch, so the rest are the same batches.
    # A factory with ``iter_epoch`` (lipmono.streaming.StreamingBatches) skips them
    # without converting them to tensors.
    if hasattr(make_batches, "iter_epoch"):
        batches = make_batches.iter_epoch(state.epoch, start_batch=state.batch)
    else:
        batches = itertools.islice(make_batches(state.epoch), state.batch, None)
    for xb, yb in batches:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module(xb), yb)
        loss.backward()
        optimizer.step()
        state.epoch_loss += float(loss.detach()) * xb.shape[0]
        state.epoch_rows += xb.shape[0]
        state.batch += 1
        if config.checkpoint_every is not None and state.batch % config.checkpoint_every == 0:
            _gather_epoch_loss(state, context)
            save()

    total_loss, total_rows = _gather_epoch_loss(state, context)
    train_loss = total_loss / max(total_rows, 1)
    state.batch, state.epoch_loss, state.epoch_rows = 0, 0.0, 0
    network = unwrap_model(module)
    val_loss = _evaluate(network, loss_fn, validation, device) if validation is not None else None
    monitored = val_loss if val_loss is not None else train_loss
    if not math.isfinite(monitored):
        raise FloatingPointError(
            f"the loss became {monitored} at epoch {state.epoch + 1}; "
            "lower learning_rate or lipschitz"
        )
    state.epoch += 1
    if monitored < state.best_loss - config.tol:
        state.best_loss = monitored
        state.best_epoch = state.epoch
        state.epochs_no_improve = 0
        state.best_state = _copy_state(network) if config.early_stopping else None
    else:
        state.epochs_no_improve += 1
    record = {
        "epoch": state.epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "seconds": time.perf_counter() - started,
    }
    state.history.append(record)
    if config.verbose:
        values = " ".join(f"{name}={value}" for name, value in _postfix(record).items())
        logger.info("epoch %d: %s", state.epoch, values)


def _gather_epoch_loss(state: TrainingState, context: DistributedContext) -> tuple[float, int]:
    """Return the loss sum and row count of the epoch so far, over all ranks.

    Every rank calls this at the same batch. Rank 0 keeps the totals in ``state``
    (they go into its checkpoint) and the other ranks restart from zero, so later
    sums stay exact.
    """
    if not context.is_distributed:
        return state.epoch_loss, state.epoch_rows
    loss, rows = all_reduce_sums([state.epoch_loss, state.epoch_rows], context)
    state.epoch_loss, state.epoch_rows = (loss, int(rows)) if context.is_main else (0.0, 0)
    return loss, int(rows)


def _random_state() -> tuple[dict[str, Tensor], dict]:
    """Return the torch, numpy and Python random states as tensors and JSON data."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
    }
    document = {
        "numpy": [kind, int(position), int(has_gauss), float(cached_gaussian)],
        "python": [version, list(python_state), gauss_next],
    }
    return tensors, document


def _restore_random_state(tensors: dict[str, Tensor], document: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    kind, position, has_gauss, cached_gaussian = document["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, position, has_gauss, cached_gaussian))
    version, python_state, gauss_next = document["python"]
    random.setstate((version, tuple(python_state), gauss_next))


def _postfix(record: dict) -> dict:
    postfix = {"train_loss": f"{record['train_loss']:.4f}"}
    if record["val_loss"] is not None:
        postfix["val_loss"] = f"{record['val_loss']:.4f}"
    return postfix


def _progress_bar(config: TrainingConfig, start_epoch: int):
    if not config.verbose or not is_main_process():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.max_epochs, initial=start_epoch, desc="training", unit="epoch")


def _write_checkpoint(path, module, optimizer, state: TrainingState, fingerprint: str) -> None:
    tensors = {f"model.{name}": value for name, value in module.state_dict().items()}
    if state.best_state is not None:
        tensors.update({f"best.{name}": value for name, value in state.best_state.items()})
    random_tensors, random_document = _random_state()
    tensors.update(random_tensors)
    optimizer_state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for param_id, entries in optimizer_state["state"].items():
        scalars[str(param_id)] = {}
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{param_id}.{key}"] = value
            else:
                scalars[str(param_id)][key] = value
    document = {
        "format": "lipmono-checkpoint",
        "format_version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "epoch": state.epoch,
        "batch": state.batch,
        "world_size": current_context().world_size,
        "epoch_loss": state.epoch_loss,
        "epoch_rows": state.epoch_rows,
        "random_state": random_document,
        "best_loss": state.best_loss if math.isfinite(state.best_loss) else None,
        "best_epoch": state.best_epoch,
        "epochs_no_improve": state.epochs_no_improve,
        "history": state.history,
        "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
    }
    write_container(path, tensors, document)


def _remove_interrupted_writes(path) -> None:
    """Delete temporary files that a killed write of the checkpoint ``path`` left behind.

    :func:`lipmono.files.atomic_path` names them ``.NAME.RANDOM.tmp`` beside ``path``;
    a process killed before its rename never removes its own.
    """
    from pathlib import Path

    checkpoint = Path(path)
    folder = checkpoint.parent if str(checkpoint.parent) else Path(".")
    for temporary in folder.glob(f".{checkpoint.name}.*.tmp"):
        temporary.unlink(missing_ok=True)
        logger.info("removed %s, left by an interrupted checkpoint write", temporary)


def _load_checkpoint(path, module, optimizer, fingerprint: str) -> TrainingState | None:
    from pathlib import Path

    if not Path(path).exists():
        logger.info("no checkpoint at %s; training from the start", path)
        return None
    tensors, document = read_container(path, expected_format="lipmono-checkpoint")
    if document.get("fingerprint") != fingerprint:
        raise ModelFileError(
            f"checkpoint {str(path)!r} was written for other data or settings; "
            "resume with the same data and options, or delete the checkpoint to start over"
        )
    # Each rank's shard of an epoch depends on the world size, so a data position
    # within an epoch only means the same batches with the same number of processes.
    saved_world, world = document.get("world_size", 1), current_context().world_size
    if document.get("batch", 0) and saved_world != world:
        raise ModelFileError(
            f"checkpoint {str(path)!r} stopped within an epoch of a run with {saved_world} "
            f"process(es), but this run has {world}; resume with --nproc_per_node giving "
            f"{saved_world} processes in all"
        )

    def section(prefix: str) -> dict[str, Tensor]:
        return {
            name[len(prefix) :]: value for name, value in tensors.items() if name.startswith(prefix)
        }

    try:
        module.load_state_dict(section("model."))
        optimizer_state: dict = {"state": {}, "param_groups": document["optimizer"]["param_groups"]}
        for param_id, scalars in document["optimizer"]["scalars"].items():
            optimizer_state["state"][int(param_id)] = dict(scalars)
        for name, value in section("optimizer.").items():
            param_id, key = name.split(".", 1)
            optimizer_state["state"].setdefault(int(param_id), {})[key] = value
        optimizer.load_state_dict(optimizer_state)
        _restore_random_state(tensors, document["random_state"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise ModelFileError(
            f"checkpoint {str(path)!r} does not match the model: {error}"
        ) from None
    best = section("best.")
    best_loss = document["best_loss"]
    logger.info(
        "resuming from %s at epoch %d, batch %d", path, document["epoch"], document["batch"]
    )
    return TrainingState(
        epoch=int(document["epoch"]),
        best_loss=math.inf if best_loss is None else float(best_loss),
        best_epoch=int(document["best_epoch"]),
        epochs_no_improve=int(document["epochs_no_improve"]),
        history=list(document["history"]),
        best_state=best or None,
        batch=int(document["batch"]),
        epoch_loss=float(document["epoch_loss"]),
        epoch_rows=int(document["epoch_rows"]),
    )
