"""The audit of a lipmono MonotonicClassifier on COMPAS: checks, radii, report and CLI."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import lipmono
from lipmono.audit import audit, write_report
from lipmono.cli import main
from lipmono.datasets import load_auto_mpg, load_compas

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "compas").is_dir(), reason=f"COMPAS data not found in {DATA_DIR}"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The network is small: extra threads only add synchronisation overhead.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def compas():
    return load_compas(DATA_DIR)


@pytest.fixture(scope="module")
def model(compas, one_thread):
    # A short fit: the guarantees under test hold for any weights.
    return lipmono.MonotonicClassifier(
        compas.monotonic_cst, hidden_layer_sizes=(16, 16), max_iter=4, learning_rate=2e-2,
        early_stopping=False, random_state=0,
    ).fit(compas.X_train.iloc[:1500], compas.y_train.iloc[:1500])


@pytest.fixture(scope="module")
def rows(compas):
    return compas.X_test.iloc[:400].reset_index(drop=True)


@pytest.fixture(scope="module")
def result(model, rows, compas):
    return audit(model, rows, compas.y_test.iloc[:400], n_pairs=1000, n_anchors=100)


def test_monotonic_classifier_passes(result):
    m = result.monotonicity
    assert result.is_lipmono
    assert m.guaranteed
    assert m.passed
    assert m.pairs.n_violations == 0
    assert m.sweeps.n_violations == 0
    assert m.pairs.n_checks == 1000
    assert set(m.constraints) == {
        "priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count"
    }
    assert result.passed
    assert "monotonic by construction" in result.verdict[0]


def test_certificate_tight_and_valid(result, model):
    c = result.certificate
    assert c.lipschitz_scaled == pytest.approx(model.certificate_["lipschitz_scaled"])
    assert c.lipschitz_original == pytest.approx(model.certificate_["lipschitz_original"])
    assert 0 < c.empirical_lower_bound <= c.lipschitz_scaled
    assert 0 < c.tightness <= 1
    for name, slope in c.empirical_per_feature.items():
        assert slope <= c.per_feature[name]
    assert c.norm_pair == "l1->linf"
    assert c.input_norm == "l1"


def test_radius_matches_logit(result, model, rows):
    r = result.radius
    logit = model.decision_function(rows)
    L = result.certificate.output_scale * result.certificate.lipschitz_scaled
    np.testing.assert_allclose(r.radius_scaled, np.abs(logit) / L, rtol=1e-5)
    np.testing.assert_allclose(
        r.radius_original, np.abs(logit) / result.certificate.lipschitz_original, rtol=1e-5
    )
    assert r.quantiles_scaled["q00"] <= r.quantiles_scaled["q50"] <= r.quantiles_scaled["q100"]
    assert r.fraction_above_scaled["0.01"] >= r.fraction_above_scaled["1"]


def _l1_attack(module, x, budget, n_steps=8):
    """Spend an l1 budget per row in steps, each on the input with the largest |gradient|,
    in the direction that shrinks |logit|."""
    sign = torch.sign(module(x).reshape(-1)).detach()
    rows = torch.arange(x.shape[0])
    z = x.clone()
    for _ in range(n_steps):
        z.requires_grad_(True)
        (grad,) = torch.autograd.grad(module(z).sum(), z)
        column = grad.abs().argmax(dim=1)
        direction = -sign * torch.sign(grad[rows, column])
        z = z.detach()
        z[rows, column] += budget / n_steps * direction
    return z


def test_attack_inside_radius_keeps_predictions(result, model, rows):
    # Attack in the original units of the encoded features through the public pipeline:
    # for COMPAS the encoded features are the table's columns.
    assert model.encoded_feature_names_ == list(rows.columns)
    pipeline = model.to_torch().double().requires_grad_(False)
    x = torch.as_tensor(model.encode(rows), dtype=torch.float64)
    logit = pipeline(x).reshape(-1)
    radius = torch.as_tensor(result.radius.radius_original)
    L = result.certificate.lipschitz_original
    flips_outside = 0
    for fraction in (0.999, 20.0):
        z = _l1_attack(pipeline, x, radius * fraction)
        moved = (z - x).abs().sum(dim=1)
        after = pipeline(z).reshape(-1)
        assert torch.all(moved <= radius * fraction * (1 + 1e-9))
        assert torch.all(after.abs() >= logit.abs() - L * moved - 1e-9)
        attacked = pd.DataFrame(z.numpy(), columns=rows.columns)
        changed = model.predict(attacked) != model.predict(rows)
        if fraction < 1:
            assert not changed.any()
        else:
            flips_outside = int(changed.sum())
    # The attack is strong enough to flip decisions once the budget exceeds the radius,
    # so its failure inside the radius is evidence, not a weak attack.
    assert flips_outside > 0


def test_requested_constraint_not_guaranteed(model, rows):
    result = audit(model, rows, monotonic_cst={"age": 1}, n_pairs=300, n_anchors=50)
    assert not result.monotonicity.guaranteed
    assert result.monotonicity.constraints == {"age": 1}


def test_broken_model_flagged_loudly(model, rows, caplog):
    broken = copy.deepcopy(model)
    # Flip the sign of the monotonic residual while the estimator still declares +1.
    broken.model_.monotonic_cst.mul_(-1)
    with caplog.at_level(logging.ERROR, logger="lipmono.audit.probes"):
        result = audit(broken, rows, n_pairs=300, n_anchors=50)
    assert result.monotonicity.guaranteed
    assert not result.monotonicity.passed
    assert not result.passed
    assert result.verdict[0].startswith("Monotonicity: FAILURE")
    assert "violated its constraints" in caplog.text


def test_tampered_certificate_fails(model, rows):
    tampered = copy.deepcopy(model)
    tampered.certificate_["lipschitz_scaled"] *= 0.5
    result = audit(tampered, rows, n_pairs=100, n_anchors=20)
    assert result.certificate is None
    assert not result.passed
    assert any(
        line.startswith("Certificate: FAILURE") and "lipschitz_scaled" in line
        for line in result.verdict
    )


def test_report_rejects_file_as_folder(result, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        write_report(result, target)


def test_cli_audit_writes_report(model, compas, tmp_path, capsys):
    model_path = tmp_path / "compas.safetensors"
    model.save(model_path)
    data = compas.X_test.iloc[:300].assign(ground_truth=compas.y_test.iloc[:300].to_numpy())
    data_path = tmp_path / "test.csv"
    data.to_csv(data_path, index=False)
    out = tmp_path / "audit"

    status = main([
        "audit", str(model_path), str(data_path), "--out", str(out), "--target", "ground_truth",
        "--pairs", "300", "--anchors", "40",
    ])
    printed = capsys.readouterr().out

    assert status == 0
    assert "Overall: PASS." in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "audit.json", "dependence.png", "radius.png", "report.html", "report.md", "training.png"
    ]
    for image in ("dependence.png", "radius.png", "training.png"):
        assert (out / image).read_bytes()[:8] == PNG_SIGNATURE

    document = json.loads((out / "audit.json").read_text())
    assert set(document["performance"]) == {"accuracy", "roc_auc"}
    assert document["monotonicity"]["pairs"]["n_violations"] == 0
    assert document["certificate"]["norm_pair"] == "l1->linf"
    assert "radius_scaled" not in document["radius"]

    text = (out / "report.md").read_text()
    headings = ("## Verdict", "## Monotonicity", "## Lipschitz certificate",
                "## Certified robustness radius", "## Training", "## Predictive performance")
    for heading in headings:
        assert heading in text
    page = (out / "report.html").read_text()
    for image in ("dependence.png", "radius.png", "training.png"):
        assert f"]({image})" in text
        assert f'<img src="{image}"' in page


def test_cli_audit_unknown_target(model, compas, tmp_path, capsys):
    model_path = tmp_path / "compas.safetensors"
    model.save(model_path)
    data_path = tmp_path / "test.csv"
    compas.X_test.iloc[:50].to_csv(data_path, index=False)
    status = main(["audit", str(model_path), str(data_path), "--target", "label"])
    assert status == 2
    assert "target column 'label' not found" in capsys.readouterr().err


def test_cli_audit_rejects_zero_pairs(tmp_path, capsys):
    status = main(["audit", "model.safetensors", "data.csv", "--pairs", "0"])
    assert status == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_multiclass_model_skips_certificate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    model = lipmono.MonotonicClassifier(
        hidden_layer_sizes=(8, 8), max_iter=1, early_stopping=False, random_state=0
    ).fit(X, y)
    result = audit(model, X)
    assert result.certificate is None
    assert result.radius is None
    assert result.passed
    assert any("3 outputs" in line for line in result.verdict)


def test_regressor_decreasing_constraints_pass():
    split = load_auto_mpg(DATA_DIR)
    model = lipmono.MonotonicRegressor(
        split.monotonic_cst, hidden_layer_sizes=(8, 8), max_iter=2, early_stopping=False,
        random_state=0,
    ).fit(split.X_train, split.y_train)
    result = audit(model, split.X_test, split.y_test, n_pairs=300, n_anchors=40)
    m = result.monotonicity
    assert set(m.constraints.values()) == {-1}
    assert m.guaranteed
    assert m.passed
    assert result.radius is None
    c = result.certificate
    assert c.output_scale != 1.0
    bound = c.output_scale * c.lipschitz_scaled
    assert f"at most {bound:.4g} x d" in result.verdict[1]
    assert set(result.performance) == {"rmse", "mae", "r2"}
