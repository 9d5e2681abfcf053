"""Estimators and ``lipmono train --stream`` fitted on Parquet and CSV files read in batches."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch.distributed

import lipmono
from lipmono import MonotonicClassifier, MonotonicRegressor, distributed, training
from lipmono.cli import main
from lipmono.errors import ConstraintError, DataError
from lipmono.serialization import read_container

N_ROWS = 2000
N_FILES = 4
ROW_GROUP = 250
FEATURES = ["a", "b", "c"]
QUICK = {"hidden_layer_sizes": (8, 8), "max_iter": 2, "batch_size": 64, "random_state": 0}
CLI_QUICK = ["--hidden", "8,8", "--epochs", "2", "--batch-size", "64", "--device", "cpu"]
DIGEST_LINE = re.compile(r"rank (\d+) of (\d+) ends with parameters ([0-9a-f]{64})")


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=N_ROWS),
            "b": rng.normal(loc=50.0, scale=4.0, size=N_ROWS),
            "c": rng.choice(["red", "green", "blue"], N_ROWS),
        }
    )
    frame["y"] = frame["a"] - 0.2 * frame["b"] + np.sin(frame["a"]) + (frame["c"] == "red")
    frame["label"] = np.where(frame["a"] - 0.25 * (frame["b"] - 50) > 0, "yes", "no")
    frame["grade"] = rng.integers(0, 3, N_ROWS)
    return frame


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The same rows as a DataFrame, a folder of Parquet files and one CSV file."""
    root = tmp_path_factory.mktemp("stream")
    frame = _frame()
    folder = root / "parts"
    folder.mkdir()
    per_file = N_ROWS // N_FILES
    for i in range(N_FILES):
        part = frame.iloc[i * per_file : (i + 1) * per_file]
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, folder / f"part-{i}.parquet", row_group_size=ROW_GROUP)
    csv = root / "table.csv"
    frame.to_csv(csv, index=False)
    return {"frame": frame, "folder": folder, "csv": csv, "root": root}


@pytest.fixture(scope="module")
def streamed_regressor(data):
    return MonotonicRegressor({"a": 1, "b": -1}, **QUICK).fit_stream(
        data["folder"], target="y", features=FEATURES
    )


def test_model_file_loads_and_predicts(streamed_regressor, data, tmp_path):
    path = tmp_path / "model.safetensors"
    streamed_regressor.save(path)
    loaded = lipmono.load(path)
    X = data["frame"][FEATURES]

    np.testing.assert_array_equal(loaded.predict(X), streamed_regressor.predict(X))
    assert np.isfinite(loaded.predict(X)).all()
    assert loaded.certificate_ == streamed_regressor.certificate_


def test_model_file_format_matches_in_memory(streamed_regressor, data, tmp_path):
    frame = data["frame"]
    in_memory = MonotonicRegressor({"a": 1, "b": -1}, **QUICK).fit(frame[FEATURES], frame["y"])
    streamed_regressor.save(tmp_path / "streamed.safetensors")
    in_memory.save(tmp_path / "memory.safetensors")
    streamed_tensors, streamed_document = read_container(tmp_path / "streamed.safetensors")
    memory_tensors, memory_document = read_container(tmp_path / "memory.safetensors")

    assert streamed_document.keys() == memory_document.keys()
    assert streamed_document["training"].keys() == memory_document["training"].keys()
    assert streamed_document["schema"] == memory_document["schema"]
    assert streamed_document["feature_names_in"] == memory_document["feature_names_in"]
    assert streamed_document["architecture"] == memory_document["architecture"]
    assert {k: v.shape for k, v in streamed_tensors.items()} == {
        k: v.shape for k, v in memory_tensors.items()
    }


def test_scalers_equal_in_memory_fit(streamed_regressor, data):
    frame = data["frame"]
    in_memory = MonotonicRegressor({"a": 1, "b": -1}, **QUICK).fit(frame[FEATURES], frame["y"])

    np.testing.assert_allclose(
        streamed_regressor.input_scaler_.mean, in_memory.input_scaler_.mean, rtol=1e-12
    )
    np.testing.assert_allclose(
        streamed_regressor.input_scaler_.scale, in_memory.input_scaler_.scale, rtol=1e-12
    )
    np.testing.assert_allclose(
        streamed_regressor.target_scaler_.mean, in_memory.target_scaler_.mean, rtol=1e-12
    )
    np.testing.assert_allclose(
        streamed_regressor.target_scaler_.scale, in_memory.target_scaler_.scale, rtol=1e-12
    )
    assert streamed_regressor.encoded_feature_names_ == in_memory.encoded_feature_names_


def test_validation_is_last_fragments(streamed_regressor):
    # 10 % of 2000 rows is 200, so the last row group of 250 rows is held out.
    assert streamed_regressor.training_["n_validation"] == ROW_GROUP
    assert streamed_regressor.training_["n_train"] == N_ROWS - ROW_GROUP
    assert all(entry["val_loss"] is not None for entry in streamed_regressor.history_)


def test_single_fragment_has_no_validation(data, caplog):
    with caplog.at_level(logging.WARNING, logger="lipmono.estimators.base"):
        model = MonotonicRegressor(**QUICK).fit_stream(data["csv"], target="y", features=["a"])

    assert model.training_["n_validation"] == 0
    assert all(entry["val_loss"] is None for entry in model.history_)
    assert "no validation set" in caplog.text


def _sweep(frame: pd.DataFrame, column: str, n_rows: int = 20, n_points: int = 41):
    rows = frame[FEATURES].iloc[:n_rows]
    grid = np.linspace(frame[column].min() - 1, frame[column].max() + 1, n_points)
    sweep = rows.loc[rows.index.repeat(n_points)].reset_index(drop=True)
    sweep[column] = np.tile(grid, n_rows)
    return sweep, (n_rows, n_points)


def test_streamed_regressor_is_monotonic(streamed_regressor, data):
    for column, sign in (("a", 1), ("b", -1)):
        sweep, shape = _sweep(data["frame"], column)
        steps = np.diff(streamed_regressor.predict(sweep).reshape(shape), axis=1)
        assert (sign * steps >= 0).all(), column


def test_streamed_classifier_matches_classes_and_is_monotonic(data):
    frame = data["frame"]
    model = MonotonicClassifier({"a": 1}, **QUICK).fit_stream(
        data["folder"], target="label", features=FEATURES
    )
    in_memory = MonotonicClassifier({"a": 1}, **QUICK).fit(frame[FEATURES], frame["label"])

    np.testing.assert_array_equal(model.classes_, in_memory.classes_)
    sweep, shape = _sweep(frame, "a")
    proba = model.predict_proba(sweep)[:, 1].reshape(shape)
    assert (np.diff(proba, axis=1) >= 0).all()


def test_streamed_multiclass_from_integer_target(data):
    model = MonotonicClassifier(**QUICK).fit_stream(
        data["folder"], target="grade", features=["a", "b"]
    )

    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    assert model.classes_.dtype.kind == "i"
    assert model.predict_proba(data["frame"][["a", "b"]]).shape == (N_ROWS, 3)


def test_fit_stream_rejects_bad_input(data, tmp_path):
    folder = data["folder"]
    with pytest.raises(DataError, match=r"column\(s\) \['missing'\] not found"):
        MonotonicRegressor(**QUICK).fit_stream(folder, target="missing")
    with pytest.raises(DataError, match="target 'y' is also listed in features"):
        MonotonicRegressor(**QUICK).fit_stream(folder, target="y", features=["a", "y"])
    with pytest.raises(ConstraintError, match="column 'c' is categorical"):
        MonotonicRegressor({"c": 1}, **QUICK).fit_stream(folder, target="y", features=FEATURES)
    with pytest.raises(ConstraintError, match="binary target"):
        MonotonicClassifier({"a": 1}, **QUICK).fit_stream(
            folder, target="grade", features=["a"]
        )

    one_class = tmp_path / "one_class.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "label": ["x", "x", "x"]}), one_class)
    with pytest.raises(DataError, match="only 1 class"):
        MonotonicClassifier(**QUICK).fit_stream(one_class, target="label")

    missing = tmp_path / "missing.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "label": ["x", None, "y"]}), missing)
    with pytest.raises(DataError, match="'label' has a missing value at row 1"):
        MonotonicClassifier(**QUICK).fit_stream(missing, target="label")


def _train_argv(data, out: Path, *extra: str) -> list[str]:
    return [
        "train", str(data["folder"]), "--stream", "--target", "label", "--increasing", "a",
        "--decreasing", "b", *CLI_QUICK, "--out", str(out), *extra,
    ]


def test_cli_stream_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    assert main(_train_argv(data, out)) == 0
    printed = capsys.readouterr().out
    assert f"task: classification; {N_ROWS} rows, 5 feature columns" in printed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.safetensors"]

    assert main(["predict", str(out), str(data["csv"])]) == 0
    predictions = capsys.readouterr().out.splitlines()
    assert predictions[0] == "prediction,probability"
    assert len(predictions) == N_ROWS + 1
    assert main(["evaluate", str(out), str(data["csv"])]) == 0
    assert "accuracy" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    assert "c: categorical (3 levels, one-hot)" in capsys.readouterr().out


def test_cli_stream_infers_regression(data, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    argv = ["train", str(data["csv"]), "--stream", "--target", "y", *CLI_QUICK, "--out", str(out)]
    assert main(argv) == 0
    assert "task: regression" in capsys.readouterr().out
    assert isinstance(lipmono.load(out), MonotonicRegressor)


def test_cli_rejects_bad_combinations(data, tmp_path, capsys):
    text = tmp_path / "table.txt"
    text.write_text("a,b\n1,2\n")
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("a,b\n1,2\n")
    out = str(tmp_path / "model.safetensors")
    cases = [
        (["train", str(text), "--stream", "--target", "b"], "cannot tell the file format"),
        (["train", str(not_parquet), "--stream", "--target", "b"], "cannot read .* as parquet"),
        (["train", str(data["folder"]), "--target", "y"], "is a folder; .* pass --stream"),
        (
            ["train", str(data["csv"]), "--target", "y", "--checkpoint-every", "0"],
            "--checkpoint-every must be at least 1 batch, got 0",
        ),
        (
            ["train", str(data["folder"]), "--stream", "--target", "y", "--increasing", "zz"],
            "constrained column.*'zz' not found",
        ),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", out]) == 2, argv
        assert re.search(message, capsys.readouterr().err), message
    assert not (tmp_path / "model.safetensors").exists()


def _interrupt_after(monkeypatch, n_writes: int) -> list[int]:
    """Record the data position of every checkpoint write; interrupt after ``n_writes``."""
    positions: list[int] = []
    write = training._write_checkpoint

    def recording_write(path, module, optimizer, state, fingerprint):
        write(path, module, optimizer, state, fingerprint)
        positions.append(state.batch)
        if len(positions) == n_writes:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "_write_checkpoint", recording_write)
    return positions


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "in_memory"])
def test_checkpoint_every_resumes_mid_epoch(
    data, tmp_path, monkeypatch, caplog, capsys, stream
):
    source = data["folder"] if stream else data["csv"]
    argv = [
        "train", str(source), "--target", "label", "--increasing", "a", *CLI_QUICK,
        "--checkpoint-every", "5", *(["--stream"] if stream else []),
    ]
    whole = tmp_path / "whole.safetensors"
    assert main([*argv, "--out", str(whole)]) == 0

    out = tmp_path / "resumed.safetensors"
    positions = _interrupt_after(monkeypatch, 3)
    assert main([*argv, "--out", str(out)]) == 130
    assert positions == [5, 10, 15]
    assert Path(f"{out}.ckpt").exists()
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="lipmono.training"):
        assert main([*argv, "--out", str(out), "--resume"]) == 0
    assert "at epoch 0, batch 15" in caplog.text
    capsys.readouterr()

    resumed_tensors, resumed = read_container(out)
    whole_tensors, uninterrupted = read_container(whole)
    assert resumed_tensors.keys() == whole_tensors.keys()
    for name, value in whole_tensors.items():
        assert np.array_equal(resumed_tensors[name].numpy(), value.numpy()), name
    assert [e["train_loss"] for e in resumed["history"]] == [
        e["train_loss"] for e in uninterrupted["history"]
    ]
    assert not Path(f"{out}.ckpt").exists()


@pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch build has no torch.distributed"
)
def test_cli_stream_under_torchrun(data, tmp_path):
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    for name in distributed.LAUNCHER_VARIABLES:
        environment.pop(name, None)
    out = tmp_path / "model.safetensors"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "lipmono", *_train_argv(data, out, "--verbose", "--checkpoint-every", "3"),
    ]
    result = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-4000:]

    lines = DIGEST_LINE.findall(result.stderr)
    assert sorted(rank for rank, _, _ in lines) == ["0", "1"]
    assert len({digest for _, _, digest in lines}) == 1
    assert result.stdout.count("model written to") == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.safetensors"]
    model = lipmono.load(out)
    assert model.predict(data["frame"].drop(columns=["label"])).shape == (N_ROWS,)
