"""The lipmono command: every subcommand, and a clean error for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import lipmono
from lipmono.cli import main
from lipmono.serialization import FORMAT_VERSION, read_container, write_container

QUICK = ["--hidden", "8,8", "--epochs", "3"]


@pytest.fixture
def tables(tmp_path):
    rng = np.random.default_rng(0)
    n = 150
    frame = pd.DataFrame(
        {
            "dose": rng.normal(5.0, 2.0, n),
            "age": rng.uniform(20, 80, n).round(),
            "city": rng.choice(["paris", "rome", "oslo"], n),
        }
    )
    frame["response"] = 0.5 * frame["dose"] - 0.01 * frame["age"] + rng.normal(0, 0.1, n)
    frame["label"] = np.where(frame["response"] > 2, "yes", "no")
    paths = {
        "regression": tmp_path / "regression.csv",
        "classification": tmp_path / "classification.csv",
        "features": tmp_path / "features.csv",
    }
    frame.drop(columns=["label"]).to_csv(paths["regression"], index=False)
    frame.drop(columns=["response"]).to_csv(paths["classification"], index=False)
    frame.drop(columns=["response", "label"]).to_csv(paths["features"], index=False)
    return paths


def run_error(capsys, argv, match):
    """Run ``argv`` expecting exit status 2 and ``error: <match>`` on stderr, no traceback."""
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("error: ")
    assert "Traceback" not in captured.err
    assert match in captured.err, captured.err
    return captured


def train_model(tables, tmp_path, task="classification", extra=()):
    out = tmp_path / f"{task}.safetensors"
    target = "label" if task == "classification" else "response"
    argv = ["train", str(tables[task]), "--target", target, "--increasing", "dose", *QUICK]
    assert main([*argv, "--out", str(out), *extra]) == 0
    return out


def test_train_predict_evaluate_info_classification(tables, tmp_path, capsys):
    model_path = train_model(tables, tmp_path)
    output = capsys.readouterr().out
    assert "task: classification" in output
    assert "certified Lipschitz bound" in output
    assert not model_path.with_name(model_path.name + ".ckpt").exists()

    predictions = tmp_path / "predictions.csv"
    assert (
        main(["predict", str(model_path), str(tables["features"]), "--out", str(predictions)]) == 0
    )
    frame = pd.read_csv(predictions)
    assert list(frame.columns) == ["prediction", "probability"]
    model = lipmono.load(model_path)
    features = pd.read_csv(tables["features"])
    assert np.array_equal(frame["prediction"].to_numpy(), model.predict(features))
    assert np.allclose(frame["probability"], model.predict_proba(features)[:, 1], rtol=1e-15)

    assert main(["evaluate", str(model_path), str(tables["classification"])]) == 0
    output = capsys.readouterr().out
    assert "accuracy:" in output
    assert "roc_auc:" in output
    assert "log_loss:" in output

    assert main(["info", str(model_path)]) == 0
    output = capsys.readouterr().out
    assert "MonotonicClassifier (target: label)" in output
    assert "city: categorical (3 levels, one-hot)" in output
    assert "increasing" in output


def test_train_regression_with_repeated_constraints(tables, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    argv = [
        "train",
        str(tables["regression"]),
        "--target",
        "response",
        "--increasing",
        "dose",
        "--decreasing",
        "age",
        *QUICK,
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "task: regression" in capsys.readouterr().out
    model = lipmono.load(out)
    assert model.certificate_["monotonic"] == {"dose": "increasing", "age": "decreasing"}
    assert main(["evaluate", str(out), str(tables["regression"]), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"rmse", "mae", "r2"}


def test_comma_separated_constraints(tables, tmp_path):
    out = tmp_path / "model.safetensors"
    argv = ["train", str(tables["regression"]), "--target", "response", "--increasing", "dose,age"]
    assert main([*argv, *QUICK, "--out", str(out)]) == 0
    assert lipmono.load(out).certificate_["monotonic"] == {
        "dose": "increasing",
        "age": "increasing",
    }


def test_multiclass_predicts_one_probability_per_class(tables, tmp_path, capsys):
    frame = pd.read_csv(tables["regression"])
    frame["grade"] = pd.cut(frame["response"], [-np.inf, 1.5, 2.5, np.inf], labels=list("abc"))
    path = tmp_path / "grades.csv"
    frame.drop(columns=["response"]).to_csv(path, index=False)
    out = tmp_path / "model.safetensors"
    argv = ["train", str(path), "--target", "grade", "--task", "classification", *QUICK]
    assert main([*argv, "--out", str(out)]) == 0
    assert main(["predict", str(out), str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-151] == "prediction,probability_a,probability_b,probability_c"
    run_error(capsys, [*argv, "--increasing", "dose"], "monotonic constraints need a binary target")


def test_train_from_parquet(tables, tmp_path):
    parquet = tmp_path / "data.parquet"
    pd.read_csv(tables["classification"]).to_parquet(parquet)
    out = tmp_path / "model.safetensors"
    assert main(["train", str(parquet), "--target", "label", *QUICK, "--out", str(out)]) == 0
    assert list(lipmono.load(out).classes_) == ["no", "yes"]


def test_predict_writes_parquet_by_extension(tables, tmp_path, capsys):
    model_path = train_model(tables, tmp_path)
    out = tmp_path / "predictions.parquet"
    assert main(["predict", str(model_path), str(tables["features"]), "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["prediction", "probability"]
    assert len(frame) == 150
    expected = lipmono.load(model_path).predict(pd.read_csv(tables["features"]))
    assert frame["prediction"].tolist() == expected.tolist()


def test_predict_ignores_target_column(tables, tmp_path, capsys):
    model_path = train_model(tables, tmp_path, task="regression")
    capsys.readouterr()
    assert main(["predict", str(model_path), str(tables["regression"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "prediction"
    assert len(lines) == 151


def test_resume_after_interrupt_matches_uninterrupted(tables, tmp_path, monkeypatch, capsys):
    reference = train_model(tables, tmp_path, extra=["--epochs", "4"])
    from lipmono import training

    write = training._write_checkpoint

    def write_then_interrupt(path, module, optimizer, state, fingerprint):
        write(path, module, optimizer, state, fingerprint)
        if state.epoch == 2:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.safetensors"
    argv = ["train", str(tables["classification"]), "--target", "label", "--increasing", "dose"]
    argv += [*QUICK, "--epochs", "4", "--out", str(out)]
    monkeypatch.setattr(training, "_write_checkpoint", write_then_interrupt)
    assert main(argv) == 130
    assert "interrupted; run the same command with --resume" in capsys.readouterr().err
    assert not out.exists()
    checkpoint = tmp_path / "resumed.safetensors.ckpt"
    assert read_container(checkpoint, "lipmono-checkpoint")[1]["epoch"] == 2

    monkeypatch.setattr(training, "_write_checkpoint", write)
    # Without --resume the interrupted run's checkpoint is kept and the command stops.
    run_error(capsys, argv, "from an interrupted run exists; rerun with --resume")
    assert read_container(checkpoint, "lipmono-checkpoint")[1]["epoch"] == 2
    assert main([*argv, "--resume"]) == 0
    features = pd.read_csv(tables["features"])
    expected = lipmono.load(reference).decision_function(features)
    assert np.array_equal(lipmono.load(out).decision_function(features), expected)
    assert lipmono.load(out).n_iter_ == 4
    assert not checkpoint.exists()


def test_demo_prints_accuracy_and_certificate(tmp_path, capsys):
    out = tmp_path / "compas.safetensors"
    assert main(["demo", "--epochs", "1", "--out", str(out)]) == 0
    output = capsys.readouterr().out
    assert "COMPAS: 4937 training rows, 1235 test rows, 13 features" in output
    assert "test accuracy: 0." in output
    assert "priors_count" in output
    model = lipmono.load(out)
    assert set(model.certificate_["monotonic"]) == {
        "priors_count",
        "juv_fel_count",
        "juv_misd_count",
        "juv_other_count",
    }


def test_bundled_compas_files_unchanged():
    import hashlib

    from lipmono.datasets.bundled import compas_path, load_compas

    expected = {
        "train": "dbf1725e3c3312e8daa21bf885e812c9f66abe975bb900a49e6220f757165120",
        "test": "17f80dcd363a168335b09cfe29db1b095f6014815ac9fdfd7e247408cf63165c",
    }
    for split, digest in expected.items():
        assert hashlib.sha256(compas_path(split).read_bytes()).hexdigest() == digest
    X, y = load_compas("test")
    assert X.shape == (1235, 13)
    assert set(y.unique()) == {0, 1}


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    output = capsys.readouterr().out
    for command in ["train", "predict", "evaluate", "info", "demo"]:
        assert command in output


# ---------------------------------------------------------------- bad input


def test_missing_input_file(tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    run_error(
        capsys,
        ["train", str(tmp_path / "absent.csv"), "--target", "y", "--out", str(out)],
        "input file",
    )
    assert not out.exists()


def test_empty_input_file(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    run_error(capsys, ["train", str(empty), "--target", "y"], "is empty")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,y\n")
    run_error(capsys, ["train", str(header_only), "--target", "y"], "no data rows")


def test_missing_target_column(tables, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    argv = ["train", str(tables["regression"]), "--target", "price", "--out", str(out)]
    run_error(capsys, argv, "target column 'price' not found")
    assert not out.exists()


def test_unknown_constrained_column_lists_columns(tables, tmp_path, capsys):
    argv = ["train", str(tables["regression"]), "--target", "response", "--increasing", "doze"]
    run_error(capsys, argv, "'doze' not found; the feature columns are: dose, age, city")


def test_constrained_categorical_column(tables, capsys):
    argv = ["train", str(tables["regression"]), "--target", "response", "--decreasing", "city"]
    run_error(capsys, argv, "'city' is categorical")


def test_nan_and_inf_in_features(tables, tmp_path, capsys):
    frame = pd.read_csv(tables["regression"])
    frame.loc[[0, 3], "dose"] = np.nan
    frame.loc[5, "age"] = np.inf
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "model.safetensors"
    argv = ["train", str(path), "--target", "response", *QUICK, "--out", str(out)]
    run_error(capsys, argv, "NaN or inf in 2 column(s): 'dose' (2 rows), 'age' (1 rows)")
    assert not out.exists()
    assert not (tmp_path / "model.safetensors.ckpt").exists()


def test_non_numeric_regression_target(tables, capsys):
    argv = ["train", str(tables["classification"]), "--target", "label", "--task", "regression"]
    run_error(capsys, argv, "regression target is not numeric")


def test_single_class_target(tables, tmp_path, capsys):
    frame = pd.read_csv(tables["classification"]).assign(label="yes")
    path = tmp_path / "one.csv"
    frame.to_csv(path, index=False)
    run_error(
        capsys,
        ["train", str(path), "--target", "label", "--task", "classification"],
        "only 1 class",
    )


@pytest.mark.parametrize("stream", [False, True])
def test_constant_target_with_task_auto(tables, tmp_path, capsys, stream):
    frame = pd.read_csv(tables["regression"]).assign(response=1)
    path = tmp_path / "constant.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "model.safetensors"
    argv = ["train", str(path), "--target", "response", *QUICK, "--out", str(out)]
    run_error(
        capsys,
        argv + (["--stream"] if stream else []),
        "the target column 'response' contains only the value 1, so there is nothing to learn",
    )
    assert not out.exists()


def test_single_class_message_shows_plain_value(tables, tmp_path, capsys):
    frame = pd.read_csv(tables["classification"]).assign(label=1)
    path = tmp_path / "one.csv"
    frame.to_csv(path, index=False)
    argv = ["train", str(path), "--target", "label", "--task", "classification"]
    captured = run_error(capsys, argv, "only 1 class (1)")
    assert "np.int64" not in captured.err


def test_warning_prints_without_source_line(tables, tmp_path, capsys):
    model_path = train_model(tables, tmp_path)
    features = pd.read_csv(tables["features"]).assign(city="lima")
    path = tmp_path / "new_level.csv"
    features.to_csv(path, index=False)
    capsys.readouterr()
    assert main(["predict", str(model_path), str(path), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: column 'city' has 1 level(s) not seen at fit time"), err
    assert all(line.startswith("warning: ") for line in err.splitlines()), err
    assert "UserWarning" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "data.csv", "--target", "y", "--epochs", "0"],
        ["train", "data.csv", "--target", "y", "--batch-size", "-3"],
        ["train", "data.csv", "--target", "y", "--epochs", "ten"],
        ["demo", "--epochs", "0"],
    ],
)
def test_epochs_and_batch_size_below_one(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    option, value = argv[-2], argv[-1]
    assert f"argument {option}: invalid value {value!r}; give a whole number >= 1" in err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_invalid_lipschitz(tables, capsys, value):
    argv = ["train", str(tables["regression"]), "--target", "response", f"--lipschitz={value}"]
    run_error(capsys, argv, "lipschitz must be a positive finite number")


def test_hidden_not_divisible_by_group_size(tables, capsys):
    argv = ["train", str(tables["regression"]), "--target", "response", "--hidden", "64,33"]
    run_error(capsys, argv, "hidden_layer_sizes[1]=33 is not divisible by group_size=2")


def test_out_folder_missing(tables, tmp_path, capsys):
    out = tmp_path / "missing" / "model.safetensors"
    argv = ["train", str(tables["regression"]), "--target", "response", "--out", str(out)]
    run_error(capsys, argv, "does not exist")


def test_out_is_existing_folder(tables, tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    argv = ["train", str(tables["regression"]), "--target", "response", *QUICK]
    run_error(capsys, [*argv, "--out", str(folder)], "is a folder; give a model file name")
    model_path = train_model(tables, tmp_path)
    capsys.readouterr()
    predict = ["predict", str(model_path), str(tables["features"]), "--out", str(folder)]
    captured = run_error(capsys, predict, "is a folder; give a file path")
    assert ".tmp" not in captured.err
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("device", "match"),
    [("foo", "device='foo' is not a torch device"), ("cuda", "finds no CUDA device")],
)
def test_invalid_device(tables, capsys, device, match):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    argv = ["train", str(tables["regression"]), "--target", "response", *QUICK]
    run_error(capsys, [*argv, "--device", device], match)


def test_predict_with_missing_or_extra_columns(tables, tmp_path, capsys):
    model_path = train_model(tables, tmp_path)
    features = pd.read_csv(tables["features"])
    out = tmp_path / "predictions.csv"
    missing = tmp_path / "missing.csv"
    features.drop(columns=["age"]).to_csv(missing, index=False)
    run_error(
        capsys,
        ["predict", str(model_path), str(missing), "--out", str(out)],
        "Feature names seen at fit time, yet now missing:\n- age",
    )
    extra = tmp_path / "extra.csv"
    features.assign(weight=1.0).to_csv(extra, index=False)
    run_error(
        capsys,
        ["predict", str(model_path), str(extra), "--out", str(out)],
        "Feature names unseen at fit time:\n- weight",
    )
    assert not out.exists()


def test_evaluate_target_missing_values_or_text(tables, tmp_path, capsys):
    model_path = train_model(tables, tmp_path, task="regression")
    frame = pd.read_csv(tables["regression"])
    frame.loc[[1, 2], "response"] = np.nan
    path = tmp_path / "gaps.csv"
    frame.to_csv(path, index=False)
    run_error(capsys, ["evaluate", str(model_path), str(path)], "'response' has 2 missing values")
    frame["response"] = "high"
    frame.to_csv(path, index=False)
    run_error(capsys, ["evaluate", str(model_path), str(path)], "'response' is not numeric")


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def _edit(path):
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.write_bytes(bytes(data))


def _newer(path):
    tensors, document = read_container(path)
    write_container(path, tensors, {**document, "format_version": FORMAT_VERSION + 1})


def _not_a_model(path):
    path.write_text("prediction\n1.0\n")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (_truncate, "corrupted"),
        (_edit, "checksum of its weights does not match"),
        (_newer, "newer than this lipmono reads"),
        (_not_a_model, "not a lipmono model file"),
    ],
)
def test_damaged_model_file(tables, tmp_path, capsys, damage, match):
    model_path = train_model(tables, tmp_path)
    damage(model_path)
    out = tmp_path / "predictions.csv"
    run_error(
        capsys, ["predict", str(model_path), str(tables["features"]), "--out", str(out)], match
    )
    assert not out.exists()
    run_error(capsys, ["info", str(model_path)], match)


def test_subprocess_error_exit_status(tables, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lipmono",
            "evaluate",
            str(tmp_path / "absent.safetensors"),
            str(tables["classification"]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: model file {str(tmp_path / 'absent.safetensors')!r} not found\n"
