"""Model files: exact round trips, and a clear ModelFileError for every broken file."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import lipmono
from lipmono import ModelFileError, MonotonicClassifier, MonotonicRegressor
from lipmono.serialization import FORMAT_VERSION, read_container, write_container

FAST = {"hidden_layer_sizes": (8, 8), "max_iter": 3, "random_state": 0}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "dose": rng.normal(5.0, 2.0, 100),
            "age": rng.uniform(20, 80, 100).round(),
            "city": rng.choice(["paris", "rome", "oslo"], 100),
        }
    )


@pytest.fixture(scope="module")
def models(frame):
    target = 0.5 * frame["dose"] - 0.01 * frame["age"]
    return {
        "regressor": MonotonicRegressor({"dose": 1, "age": -1}, **FAST).fit(frame, target),
        "binary": MonotonicClassifier({"dose": 1}, norm="l2", **FAST).fit(frame, target > 2),
        "multiclass": MonotonicClassifier(**FAST).fit(
            frame, np.array(["a", "b", "c"])[np.digitize(target, [1.5, 2.5])]
        ),
    }


@pytest.fixture
def saved(models, tmp_path):
    path = tmp_path / "model.safetensors"
    models["binary"].save(path)
    return path


@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass"])
def test_round_trip_reproduces_predictions(models, frame, tmp_path, kind):
    model = models[kind]
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = lipmono.load(path)
    assert type(loaded) is type(model)
    assert np.array_equal(loaded.predict(frame), model.predict(frame))
    assert np.array_equal(loaded.encode(frame), model.encode(frame))
    if kind != "regressor":
        assert np.array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
        assert np.array_equal(loaded.classes_, model.classes_)
    assert loaded.certificate_ == model.certificate_
    assert loaded.history_ == model.history_
    assert loaded.get_params() == model.get_params()
    assert list(loaded.feature_names_in_) == list(model.feature_names_in_)
    assert list(loaded.encoded_monotonic_cst_) == list(model.encoded_monotonic_cst_)


def test_round_trip_numpy_fit(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 3))
    model = MonotonicClassifier([1, 0, -1], **FAST).fit(X, X[:, 0] > 0)
    model.save(tmp_path / "m.safetensors")
    loaded = lipmono.load(tmp_path / "m.safetensors")
    assert np.array_equal(loaded.decision_function(X), model.decision_function(X))
    assert not hasattr(loaded, "feature_names_in_")
    assert loaded.classes_.dtype == np.bool_


def test_file_metadata_contents(saved):
    tensors, document = read_container(saved)
    assert document["format"] == "lipmono-model"
    assert document["format_version"] == FORMAT_VERSION
    assert document["estimator"] == "MonotonicClassifier"
    assert [c["name"] for c in document["schema"]["columns"]] == ["dose", "age", "city"]
    assert document["schema"]["columns"][2]["categories"] == ["oslo", "paris", "rome"]
    assert document["architecture"]["hidden_sizes"] == [8, 8]
    assert document["architecture"]["norm"] == "l2"
    assert document["architecture"]["monotonic_cst"] == [1, 0, 0, 0, 0]
    assert document["classes"]["values"] == [False, True]
    assert document["certificate"]["lipschitz_scaled"] > 0
    assert len(document["input_scaler"]["scale"]) == 5
    assert all(tensor.dtype == torch.float64 for tensor in tensors.values())


def test_pickle_round_trip(models, frame):
    model = models["binary"]
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.predict_proba(frame), model.predict_proba(frame))


def test_save_overwrites_atomically(models, saved):
    before = saved.read_bytes()
    models["regressor"].save(saved)
    assert saved.read_bytes() != before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_failed_write_keeps_old_file(models, saved, monkeypatch):
    before = saved.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("lipmono.files.os.fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        models["regressor"].save(saved)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_save_into_missing_folder(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models["binary"].save(tmp_path / "missing" / "model.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 100, -200, -1])
def test_truncated_file_rejected(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:keep])
    with pytest.raises(ModelFileError, match="truncated|corrupted"):
        lipmono.load(saved)


def test_edited_weights_rejected(saved):
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum of its weights does not match"):
        lipmono.load(saved)


def test_newer_format_version_rejected(saved):
    tensors, document = read_container(saved)
    write_container(saved, tensors, {**document, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(ModelFileError, match=f"format version {FORMAT_VERSION + 1}, newer"):
        lipmono.load(saved)


def test_weights_not_matching_metadata_rejected(saved):
    tensors, document = read_container(saved)
    document["architecture"]["hidden_sizes"] = [16, 8]
    write_container(saved, tensors, document)
    with pytest.raises(ModelFileError, match="has shape .* but the metadata requires"):
        lipmono.load(saved)


def test_edited_certificate_rejected(saved):
    tensors, document = read_container(saved)
    document["certificate"]["lipschitz_scaled"] = 0.5
    write_container(saved, tensors, document)
    with pytest.raises(ModelFileError, match="certified bound in the metadata \\(0.5\\) differs"):
        lipmono.load(saved)


def test_missing_weight_rejected(saved):
    tensors, document = read_container(saved)
    name = next(iter(tensors))
    del tensors[name]
    write_container(saved, tensors, document)
    with pytest.raises(ModelFileError, match="missing"):
        lipmono.load(saved)


def test_inconsistent_metadata_rejected(saved):
    tensors, document = read_container(saved)
    del document["input_scaler"]
    write_container(saved, tensors, document)
    with pytest.raises(ModelFileError, match="does not hold a consistent model: KeyError"):
        lipmono.load(saved)


def test_unknown_estimator_rejected(saved):
    tensors, document = read_container(saved)
    write_container(saved, tensors, {**document, "estimator": "Pipeline"})
    with pytest.raises(ModelFileError, match="unknown estimator 'Pipeline'"):
        lipmono.load(saved)


def test_plain_safetensors_file_rejected(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="not a lipmono lipmono-model"):
        lipmono.load(path)


def test_checkpoint_is_not_a_model(tmp_path):
    path = tmp_path / "run.ckpt"
    write_container(
        path, {"w": torch.zeros(2)}, {"format": "lipmono-checkpoint", "format_version": 1}
    )
    with pytest.raises(
        ModelFileError, match="not a lipmono-model file \\(format 'lipmono-checkpoint'\\)"
    ):
        lipmono.load(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"prediction\n0.5\n", json.dumps({"a": 1}).encode(), struct.pack("<Q", 4) + b"[1] "],
)
def test_not_a_model_rejected(tmp_path, content):
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a lipmono model file"):
        lipmono.load(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        lipmono.load(tmp_path / "absent.safetensors")
    with pytest.raises(ModelFileError, match="is a folder"):
        lipmono.load(tmp_path)
