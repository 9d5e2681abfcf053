"""Tests of the trigger example's measurements, on small simulated samples.

The full example takes minutes, so these tests exercise its pieces: exact
cases for the statistics, and a briefly trained monotonic network for the
displacement scan.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import lipmono
from lipmono.datasets import make_trigger_candidates

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trigger"
pytest.importorskip("sklearn")


def _load_example_module(name):
    # Loaded by path under a prefixed name, so that other examples' modules with
    # the same file name cannot shadow these.
    spec = importlib.util.spec_from_file_location(f"trigger_example_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


inputs = _load_example_module("inputs")
studies = _load_example_module("studies")


def test_threshold_keeps_requested_fraction():
    scores = np.arange(10_000, dtype=np.float64)
    threshold = studies.threshold_for_retention(scores, 0.01)
    assert np.mean(scores > threshold) == pytest.approx(0.01, abs=1e-4)


def test_binomial_efficiency_exact():
    efficiency, error = studies.binomial_efficiency(np.array([True, False, True, True]))
    assert efficiency == 0.75
    assert error == pytest.approx(np.sqrt(0.75 * 0.25 / 4))


def test_binomial_efficiency_edges():
    efficiency, error = studies.binomial_efficiency(np.ones(20, dtype=bool))
    assert efficiency == 1.0
    assert error == pytest.approx(1 / 20)
    efficiency, error = studies.binomial_efficiency(np.zeros(0, dtype=bool))
    assert np.isnan(efficiency)
    assert np.isnan(error)


def test_decay_time_efficiency_by_bin():
    scores = np.array([0.0, 2.0, 2.0, 0.0, 2.0])
    times = np.array([0.1, 0.2, 1.5, 1.6, 1.7])
    efficiency, _ = studies.decay_time_efficiency(scores, times, 1.0, np.array([0.0, 1.0, 2.0]))
    assert efficiency[0] == 0.5
    assert efficiency[1] == pytest.approx(2 / 3)


def test_score_drops_counts_falls():
    scan = np.array(
        [
            [0.0, 1.0, 2.0, 3.0],
            [0.0, 1.0, 0.5, 2.0],
            [0.0, 0.0, 0.0, 0.0],
            [3.0, 2.0, 1.0, 0.0],
        ]
    )
    summary = studies.score_drops(scan)
    assert summary["fraction_dropping"] == 0.5
    assert summary["max_drop"] == 3.0
    assert summary["median_drop_when_dropping"] == pytest.approx(1.75)


def test_score_drops_ignores_rounding():
    scan = np.array([[0.0, 1.0, 1.0 - studies.DROP_TOLERANCE / 2]])
    assert studies.score_drops(scan)["fraction_dropping"] == 0.0


def test_model_inputs_keep_order():
    frame = make_trigger_candidates(2000, seed=4)
    table = inputs.model_inputs(frame)
    assert list(table.columns) == inputs.INPUTS
    assert np.isfinite(table.to_numpy()).all()
    for raw, transformed in [("sum_pt", "log_sum_pt"), ("min_pt", "log_min_pt"),
                             ("vertex_chi2", "log_vertex_chi2"), ("mcorr", "log_mcorr")]:
        order = np.argsort(frame[raw].to_numpy())
        assert (np.diff(table[transformed].to_numpy()[order]) >= 0).all(), raw
    assert set(inputs.MONOTONIC) <= set(inputs.INPUTS)
    assert set(inputs.FOUR_INPUTS) <= set(inputs.INPUTS)


@pytest.fixture(scope="module")
def fitted_monotonic():
    frame = make_trigger_candidates(4000, seed=9)
    table = inputs.model_inputs(frame)
    estimator = lipmono.MonotonicClassifier(
        monotonic_cst=inputs.MONOTONIC, lipschitz=2.0, hidden_layer_sizes=(16, 16),
        max_iter=3, batch_size=256, random_state=0,
    )
    # Small batches run many times faster on one thread than on two busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        estimator.fit(table, frame["label"].to_numpy())
    finally:
        torch.set_num_threads(threads)
    return estimator, table


def test_monotonic_scan_never_drops(fitted_monotonic):
    estimator, table = fitted_monotonic

    def scorer(moved: pd.DataFrame) -> np.ndarray:
        return estimator.decision_function(moved)

    shifts = np.linspace(0.0, 15.0, 16)
    for columns in (["log_min_ip_chi2"], ["log_fd_chi2"], ["log_min_ip_chi2", "log_fd_chi2"]):
        scan = studies.displacement_scan(scorer, table.iloc[:300], columns, shifts)
        assert scan.shape == (300, len(shifts))
        assert studies.score_drops(scan)["fraction_dropping"] == 0.0, columns


def test_scan_detects_a_falling_scorer(fitted_monotonic):
    _, table = fitted_monotonic

    def falling(moved: pd.DataFrame) -> np.ndarray:
        return -moved["log_min_ip_chi2"].to_numpy()

    scan = studies.displacement_scan(falling, table.iloc[:50], ["log_min_ip_chi2"],
                                     np.array([0.0, 1.0]))
    assert studies.score_drops(scan)["fraction_dropping"] == 1.0


def test_ip_chi2_scaling_moves_monotonic_acceptance(fitted_monotonic):
    estimator, table = fitted_monotonic
    labels = np.zeros(len(table), dtype=int)
    labels[: len(table) // 5] = 1
    scores = estimator.decision_function(table)
    threshold = studies.threshold_for_retention(scores[labels == 0], 0.1)
    rows = studies.ip_chi2_stability(
        estimator.decision_function, table, labels, threshold, (0.9, 1.0, 1.1), (), seed=0
    )
    ratios = [row["background_ratio"] for row in rows]
    assert ratios[1] == 1.0
    # A monotonic score can only accept more when every IP chi2 grows.
    assert ratios[0] <= 1.0 <= ratios[2]
