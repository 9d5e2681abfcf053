"""`lipmono export` and the exports of a fitted estimator and its model file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lipmono
from lipmono import numpy_inference
from lipmono.cli import main
from lipmono.datasets import load_compas
from lipmono.export import export_numpy, fold
from lipmono.export.cbuild import CPredictor, compile_shared, find_c_compiler
from lipmono.export.tolerance import rounding_tolerance

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A classifier fitted briefly on COMPAS rows, saved to a model file."""
    if not (DATA_DIR / "compas").is_dir():
        pytest.skip(f"COMPAS data not found under {DATA_DIR}")
    compas = load_compas(DATA_DIR)
    estimator = lipmono.MonotonicClassifier(
        compas.monotonic_cst, hidden_layer_sizes=(16, 16), max_iter=1, early_stopping=False,
        batch_size=512, random_state=0,
    ).fit(compas.X_train[:1000], compas.y_train[:1000])
    path = tmp_path_factory.mktemp("model") / "compas.safetensors"
    estimator.save(path)
    X = estimator.encode(compas.X_test)
    with torch.no_grad():
        expected = estimator.to_torch()(torch.from_numpy(X)).numpy()
    return estimator, path, X.astype(np.float32), expected, compas.X_test


def _tolerance(estimator, X):
    # Exports run in float32 from the float64 model: the folded weights round once.
    folded = fold(estimator.to_torch(), torch.float32)
    return rounding_tolerance(folded, torch.from_numpy(X)).numpy()


def test_cli_onnx_matches_estimator(fitted, tmp_path, capsys):
    estimator, path, X, expected, frame = fitted
    out = tmp_path / "compas.onnx"
    assert main(["export", str(path), "--format", "onnx", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": X})
    assert np.all(np.abs(got - expected) <= _tolerance(estimator, X))
    probability = 1 / (1 + np.exp(-got[:, 0].astype(np.float64)))
    np.testing.assert_allclose(probability, estimator.predict_proba(frame)[:, 1], atol=1e-4)


def test_cli_onnx_metadata_from_estimator(fitted, tmp_path):
    estimator, path, _, _, _ = fitted
    out = tmp_path / "compas.onnx"
    main(["export", str(path), "--format", "onnx", "--out", str(out), "--dtype", "float64"])
    proto = onnx.load(str(out))
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["lipmono.feature_names"] == list(estimator.encoded_feature_names_)
    assert props["lipmono.monotonic_cst"] == estimator.encoded_monotonic_cst_.tolist()
    assert props["lipmono.certificate"] == json.loads(json.dumps(estimator.certificate_))
    assert props["lipmono.output"] == "logit"
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


@pytest.mark.skipif(find_c_compiler() is None, reason="no C compiler (cc, gcc, clang)")
def test_cli_c_matches_estimator(fitted, tmp_path, capsys):
    estimator, path, X, expected, _ = fitted
    assert main(["export", str(path), "--format", "c", "--out", str(tmp_path / "compas.c")]) == 0
    assert (tmp_path / "compas.h").read_text().count("#define COMPAS_N_FEATURES 13") == 1
    library = compile_shared(tmp_path / "compas.c", tmp_path / "libcompas.so")
    got = CPredictor(library, "compas", 13, 1).predict(X)
    assert np.all(np.abs(got - expected) <= _tolerance(estimator, X))


def test_cli_numpy_matches_estimator(fitted, tmp_path):
    estimator, path, X, expected, _ = fitted
    out = tmp_path / "compas.npz"
    assert main(["export", str(path), "--format", "numpy", "--out", str(out)]) == 0
    loaded = numpy_inference.load(out)
    assert loaded.metadata["certificate"]["lipschitz_original"] == pytest.approx(
        estimator.certificate_["lipschitz_original"]
    )
    assert np.all(np.abs(loaded.predict(X) - expected) <= _tolerance(estimator, X))


def test_export_from_model_path(fitted, tmp_path):
    estimator, path, X, expected, _ = fitted
    loaded = numpy_inference.load(export_numpy(str(path), tmp_path / "m.npz"))
    assert loaded.feature_names == list(estimator.encoded_feature_names_)


def test_fold_estimator_and_model_path(fitted):
    estimator, path, X, _, _ = fitted
    x = torch.from_numpy(X).double()
    with torch.no_grad():
        expected = estimator.to_torch()(x).numpy()
    for source in (estimator, path):
        folded = fold(source)
        assert folded.dtype == torch.float64
        with torch.no_grad():
            got = folded(x).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_cli_export_missing_model(tmp_path, capsys):
    code = main(["export", str(tmp_path / "absent.safetensors"), "--format", "onnx",
                 "--out", str(tmp_path / "m.onnx")])
    assert code == 2
    assert "absent.safetensors" in capsys.readouterr().err


def test_cli_c_rejects_bad_out(fitted, tmp_path, capsys):
    _, path, _, _, _ = fitted
    code = main(["export", str(path), "--format", "c", "--out", str(tmp_path / "nowhere")])
    assert code == 2
    assert "neither a .c file nor an existing folder" in capsys.readouterr().err
    code = main(["export", str(path), "--format", "c", "--out", str(tmp_path / "9lives.c")])
    assert code == 2
    assert "prefix='9lives' is not a valid C identifier" in capsys.readouterr().err
