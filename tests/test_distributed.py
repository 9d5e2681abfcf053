"""Unit tests of lipmono.distributed that run in one process (multi-process runs are in
test_distributed_run.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

import lipmono
from lipmono import distributed as D
from lipmono.distributed import DistributedContext, DistributedError

TORCHRUN_ENV = {
    "RANK": "1",
    "WORLD_SIZE": "2",
    "LOCAL_RANK": "1",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


def test_all_names_importable():
    for name in D.__all__:
        assert hasattr(D, name), name


def test_launcher_env_absent_is_single_process():
    assert D.read_launcher_env({}) is None
    context = D.init_distributed(environ={})
    assert context == DistributedContext()
    assert context.is_main
    assert not context.is_distributed


def test_launcher_env_read():
    assert D.read_launcher_env(TORCHRUN_ENV) == (1, 2, 1)


def test_world_size_one_needs_no_process_group():
    context = D.init_distributed(environ={"WORLD_SIZE": "1"})
    assert not context.is_distributed
    assert not context.owns_process_group


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"RANK": "two"}, r"RANK='two' is not an integer"),
        ({"RANK": "2"}, r"RANK=2 is outside 0\.\.WORLD_SIZE-1"),
        ({"WORLD_SIZE": "0"}, r"WORLD_SIZE=0 must be at least 1"),
        ({"LOCAL_RANK": "-1"}, r"LOCAL_RANK=-1 must not be negative"),
        ({"MASTER_PORT": None}, r"MASTER_PORT is missing; start the run with torchrun"),
    ],
)
def test_launcher_env_invalid(changes, message):
    environ = dict(TORCHRUN_ENV)
    for name, value in changes.items():
        if value is None:
            del environ[name]
        else:
            environ[name] = value
    with pytest.raises(DistributedError, match=message):
        D.read_launcher_env(environ)


def test_unknown_backend_rejected():
    with pytest.raises(DistributedError, match=r"backend='mpi' is not supported"):
        D.init_distributed("mpi", environ=TORCHRUN_ENV)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_nccl_without_cuda_rejected():
    with pytest.raises(DistributedError, match=r"needs CUDA devices but none is available"):
        D.init_distributed("nccl", environ=TORCHRUN_ENV)


def test_default_backend_matches_hardware():
    expected = "nccl" if torch.cuda.is_available() else "gloo"
    assert D.default_backend() == expected


def test_wrap_model_single_process_returns_module():
    model = lipmono.MonotonicMLP(3, [8], monotonic_cst=[1, 0, -1])
    wrapped = D.wrap_model(model, DistributedContext())
    assert wrapped is model
    assert D.unwrap_model(wrapped) is model


def test_rank_zero_only_runs_on_main():
    calls = []

    @D.rank_zero_only
    def write(value):
        calls.append(value)
        return value

    assert write(3) == 3
    assert calls == [3]


def test_parameters_digest_detects_one_bit():
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(3, [8], monotonic_cst=[1, 0, -1], norm="l2")
    copy = lipmono.MonotonicMLP(3, [8], monotonic_cst=[1, 0, -1], norm="l2")
    copy.load_state_dict(model.state_dict())
    assert D.parameters_digest(model) == D.parameters_digest(copy)
    with torch.no_grad():
        raw = copy.inner.net[0].raw_weight
        raw.view(-1)[0] = torch.nextafter(raw.view(-1)[0], torch.tensor(1e9))
    assert D.parameters_digest(model) != D.parameters_digest(copy)


def test_parameters_digest_covers_power_iteration_buffers():
    torch.manual_seed(0)
    model = lipmono.LipschitzMLP(3, [8], norm="l2")
    before = D.parameters_digest(model)
    model.net[0].normalization.u.mul_(-1)
    assert D.parameters_digest(model) != before


@pytest.mark.parametrize("n_rows", [1, 7, 10, 101])
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_shards_cover_rows_equally(n_rows, world_size):
    order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(n_rows))
    shards = [
        D.shard_order(order, DistributedContext(rank=r, world_size=world_size)).tolist()
        for r in range(world_size)
    ]
    lengths = {len(shard) for shard in shards}
    assert lengths == {-(-n_rows // world_size)}
    assert set().union(*map(set, shards)) == set(range(n_rows))
    assert sum(map(len, shards)) - n_rows < world_size


def test_shard_single_process_keeps_order():
    order = torch.tensor([4, 0, 3, 1, 2])
    assert torch.equal(D.shard_order(order, DistributedContext()), order)


def test_shard_matches_distributed_sampler():
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    for rank in range(3):
        sampler = DistributedSampler(order.tolist(), num_replicas=3, rank=rank, shuffle=False)
        expected = [order[i].item() for i in sampler]
        shard = D.shard_order(order, DistributedContext(rank=rank, world_size=3))
        assert shard.tolist() == expected


def test_shard_rejects_empty_order():
    with pytest.raises(ValueError, match="order must contain at least one row index"):
        D.shard_order([], DistributedContext())


def test_batches_per_epoch_counts_padding():
    assert D.batches_per_epoch(103, 8, DistributedContext(rank=0, world_size=2)) == 7
    assert D.batches_per_epoch(103, 8, DistributedContext()) == 13


def test_all_reduce_sums_single_process():
    assert D.all_reduce_sums([1, 2.5], DistributedContext()) == [1.0, 2.5]
    assert D.broadcast_object({"a": 1}, DistributedContext()) == {"a": 1}


@pytest.mark.parametrize("norm", ["l1", "linf", "l2", "l1->l1"])
def test_every_parameter_gets_gradient(norm):
    # DDP runs with find_unused_parameters=False, which needs every parameter in
    # every backward pass; the effective weights are computed inside forward.
    torch.manual_seed(0)
    model = lipmono.MonotonicMLP(3, [8, 8], monotonic_cst=[1, 0, -1], norm=norm)
    model(torch.randn(5, 3)).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
