"""Killed and resumed training runs end exactly where an uninterrupted run ends.

A worker script trains a MonotonicMLP on the bundled COMPAS data with a checkpoint
every few batches. Its loss adds a tiny term drawn from the torch, numpy and
Python random generators, so the final weights depend on all three random states
and on the data position. A resume that restored any of them wrongly would end
with other weights.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lipmono.datasets.bundled import compas_path
from lipmono.serialization import read_container

EPOCHS = 2
# Seconds each training step sleeps, so that a run of 64 steps lasts at least 1.3 s
# whatever the machine's speed and several kills land before it ends.
PAUSE = 0.02

_WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    from pathlib import Path
    import numpy as np
    import torch
    from lipmono import MonotonicMLP
    from lipmono.distributed import parameters_digest
    from lipmono.training import TrainingConfig, tensor_batches, train

    data, checkpoint, out, epochs, every, resume, pause = sys.argv[1:8]
    table = torch.as_tensor(np.loadtxt(data, delimiter=",", skiprows=1, max_rows=2000))
    X, y = table[:, :13], table[:, 13]
    X = (X - X.mean(0)) / X.std(0).clamp_min(1e-12)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    model = MonotonicMLP(
        13, [16, 16], monotonic_cst=[1, 1, 1, 1] + [0] * 9, lipschitz=1.0, norm="l2"
    ).double()

    def loss_fn(output, target):
        time.sleep(float(pause))
        noise = torch.rand(()).item() + np.random.rand() + random.random()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(output[:, 0], target)
        return bce * (1 + 1e-3 * noise)

    config = TrainingConfig(
        max_epochs=int(epochs), early_stopping=False, seed=3, device="cpu",
        checkpoint_path=checkpoint, checkpoint_every=int(every),
    )
    result = train(model, loss_fn, tensor_batches(X, y, 64, 3), config,
                   resume=resume == "resume", fingerprint="compas-train")
    Path(out).write_text(json.dumps(
        {"digest": parameters_digest(model), "history": result.history}
    ))
    """
)


def _command(folder: Path, name: str, every: int, resume: bool) -> list[str]:
    return [
        sys.executable, str(folder / "worker.py"), str(compas_path("train")),
        str(folder / f"{name}.ckpt"),
        str(folder / f"{name}.json"), str(EPOCHS), str(every), "resume" if resume else "fresh",
        str(PAUSE),
    ]


def _environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def _run(folder: Path, name: str, every: int, resume: bool = False) -> dict:
    result = subprocess.run(
        _command(folder, name, every, resume), env=_environment(),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((folder / f"{name}.json").read_text())


def _kill_after_checkpoint(
    folder: Path, name: str, every: int, delay: float | None
) -> tuple[dict | None, bool]:
    """Start the worker and SIGKILL it once a checkpoint exists.

    With ``delay`` in seconds the kill comes that long after the first checkpoint
    appears. With ``delay=None`` it comes as soon as a temporary file of the next
    write is seen, that is inside a write. Returns the checkpoint's document read
    right after the kill (None when the run finished first) and whether a
    temporary file was still there after the kill, proof that the kill landed
    during a write.
    """
    checkpoint = folder / f"{name}.ckpt"
    pattern = f".{name}.ckpt.*.tmp"
    process = subprocess.Popen(
        _command(folder, name, every, resume=checkpoint.exists()), env=_environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists() and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint appeared within 60 s"
            time.sleep(0.01)
        if delay is None:
            while not any(folder.glob(pattern)) and process.poll() is None:
                assert time.monotonic() < deadline, "no checkpoint write seen within 60 s"
                time.sleep(0.0005)
        else:
            time.sleep(delay)
        if process.poll() is not None:
            return None, False
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode in (-signal.SIGKILL, 0), process.stderr.read().decode()[-4000:]
    if process.returncode == 0:
        return None, False
    during_write = any(folder.glob(pattern))
    _, document = read_container(checkpoint, expected_format="lipmono-checkpoint")
    return document, during_write


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    (folder / "worker.py").write_text(_WORKER)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(folder):
    return _run(folder, "reference", every=7)


def test_killed_run_resumes_to_same_weights(folder, uninterrupted):
    document, _ = _kill_after_checkpoint(folder, "killed", every=7, delay=0.3)
    assert document is not None, "the run finished before it could be killed"
    assert (document["epoch"], document["batch"]) != (EPOCHS, 0)
    resumed = _run(folder, "killed", every=7, resume=True)
    assert resumed["digest"] == uninterrupted["digest"]
    assert resumed["history"] == [
        {**record, "seconds": entry["seconds"]}
        for record, entry in zip(uninterrupted["history"], resumed["history"], strict=True)
    ]


def test_checkpoint_loadable_after_random_kills(folder, uninterrupted):
    # A checkpoint after every batch makes writes frequent. Every other kill waits
    # for a write to begin, so some kills land inside one. After each kill the file
    # must still contain the last complete checkpoint.
    generator = random.Random(0)
    positions, kills_during_write = [], 0
    for attempt in range(4):
        delay = None if attempt % 2 else generator.uniform(0, 0.25)
        document, during_write = _kill_after_checkpoint(folder, "random", every=1, delay=delay)
        if document is None:
            break
        positions.append((document["epoch"], document["batch"]))
        kills_during_write += during_write
    assert positions == sorted(positions)
    assert len(positions) >= 3
    assert kills_during_write >= 1
    resumed = _run(folder, "random", every=1, resume=True)
    assert resumed["digest"] == uninterrupted["digest"]
    # Kills during a write leave temporary files; the resumed run removes them.
    assert not list(folder.glob(".random.ckpt.*.tmp"))


def test_resume_rejects_other_world_size(tmp_path):
    import torch

    from lipmono import MonotonicMLP
    from lipmono.errors import ModelFileError
    from lipmono.serialization import write_container
    from lipmono.training import TrainingConfig, tensor_batches, train

    generator = torch.Generator().manual_seed(0)
    X = torch.randn(100, 3, generator=generator, dtype=torch.float64)
    y = X.sum(1)
    checkpoint = tmp_path / "run.ckpt"
    config = TrainingConfig(
        max_epochs=1, early_stopping=False, device="cpu",
        checkpoint_path=str(checkpoint), checkpoint_every=3,
    )

    def loss(output, target):
        return torch.nn.functional.mse_loss(output[:, 0], target)

    def model():
        return MonotonicMLP(3, [4], monotonic_cst=[1, 0, 0]).double()

    # 100 rows in batches of 10: the checkpoint after batch 9 is the last one within the epoch.
    train(model(), loss, tensor_batches(X, y, 10, 0), config, fingerprint="f")
    tensors, document = read_container(checkpoint, expected_format="lipmono-checkpoint")
    document.update(epoch=0, batch=9, world_size=2)
    document.pop("sha256", None)
    write_container(checkpoint, tensors, document)
    with pytest.raises(ModelFileError, match=r"run with 2 process\(es\), but this run has 1"):
        train(model(), loss, tensor_batches(X, y, 10, 0), config, resume=True, fingerprint="f")


def test_resume_removes_interrupted_writes(tmp_path):
    import torch

    from lipmono import MonotonicMLP
    from lipmono.training import TrainingConfig, tensor_batches, train

    checkpoint = tmp_path / "run.ckpt"
    leftover = tmp_path / ".run.ckpt.abc123.tmp"
    unrelated = tmp_path / ".other.ckpt.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    unrelated.write_bytes(b"another file")
    X = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    config = TrainingConfig(max_epochs=1, early_stopping=False, checkpoint_path=str(checkpoint))
    model = MonotonicMLP(2, [4], monotonic_cst=[1, 0]).double()

    def loss(output, target):
        return torch.nn.functional.mse_loss(output[:, 0], target)

    train(model, loss, tensor_batches(X, X.sum(1), 10, 0), config, resume=True)
    assert not leftover.exists()
    assert unrelated.exists()
    assert checkpoint.exists()
