"""The training loop shared by the estimators and the ``lipmono train`` command.

:func:`train` runs Adam over the batches that a factory yields for each epoch,
evaluates a validation loss, stops early when it stops improving, and writes a
checkpoint after each epoch, so an interrupted run resumes where it stopped.

The loop has three places meant for distributed and streaming training:

(a) :func:`wrap_module` is where a ``DistributedDataParallel`` wrapper goes;
(b) :func:`is_main_process` guards every write (checkpoints, progress bar), so
    only rank 0 writes;
(c) :class:`TrainingState` counts completed epochs, and ``make_batches(epoch)``
    receives that counter, so a factory can shard or seek a stream by epoch.

A checkpoint is one safetensors file (see :mod:`lipmono.serialization`): the
module's weights, the best weights so far, Adam's moment tensors, the torch RNG
state, and JSON with the epoch, the early-stopping counters, the loss history
and a fingerprint of the data and settings, so a resumed run with other data
is rejected. Batch order depends only on the seed and the epoch number, so a
resumed run reproduces an uninterrupted one exactly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ModelFileError
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


@dataclass
class TrainingState:
    """Everything needed to continue training after the last completed epoch."""

    epoch: int = 0  # epochs completed
    best_loss: float = math.inf  # lowest monitored loss so far
    best_epoch: int = 0  # epoch (1-based) that reached best_loss; 0 before any epoch
    epochs_no_improve: int = 0  # epochs since best_loss last improved
    history: list[dict] = field(default_factory=list)  # one entry per completed epoch
    best_state: dict[str, Tensor] | None = None  # module weights at best_epoch


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
    epoch gives the same batches as an uninterrupted run.
    """
    n = X.shape[0]

    def make_batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        order = torch.as_tensor(order)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            yield X[index], y[index]

    return make_batches


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the torch device for ``device``; ``"auto"`` picks CUDA when torch sees it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda:0'"
        ) from None


def wrap_module(module: nn.Module) -> nn.Module:
    """Return the module to train: the place for a ``DistributedDataParallel`` wrapper."""
    return module


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
    device = torch.device(config.device)
    trained = wrap_module(module)
    optimizer = torch.optim.Adam(trained.parameters(), lr=config.learning_rate)
    state = TrainingState()
    if resume and config.checkpoint_path is not None:
        state = _load_checkpoint(config.checkpoint_path, module, optimizer, fingerprint) or state
    start_time = time.perf_counter()
    progress = _progress_bar(config, state.epoch)
    stopped_early = False
    try:
        while state.epoch < config.max_epochs:
            if config.early_stopping and state.epochs_no_improve >= config.n_iter_no_change:
                stopped_early = True
                break
            _run_epoch(trained, loss_fn, make_batches, optimizer, state, validation, config, device)
            if is_main_process() and config.checkpoint_path is not None:
                _write_checkpoint(config.checkpoint_path, module, optimizer, state, fingerprint)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(_postfix(state.history[-1]))
    finally:
        if progress is not None:
            progress.close()
    if config.early_stopping and state.best_state is not None:
        module.load_state_dict(state.best_state)
    module.eval()
    return TrainingResult(
        history=state.history,
        n_epochs=state.epoch,
        best_epoch=state.best_epoch,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - start_time,
    )


def _run_epoch(module, loss_fn, make_batches, optimizer, state, validation, config, device):
    started = time.perf_counter()
    module.train()
    total, count = 0.0, 0
    for xb, yb in make_batches(state.epoch):
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module(xb), yb)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * xb.shape[0]
        count += xb.shape[0]
    train_loss = total / max(count, 1)
    val_loss = _evaluate(module, loss_fn, validation, device) if validation is not None else None
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
        state.best_state = _copy_state(module) if config.early_stopping else None
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
        logger.info("epoch %d: %s", state.epoch, _postfix(record))


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
    tensors["rng.torch"] = torch.get_rng_state()
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
        "best_loss": state.best_loss if math.isfinite(state.best_loss) else None,
        "best_epoch": state.best_epoch,
        "epochs_no_improve": state.epochs_no_improve,
        "history": state.history,
        "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
    }
    write_container(path, tensors, document)


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
        torch.set_rng_state(tensors["rng.torch"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise ModelFileError(
            f"checkpoint {str(path)!r} does not match the model: {error}"
        ) from None
    best = section("best.")
    best_loss = document["best_loss"]
    logger.info("resuming from %s after epoch %d", path, document["epoch"])
    return TrainingState(
        epoch=int(document["epoch"]),
        best_loss=math.inf if best_loss is None else float(best_loss),
        best_epoch=int(document["best_epoch"]),
        epochs_no_improve=int(document["epochs_no_improve"]),
        history=list(document["history"]),
        best_state=best or None,
    )
