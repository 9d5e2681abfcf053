"""The training loop behind the estimators: checkpoints, resume, progress and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipmono import DataError, ModelFileError, MonotonicClassifier, MonotonicMLP, MonotonicRegressor
from lipmono.estimators import ParameterError
from lipmono.serialization import read_container
from lipmono.training import TrainingConfig, tensor_batches, train


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    return X, X[:, 0] - 0.5 * X[:, 1] ** 2 + rng.normal(0, 0.1, 120)


def regressor(**overrides):
    settings = {
        "hidden_layer_sizes": (8,),
        "max_iter": 6,
        "random_state": 0,
        "n_iter_no_change": 50,
    }
    return MonotonicRegressor([1, 0, 0], **{**settings, **overrides})


def test_resumed_fit_equals_uninterrupted(data, tmp_path):
    X, y = data
    checkpoint = tmp_path / "run.ckpt"
    regressor(max_iter=3).fit(X, y, checkpoint_path=checkpoint)
    resumed = regressor(max_iter=6).fit(X, y, checkpoint_path=checkpoint, resume=True)
    uninterrupted = regressor(max_iter=6).fit(X, y)
    assert np.array_equal(resumed.predict(X), uninterrupted.predict(X))
    assert [h["train_loss"] for h in resumed.history_] == [
        h["train_loss"] for h in uninterrupted.history_
    ]
    assert resumed.n_iter_ == 6


def test_resume_without_checkpoint_starts_fresh(data, tmp_path):
    X, y = data
    model = regressor(max_iter=2).fit(X, y, checkpoint_path=tmp_path / "absent.ckpt", resume=True)
    assert model.n_iter_ == 2


def test_resume_needs_integer_random_state(data, tmp_path):
    X, y = data
    model = regressor(random_state=None)
    with pytest.raises(ParameterError, match="resume=True needs an integer random_state"):
        model.fit(X, y, checkpoint_path=tmp_path / "run.ckpt", resume=True)


def test_checkpoint_contents(data, tmp_path):
    X, y = data
    checkpoint = tmp_path / "run.ckpt"
    regressor(max_iter=2).fit(X, y, checkpoint_path=checkpoint)
    tensors, document = read_container(checkpoint, "lipmono-checkpoint")
    assert document["epoch"] == 2
    assert len(document["history"]) == 2
    assert document["best_epoch"] in (1, 2)
    assert any(name.startswith("model.") for name in tensors)
    assert any(name.startswith("best.") for name in tensors)
    assert any(name.endswith(".exp_avg_sq") for name in tensors)
    assert tensors["rng.torch"].dtype == torch.uint8
    assert document["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert [p.name for p in tmp_path.iterdir()] == ["run.ckpt"]


def test_resume_with_other_data_rejected(data, tmp_path):
    X, y = data
    checkpoint = tmp_path / "run.ckpt"
    regressor(max_iter=2).fit(X, y, checkpoint_path=checkpoint)
    with pytest.raises(ModelFileError, match="written for other data or settings"):
        regressor(max_iter=4).fit(X, y + 1, checkpoint_path=checkpoint, resume=True)
    with pytest.raises(ModelFileError, match="written for other data or settings"):
        regressor(max_iter=4, lipschitz=2.0).fit(X, y, checkpoint_path=checkpoint, resume=True)


def test_resume_from_model_file_rejected(data, tmp_path):
    X, y = data
    path = tmp_path / "model.safetensors"
    regressor(max_iter=1).fit(X, y).save(path)
    with pytest.raises(ModelFileError, match="not a lipmono-checkpoint file"):
        regressor(max_iter=2).fit(X, y, checkpoint_path=path, resume=True)


def test_verbose_shows_progress_bar(data, capsys):
    X, y = data
    regressor(max_iter=2, verbose=True).fit(X, y)
    assert "training" in capsys.readouterr().err


def test_classifier_seed_changes_model(data):
    X, y = data
    first = MonotonicClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y > 0)
    second = MonotonicClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=1).fit(X, y > 0)
    assert not np.array_equal(first.decision_function(X), second.decision_function(X))


def test_train_loop_with_custom_batches():
    torch.manual_seed(0)
    X = torch.randn(64, 2, dtype=torch.float64)
    y = X[:, 0] + X[:, 1]
    model = MonotonicMLP(2, [8], monotonic_cst=[1, 1]).double()
    config = TrainingConfig(learning_rate=0.05, max_epochs=30, early_stopping=False)

    def loss_fn(output, target):
        return torch.nn.functional.mse_loss(output[:, 0], target)

    result = train(model, loss_fn, tensor_batches(X, y, 16, seed=0), config)
    assert result.n_epochs == 30
    assert not result.stopped_early
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert not model.training


def test_batch_order_depends_on_seed_and_epoch():
    X = torch.arange(10.0)[:, None]
    make = tensor_batches(X, X[:, 0], 4, seed=3)
    first = torch.cat([x for x, _ in make(0)])[:, 0].tolist()
    assert sorted(first) == list(range(10))
    assert torch.cat([x for x, _ in make(0)])[:, 0].tolist() == first
    assert torch.cat([x for x, _ in make(1)])[:, 0].tolist() != first


def test_non_finite_loss_raises():
    X = torch.randn(8, 2, dtype=torch.float64)
    model = MonotonicMLP(2, [4], monotonic_cst=[1, 0]).double()
    config = TrainingConfig(max_epochs=2)

    def loss_fn(output, target):
        return (output[:, 0] - target).mean() * float("nan")

    with pytest.raises(FloatingPointError, match="loss became nan at epoch 1; lower learning_rate"):
        train(model, loss_fn, tensor_batches(X, X[:, 0], 4, seed=0), config)


def test_nan_target_rejected(data):
    X, y = data
    with pytest.raises(DataError, match="target contains NaN or inf in 120 rows"):
        regressor(max_iter=2).fit(X, y * np.inf)
