"""Multi-process training on top of ``torch.distributed``.

A run started by ``torchrun`` (``python -m torch.distributed.run``) gets the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. :func:`init_distributed` reads them and joins the process group
with the ``gloo`` backend on CPU or ``nccl`` where CUDA devices exist;
:func:`wrap_model` wraps the network in
:class:`~torch.nn.parallel.DistributedDataParallel`, which all-reduces the
gradients of the raw weights after every backward pass, so every rank applies the
same optimizer step and the weights stay identical. Without those variables
everything here falls back to a single process and does nothing extra.

:class:`~lipmono.LipschitzLinear` computes its effective weight inside ``forward``
(a torch parametrization), so the parameter DDP synchronises is the raw weight. The
power-iteration vectors ``u`` and ``v`` of the ``l2->l2`` normalization are
buffers: DDP broadcasts rank 0's buffers before each forward pass in training
mode, and since the raw weights agree they would stay equal anyway.

Only rank 0 writes files (:func:`rank_zero_only`, :attr:`DistributedContext.is_main`).
"""

from __future__ import annotations

import datetime
import functools
import gc
import hashlib
import inspect
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from .errors import LipmonoError

__all__ = [
    "DistributedContext",
    "DistributedError",
    "LAUNCHER_VARIABLES",
    "default_backend",
    "read_launcher_env",
    "init_distributed",
    "shutdown_distributed",
    "distributed_session",
    "current_context",
    "wrap_model",
    "unwrap_model",
    "rank_zero_only",
    "barrier",
    "all_reduce_sums",
    "broadcast_object",
    "parameters_digest",
    "check_parameters_in_sync",
    "shard_order",
    "batches_per_epoch",
]

logger = logging.getLogger(__name__)

#: Environment variables that torchrun sets for each worker.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

_BACKENDS = ("gloo", "nccl")

_Result = TypeVar("_Result")

# torch 2.13 renamed DDP's ``broadcast_buffers`` to ``forward_sync_buffers`` and warns
# on the old name; older releases only know the old one.
if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
    _BUFFER_SYNC = {"forward_sync_buffers": True}
else:
    _BUFFER_SYNC = {"broadcast_buffers": True}


class DistributedError(LipmonoError, RuntimeError):
    """The process group cannot be set up, or the ranks disagree."""


@dataclass(frozen=True)
class DistributedContext:
    """Rank, world size, backend and device of this process in a multi-process run.

    A single-process run has ``rank=0``, ``world_size=1`` and ``backend=None``.
    """

    #: Global index of this process, ``0 <= rank < world_size``.
    rank: int = 0
    #: Number of processes in the run.
    world_size: int = 1
    #: Index of this process on its machine; selects the GPU under nccl.
    local_rank: int = 0
    #: ``"gloo"``, ``"nccl"``, or None for a single process.
    backend: str | None = None
    #: Device the model and batches live on.
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: Whether :func:`init_distributed` created the process group (and so destroys it).
    owns_process_group: bool = False

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the only rank that writes files."""
        return self.rank == 0


def default_backend() -> str:
    """Return ``"nccl"`` when CUDA devices and NCCL are available, else ``"gloo"``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def _read_int(environ: Mapping[str, str], name: str) -> int:
    text = environ[name]
    try:
        return int(text)
    except ValueError:
        raise DistributedError(
            f"environment variable {name}={text!r} is not an integer; start the run with "
            "torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK"
        ) from None


def read_launcher_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int] | None:
    """Return ``(rank, world_size, local_rank)`` from torchrun's variables, or None.

    Returns None when ``WORLD_SIZE`` is unset (a plain single-process run). Raises
    :class:`DistributedError` when the variables are partial or out of range.
    """
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    missing = [name for name in LAUNCHER_VARIABLES if name not in environ]
    world_size = _read_int(environ, "WORLD_SIZE")
    if world_size < 1:
        raise DistributedError(f"WORLD_SIZE={world_size} must be at least 1")
    if world_size > 1 and missing:
        raise DistributedError(
            f"WORLD_SIZE={world_size} is set but {', '.join(missing)} is missing; start the run "
            "with torchrun (python -m torch.distributed.run), which sets all of "
            f"{', '.join(LAUNCHER_VARIABLES)}"
        )
    rank = _read_int(environ, "RANK") if "RANK" in environ else 0
    local_rank = _read_int(environ, "LOCAL_RANK") if "LOCAL_RANK" in environ else 0
    if not 0 <= rank < world_size:
        raise DistributedError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world_size})")
    if local_rank < 0:
        raise DistributedError(f"LOCAL_RANK={local_rank} must not be negative")
    return rank, world_size, local_rank


def _device_for(backend: str | None, local_rank: int) -> torch.device:
    if backend == "nccl":
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _context_from_group() -> DistributedContext:
    backend = str(dist.get_backend())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        backend=backend,
        device=_device_for(backend, local_rank),
        owns_process_group=False,
    )


def init_distributed(
    backend: str | None = None,
    *,
    timeout_s: float = 1800.0,
    environ: Mapping[str, str] | None = None,
) -> DistributedContext:
    """Join the process group described by torchrun's environment variables.

    Parameters
    ----------
    backend : {"gloo", "nccl"}, optional
        Defaults to :func:`default_backend`: ``nccl`` where CUDA is available,
        ``gloo`` otherwise.
    timeout_s : float, default=1800.0
        Seconds a collective operation waits for the other ranks before failing.
    environ : mapping, optional
        Variables to read instead of ``os.environ``.

    Returns
    -------
    DistributedContext
        A single-process context when ``WORLD_SIZE`` is unset or 1; the existing
        group's context when one was already initialised by the caller.
    """
    if backend is not None and backend not in _BACKENDS:
        raise DistributedError(f"backend={backend!r} is not supported; use one of {_BACKENDS}")
    if dist.is_available() and dist.is_initialized():
        return _context_from_group()
    launch = read_launcher_env(environ)
    if launch is None or launch[1] == 1:
        return DistributedContext()
    if not dist.is_available():
        raise DistributedError(
            "this torch build has no torch.distributed support; install a build that has it "
            "or run in a single process"
        )
    rank, world_size, local_rank = launch
    backend = backend or default_backend()
    # NOTE: the tests run gloo on CPU only; this nccl branch has not run on GPUs in them.
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise DistributedError(
                "backend='nccl' needs CUDA devices but none is available; use backend='gloo' on CPU"
            )
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) "
                "are visible; start at most one process per GPU (--nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    logger.info("joined process group: rank %d of %d, backend %s", rank, world_size, backend)
    return DistributedContext(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        backend=backend,
        device=_device_for(backend, local_rank),
        owns_process_group=True,
    )


def shutdown_distributed(context: DistributedContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if context.owns_process_group and dist.is_initialized():
        # DDP wrappers sit in reference cycles and keep the group's gloo backend alive.
        # Collecting them now frees it while the interpreter still runs.
        # NOTE: once in about 20 two-process gloo runs, rank 0 aborted at exit after its
        # work was done ("terminate called without an active exception"). It did not
        # recur in 8 further runs, so whether this collection prevents it is unknown.
        gc.collect()
        dist.destroy_process_group()
        logger.info("left process group: rank %d", context.rank)


@contextmanager
def distributed_session(backend: str | None = None, **kwargs) -> Iterator[DistributedContext]:
    """Context manager around :func:`init_distributed` and :func:`shutdown_distributed`."""
    context = init_distributed(backend, **kwargs)
    try:
        yield context
    finally:
        shutdown_distributed(context)


def current_context() -> DistributedContext:
    """Return the context of the initialised process group, or a single-process one."""
    if dist.is_available() and dist.is_initialized():
        return _context_from_group()
    return DistributedContext()


def wrap_model(module: nn.Module, context: DistributedContext) -> nn.Module:
    """Move ``module`` to the context's device and wrap it in DDP when distributed.

    ``find_unused_parameters`` stays False because every parameter of a lipmono
    network takes part in every forward pass. Buffers are synchronised before each
    forward pass, so the power-iteration vectors and the scaler of rank 0 are used
    everywhere.
    A single-process context returns the module unchanged, on its own device.
    """
    if not context.is_distributed:
        return module
    module = module.to(context.device)
    device_ids = [context.local_rank] if context.device.type == "cuda" else None
    return DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=False, **_BUFFER_SYNC
    )


def unwrap_model(module: nn.Module) -> nn.Module:
    """Return the network inside a DDP wrapper, or ``module`` itself."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def rank_zero_only(function: Callable[..., _Result]) -> Callable[..., _Result | None]:
    """Decorate ``function`` so that it runs on rank 0 and returns None on other ranks."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if current_context().is_main:
            return function(*args, **kwargs)
        return None

    return wrapper


def barrier(context: DistributedContext) -> None:
    """Wait until every rank reaches this point (no-op in a single process)."""
    if context.is_distributed:
        dist.barrier()


def all_reduce_sums(values: Sequence[float], context: DistributedContext) -> list[float]:
    """Return the element-wise sums of ``values`` over all ranks, in float64.

    Metrics are reduced as sums (for example loss total and row count) so that
    ranks with different shard sizes are weighted by their rows.
    """
    if not context.is_distributed:
        return [float(value) for value in values]
    tensor = torch.tensor(list(values), dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_object(value, context: DistributedContext, source: int = 0):
    """Return rank ``source``'s ``value`` on every rank (a picklable object)."""
    if not context.is_distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=source, device=context.device)
    return box[0]


def parameters_digest(module: nn.Module) -> str:
    """Return a SHA-256 hex digest of every parameter and buffer of ``module``.

    Names and values enter in ``state_dict`` order, so two modules have the same
    digest exactly when their states agree bit for bit.
    """
    digest = hashlib.sha256()
    for name, tensor in unwrap_model(module).state_dict().items():
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_parameters_in_sync(module: nn.Module, context: DistributedContext) -> str:
    """Return the parameter digest after checking that all ranks hold the same one.

    Raises :class:`DistributedError` naming the ranks whose parameters differ from
    rank 0's; a single process returns its digest.
    """
    digest = parameters_digest(module)
    if not context.is_distributed:
        return digest
    digests: list[str | None] = [None] * context.world_size
    dist.all_gather_object(digests, digest)
    differing = [rank for rank, other in enumerate(digests) if other != digests[0]]
    if differing:
        raise DistributedError(
            f"parameters of rank(s) {differing} differ from rank 0 after training; the ranks "
            "ran different numbers of steps or a module changed its weights outside DDP"
        )
    return digest


def shard_order(order, context: DistributedContext) -> Tensor:
    """Return this rank's part of ``order``, a permutation of row indices.

    The order is padded by repeating its first entries until its length is a
    multiple of the world size, then rank ``r`` takes entries ``r, r + world_size,
    ...``, as :class:`torch.utils.data.DistributedSampler` splits its indices. Every
    rank gets ``ceil(len(order) / world_size)`` rows, so all ranks run the same
    number of steps, which DDP needs, and together the shards cover every row. A
    single process gets ``order`` unchanged.

    Returns
    -------
    Tensor
        Row indices of dtype int64, shape ``(ceil(len(order) / world_size),)``.
    """
    order = torch.as_tensor(order, dtype=torch.int64).reshape(-1)
    if order.numel() == 0:
        raise ValueError("order must contain at least one row index, got an empty sequence")
    world = context.world_size
    if world == 1:
        return order
    padded_length = math.ceil(order.numel() / world) * world
    repeats = math.ceil(padded_length / order.numel())
    padded = order.repeat(repeats)[:padded_length]
    return padded[context.rank :: world]


def batches_per_epoch(n_rows: int, batch_size: int, context: DistributedContext) -> int:
    """Return how many batches each rank runs per epoch over ``n_rows`` rows."""
    return math.ceil(math.ceil(n_rows / context.world_size) / batch_size)
