"""Tests of the accuracy benchmark harness: probes, page section and a quick run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.accuracy.probes import make_probe_pairs, violation_rate  # noqa: E402
from benchmarks.accuracy.protocols import HONEST_MODELS, MODELS  # noqa: E402
from benchmarks.accuracy.report import END, START, replace_section  # noqa: E402

RUN_DATASETS = ("auto_mpg", "blogfeedback", "compas", "heart_disease")


def test_probe_pairs_move_one_feature():
    X = np.random.default_rng(0).normal(size=(50, 4))
    low, high = make_probe_pairs(X, [1, 0, -1, 0], 1000, seed=0)
    moved = low != high
    assert (moved.sum(axis=1) == 1).all()
    assert not moved[:, [1, 3]].any()
    assert (high[:, 0] >= low[:, 0]).all()
    assert (high[:, 2] <= low[:, 2]).all()
    assert moved[:, 0].any()
    assert moved[:, 2].any()


def test_violation_rate_exact_cases():
    X = np.random.default_rng(1).uniform(size=(30, 3))
    low, high = make_probe_pairs(X, [1, -1, 0], 2000, seed=1)
    monotone = lambda Z: Z[:, 0] - 2 * Z[:, 1] + np.sin(5 * Z[:, 2])  # noqa: E731
    assert violation_rate(monotone, low, high) == 0.0
    assert violation_rate(lambda Z: -monotone(Z), low, high) == 1.0
    # Wrong only in the decreasing feature: about half of the pairs move it.
    wrong_second = lambda Z: Z[:, 0] + Z[:, 1]  # noqa: E731
    rate = violation_rate(wrong_second, low, high)
    assert rate == pytest.approx(float(np.mean(low[:, 1] != high[:, 1])))


def test_violation_rate_tolerates_rounding():
    X = np.ones((5, 2))
    low, high = make_probe_pairs(X, [1, 0], 100, seed=2)
    flat_with_noise = lambda Z: 1e3 * (1 - 1e-9 * (Z[:, 0] - 1))  # noqa: E731
    assert violation_rate(flat_with_noise, low, high) == 0.0
    assert violation_rate(flat_with_noise, low, high, rtol=0.0) == 1.0


def test_probe_pairs_need_constraint():
    with pytest.raises(ValueError, match="constrains no feature"):
        make_probe_pairs(np.zeros((3, 2)), [0, 0], 10, seed=0)


def test_replace_section_keeps_rest(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\n{START}\nold\n{END}\n\n<!-- other:start -->\nx\n", "utf-8")
    replace_section(page, "new text")
    text = page.read_text("utf-8")
    assert f"{START}\nnew text\n{END}" in text
    assert "old" not in text
    assert text.startswith("# Title\n")
    assert text.endswith("<!-- other:start -->\nx\n")


def test_replace_section_needs_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# no markers\n", "utf-8")
    with pytest.raises(ValueError, match="lacks the markers <!-- accuracy:start -->"):
        replace_section(page, "text")
    assert page.read_text("utf-8") == "# no markers\n"


def test_run_rejects_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.accuracy.run", "--quick", "--data-dir", str(missing),
         "--results", str(tmp_path / "out.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert f"data folder not found: {missing}" in result.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.skipif(not (DATA_DIR / "compas").is_dir(), reason=f"no benchmark data in {DATA_DIR}")
def test_quick_run_covers_everything(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\n{START}\nNot yet measured.\n{END}\n", "utf-8")
    results_path = tmp_path / "accuracy_quick.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.accuracy.run", "--quick", "--data-dir", str(DATA_DIR),
         "--results", str(results_path), "--docs", str(page), "--n-probe-pairs", "20000"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(results_path.read_text("utf-8"))

    assert results["meta"]["mode"] == "quick"
    assert results["datasets"]["loan_defaulter"]["status"] == "not run"
    for name in RUN_DATASETS:
        entry = results["datasets"][name]
        assert entry["status"] == "run", name
        for protocol, models in (("literature", MODELS), ("honest", HONEST_MODELS)):
            rows = {row["model"]: row for row in entry[protocol]["rows"]}
            assert set(rows) == set(models), (name, protocol)
            for model, row in rows.items():
                assert math.isfinite(row["mean"]), (name, protocol, model)
                assert row["size"] > 0, (name, protocol, model)
                assert row["fit_seconds_mean"] > 0, (name, protocol, model)
            assert rows["lipmono"]["violation_rate_max"] == 0.0, (name, protocol)
        estimator = next(r for r in entry["honest"]["rows"] if r["model"] == "lipmono_estimator")
        assert estimator["violation_rate_max"] == 0.0, name

    text = page.read_text("utf-8")
    assert "Not yet measured." not in text
    assert "(quick mode)" in text
    for name in (*RUN_DATASETS, "loan_defaulter", "ChestXRay"):
        assert f"### {name}" in text
