"""ONNX, C99 and NumPy exports of a model trained on COMPAS, checked against torch."""

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lipmono
from lipmono import numpy_inference
from lipmono.audit import check_monotonicity
from lipmono.datasets import load_compas
from lipmono.export import ExportError, export_c, export_numpy, export_onnx, fold, render_c
from lipmono.export.c import c_float
from lipmono.export.cbuild import CPredictor, compile_shared, find_c_compiler
from lipmono.export.tolerance import rounding_tolerance

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
COMPILER = find_c_compiler()
needs_compiler = pytest.mark.skipif(COMPILER is None, reason="no C compiler (cc, gcc, clang)")


@pytest.fixture(scope="module")
def compas():
    if not (DATA_DIR / "compas").is_dir():
        pytest.skip(f"COMPAS data not found under {DATA_DIR}")
    return load_compas(DATA_DIR)


@pytest.fixture(scope="module")
def model(compas):
    """A MonotonicMLP between Standardize and OutputAffine, briefly trained on COMPAS."""
    torch.manual_seed(0)
    X = torch.tensor(compas.X_train.to_numpy(), dtype=torch.float32)
    y = torch.tensor(compas.y_train.to_numpy(), dtype=torch.float32)[:, None]
    core = lipmono.MonotonicMLP(
        X.shape[1], [32, 32], monotonic_cst=compas.monotonic_cst, lipschitz=2.0,
        feature_names=compas.feature_names,
    )
    scale = X.std(dim=0).clamp(min=1e-3).numpy()
    network = nn.Sequential(
        lipmono.Standardize(X.mean(dim=0).numpy(), scale), core, lipmono.OutputAffine([1.5], [-0.2])
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=0.05)
    for _ in range(15):
        optimizer.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(network(X), y).backward()
        optimizer.step()
    return network.eval()


@pytest.fixture(scope="module")
def x_test(compas):
    return compas.X_test.to_numpy(dtype=np.float32)


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "compas.onnx")


def _torch_output(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _tolerance(model, x):
    return rounding_tolerance(fold(model), torch.from_numpy(x)).numpy()


def _audit_monotonicity(predict, model, x, compas):
    """Run the audit's probe pairs and sweeps on ``predict`` over the rows ``x``.

    The sweeps stay within each feature's observed range, so the rounding bound
    at the data rows covers every output the audit compares.
    """
    return check_monotonicity(
        None, x, compas.monotonic_cst,
        response=lambda rows: predict(np.ascontiguousarray(rows, dtype=np.float32)),
        feature_names=compas.feature_names, n_pairs=500, n_anchors=60, n_grid=15,
        tolerance=float(_tolerance(model, x).max()), guaranteed=True,
    )


# ONNX


def test_onnx_matches_torch_on_compas(model, onnx_path, x_test):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = _torch_output(model, x_test)
    for batch in (x_test[:1], x_test):
        (got,) = session.run(None, {"x": batch})
        assert got.shape == (len(batch), 1)
    assert np.all(np.abs(got - expected) <= _tolerance(model, x_test))


def test_onnx_metadata(model, onnx_path, compas):
    proto = onnx.load(str(onnx_path))
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["lipmono.feature_names"] == compas.feature_names
    assert props["lipmono.monotonic_cst"] == compas.monotonic_cst
    assert props["lipmono.lipschitz"] == 2.0
    assert props["lipmono.norm"] == "l1"
    assert props["lipmono.format_version"] == 1
    certificate = props["lipmono.certificate"]
    assert certificate["lipschitz_scaled"] == pytest.approx(lipmono.lipschitz_bound(model[1]))
    assert certificate["lipschitz_original"] > 0
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == len(compas.feature_names)


def test_onnx_monotonic_audit_on_compas(model, onnx_path, x_test, compas):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    result = _audit_monotonicity(
        lambda x: session.run(None, {"x": x})[0], model, x_test, compas
    )
    assert result.sweeps.n_checks > 0
    assert result.pairs.n_checks > 0
    assert result.sweeps.n_violations == 0, result.sweeps.worst
    assert result.pairs.n_violations == 0, result.pairs.worst
    assert result.passed
    # The same audit finds the violations of the negated output, so it can fail.
    flipped = _audit_monotonicity(
        lambda x: -session.run(None, {"x": x})[0], model, x_test, compas
    )
    assert flipped.sweeps.n_violations > 0


def test_onnx_legacy_exporter(model, tmp_path, x_test):
    path = export_onnx(model, tmp_path / "legacy.onnx", dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x_test[:64]})
    assert np.all(np.abs(got - _torch_output(model, x_test[:64])) <= _tolerance(model, x_test[:64]))


def test_onnx_failure_leaves_no_file(tmp_path):
    bad = nn.Sequential(lipmono.LipschitzLinear(3, 4), nn.Tanh(), lipmono.LipschitzLinear(4, 1))
    with pytest.raises(ExportError, match="Tanh"):
        export_onnx(bad, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_onnx_missing_folder(model, tmp_path):
    with pytest.raises(ExportError, match="does not exist; create it first"):
        export_onnx(model, tmp_path / "absent" / "m.onnx")


def test_export_rejects_non_module(tmp_path):
    with pytest.raises(ExportError, match="cannot export an object of type int"):
        export_onnx(3, tmp_path / "m.onnx")


# C99


@pytest.fixture(scope="module")
def c_library(model, tmp_path_factory):
    if COMPILER is None:
        pytest.skip("no C compiler (cc, gcc, clang) to build the C export")
    folder = tmp_path_factory.mktemp("c")
    _, source = export_c(model, folder, prefix="compas")
    library = compile_shared(source, folder / "libcompas.so")
    return library, CPredictor(library, "compas", 13, 1)


def test_c_matches_torch_on_compas(model, c_library, x_test):
    _, predictor = c_library
    got = predictor.predict(x_test)
    assert np.all(np.abs(got - _torch_output(model, x_test)) <= _tolerance(model, x_test))


def test_c_monotonic_audit_on_compas(model, c_library, x_test, compas):
    _, predictor = c_library
    result = _audit_monotonicity(predictor.predict, model, x_test, compas)
    assert result.sweeps.n_checks > 0
    assert result.sweeps.n_violations == 0, result.sweeps.worst
    assert result.pairs.n_violations == 0, result.pairs.worst


def test_c_constants(c_library, compas):
    library = ctypes.CDLL(str(c_library[0]))
    names = (ctypes.c_char_p * 13).in_dll(library, "compas_feature_names")
    assert [name.decode() for name in names] == compas.feature_names
    cst = (ctypes.c_byte * 13).in_dll(library, "compas_monotonic_cst")
    assert list(cst) == compas.monotonic_cst


def test_c_nonfinite_rows_and_null(c_library, x_test):
    _, predictor = c_library
    x = np.ascontiguousarray(x_test[:4])
    x[1, 2] = np.nan
    x[3, 0] = np.inf
    out = np.zeros((4, 1), dtype=np.float32)
    assert predictor.predict_into(x, out) == 2
    assert np.isnan(out[[1, 3]]).all()
    assert np.isfinite(out[[0, 2]]).all()
    function = predictor._predict
    assert function(None, 3, out.ctypes.data) == -1
    assert function(x.ctypes.data, 0, None) == 0
    with pytest.raises(ExportError, match="2 row"):
        predictor.predict(x)


@needs_compiler
@pytest.mark.parametrize("group_size", [1, 4])
def test_c_group_sizes_and_relu(tmp_path, group_size):
    torch.manual_seed(group_size)
    inner = nn.Sequential(
        lipmono.LipschitzLinear(5, 8, norm="l1->linf"), lipmono.GroupSort(group_size),
        lipmono.LipschitzLinear(8, 8, norm="linf->linf"), nn.ReLU(),
        lipmono.LipschitzLinear(8, 2, norm="linf->linf"),
    )
    module = lipmono.MonotonicResidual(inner, [1, -1, 0, 0, 1], lipschitz=1.0).eval()
    _, source = export_c(module, tmp_path, prefix="net")
    predictor = CPredictor(compile_shared(source, tmp_path / "net.so"), "net", 5, 2)
    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    assert np.all(np.abs(predictor.predict(x) - _torch_output(module, x)) <= _tolerance(module, x))


@needs_compiler
def test_c_compiles_as_program(model, tmp_path):
    # The export links into a plain C program through its header alone.
    export_c(model, tmp_path, prefix="compas")
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "compas.h"\n'
        "int main(void) {\n"
        "    float x[COMPAS_N_FEATURES] = {0}; float y[COMPAS_N_OUTPUTS];\n"
        "    int status = compas_predict(x, 1, y);\n"
        '    printf("%s %d %.9g\\n", compas_feature_names[0], status, (double)y[0]);\n'
        "    return status;\n}\n"
    )
    binary = tmp_path / "main"
    subprocess.run(
        [COMPILER, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o",
         str(binary), str(tmp_path / "main.c"), str(tmp_path / "compas.c")],
        check=True, capture_output=True,
    )
    name, status, value = subprocess.run(
        [str(binary)], check=True, capture_output=True, text=True
    ).stdout.split()
    expected = _torch_output(model, np.zeros((1, 13), dtype=np.float32))[0, 0]
    assert (name, status) == ("priors_count", "0")
    assert float(value) == pytest.approx(float(expected), abs=1e-5)


def test_c_rejects_bad_prefix(model):
    with pytest.raises(ExportError, match="prefix='2fast' is not a valid C identifier"):
        render_c(model, prefix="2fast")


def test_c_escapes_feature_names():
    core = lipmono.MonotonicMLP(
        2, [4], monotonic_cst=[1, 0], feature_names=['a"b\\c', "t\u00e9*/?"]
    ).eval()
    header, source = render_c(core, prefix="m")
    assert '"a\\042b\\134c"' in source
    assert '"t\\303\\251*/\\077"' in source
    assert "*/?" not in header


@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_c_float_literal_round_trips(value):
    literal = c_float(value)
    assert literal.endswith("f") and any(ch in literal for ch in ".e")
    assert np.float32(float(literal[:-1])) == np.float32(value)


# NumPy


def test_numpy_matches_torch_on_compas(model, tmp_path, x_test, compas):
    path = export_numpy(model, tmp_path / "compas.npz")
    loaded = numpy_inference.load(path)
    assert loaded.feature_names == compas.feature_names
    assert loaded.metadata["monotonic_cst"] == compas.monotonic_cst
    got = loaded.predict(x_test)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - _torch_output(model, x_test)) <= _tolerance(model, x_test))


def test_numpy_inference_without_torch(model, tmp_path, x_test):
    path = export_numpy(model, tmp_path / "compas.npz")
    np.save(tmp_path / "x.npy", x_test)
    module_file = Path(numpy_inference.__file__)
    script = (
        "import importlib.util, sys\n"
        "import numpy as np\n"
        "sys.modules['torch'] = None\n"
        f"spec = importlib.util.spec_from_file_location('numpy_inference', {str(module_file)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"out = module.load({str(path)!r}).predict(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, out)\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=60)
    got = np.load(tmp_path / "out.npy")
    assert np.all(np.abs(got - _torch_output(model, x_test)) <= _tolerance(model, x_test))


def test_numpy_float64_export(tmp_path):
    module = lipmono.MonotonicMLP(3, [8], monotonic_cst=[1, 0, -1]).double().eval()
    loaded = numpy_inference.load(export_numpy(module, tmp_path / "m.npz", dtype=np.float64))
    x = np.random.default_rng(1).normal(size=(20, 3))
    assert loaded.dtype == np.float64
    np.testing.assert_allclose(loaded.predict(x), _torch_output(module, x), rtol=0, atol=1e-12)


def _rewrite(path, target, change):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    change(arrays)
    np.savez(target, **arrays)
    return target


def test_numpy_rejects_newer_version(model, tmp_path):
    path = export_numpy(model, tmp_path / "m.npz")

    def bump(arrays):
        metadata = json.loads(str(arrays["metadata"]))
        metadata["format_version"] = numpy_inference.FORMAT_VERSION + 1
        arrays["metadata"] = np.array(json.dumps(metadata))

    newer = _rewrite(path, tmp_path / "newer.npz", bump)
    with pytest.raises(numpy_inference.NumpyModelError, match="newer than 1"):
        numpy_inference.load(newer)


def test_numpy_rejects_mismatched_weights(model, tmp_path):
    path = export_numpy(model, tmp_path / "m.npz")

    def shrink(arrays):
        arrays["dense1.weight"] = arrays["dense1.weight"][:, :5]

    bad = _rewrite(path, tmp_path / "bad.npz", shrink)
    with pytest.raises(numpy_inference.NumpyModelError, match="layer 2 has weight"):
        numpy_inference.load(bad)


def test_numpy_rejects_truncated_and_foreign_files(model, tmp_path):
    path = export_numpy(model, tmp_path / "m.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    with pytest.raises(numpy_inference.NumpyModelError, match="truncated"):
        numpy_inference.load(truncated)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, metadata=np.array([{"format": "lipmono-numpy"}], dtype=object))
    with pytest.raises(numpy_inference.NumpyModelError, match="cannot be read"):
        numpy_inference.load(pickled)
    with pytest.raises(numpy_inference.NumpyModelError, match="not found"):
        numpy_inference.load(tmp_path / "absent.npz")


def test_numpy_rejects_bad_input(model, tmp_path, x_test):
    loaded = numpy_inference.load(export_numpy(model, tmp_path / "m.npz"))
    with pytest.raises(numpy_inference.NumpyModelError, match=r"expected \(N, 13\)"):
        loaded.predict(x_test[0])
    x = x_test[:3].copy()
    x[2, 4] = np.nan
    with pytest.raises(numpy_inference.NumpyModelError, match=r"X\[2, 4\] \(age\) is nan"):
        loaded.predict(x)


def test_numpy_export_needs_npz_suffix(model, tmp_path):
    with pytest.raises(ExportError, match="must end in .npz"):
        export_numpy(model, tmp_path / "m.bin")
