"""Tests of the simulated displaced-vertex trigger candidates."""

import numpy as np
import pandas as pd
import pytest

from lipmono.datasets import make_trigger_candidates
from lipmono.datasets.trigger import FEATURES
from lipmono.errors import DataError

N = 20_000


@pytest.fixture(scope="module")
def sample():
    return make_trigger_candidates(N, seed=7)


@pytest.fixture(scope="module")
def signal_only():
    return make_trigger_candidates(
        40_000, seed=11, signal_fraction=0.999, charm_fraction=0.0, fake_fraction=0.0
    )


def test_columns_and_dtypes(sample):
    assert sample.shape == (N, len(FEATURES) + 5)
    assert list(sample.columns[: len(FEATURES)]) == list(FEATURES)
    for name in (*FEATURES, "fd", "decay_time", "true_fd"):
        assert sample[name].dtype == np.float64, name
    assert sample["label"].dtype == np.int64
    assert isinstance(sample["category"].dtype, pd.CategoricalDtype)
    assert list(sample["category"].cat.categories) == ["b", "charm", "prompt", "fake"]


def test_features_are_finite(sample):
    assert np.isfinite(sample[list(FEATURES)].to_numpy()).all()


def test_class_mixture_is_exact():
    frame = make_trigger_candidates(
        10_000, seed=1, signal_fraction=0.3, charm_fraction=0.2, fake_fraction=0.5
    )
    counts = frame["category"].value_counts()
    assert counts["b"] == 3000
    assert counts["charm"] == 1400
    assert counts["fake"] == 3500
    assert counts["prompt"] == 2100
    assert (frame["label"] == (frame["category"] == "b")).all()


def test_same_seed_same_frame():
    first = make_trigger_candidates(3000, seed=5)
    second = make_trigger_candidates(3000, seed=5)
    pd.testing.assert_frame_equal(first, second)


def test_other_seed_other_frame():
    first = make_trigger_candidates(3000, seed=5)
    second = make_trigger_candidates(3000, seed=6)
    assert not np.allclose(first["log_min_ip_chi2"], second["log_min_ip_chi2"])


def test_generator_seed_is_accepted():
    frame = make_trigger_candidates(500, seed=np.random.default_rng(3))
    assert len(frame) == 500


def test_unshuffled_rows_grouped_by_category():
    frame = make_trigger_candidates(1000, seed=2, shuffle=False)
    codes = frame["category"].cat.codes.to_numpy()
    assert (np.diff(codes) >= 0).all()


def test_selection_is_applied(sample):
    assert (sample["min_pt"] > 0.5).all()
    assert (sample["doca"] < 0.2).all()
    assert (sample["sum_pt"] >= 2 * sample["min_pt"]).all()


def test_truth_columns_by_category(sample):
    by_category = dict(list(sample.groupby("category", observed=True)))
    assert by_category["b"]["decay_time"].notna().all()
    assert by_category["charm"]["decay_time"].notna().all()
    assert by_category["prompt"]["decay_time"].isna().all()
    assert by_category["fake"]["decay_time"].isna().all()
    assert (by_category["prompt"]["true_fd"] == 0).all()


def test_decay_time_exponential_with_lifetime(signal_only):
    times = signal_only.loc[signal_only["label"] == 1, "decay_time"].to_numpy()
    # The mean of an exponential sample is the lifetime, with standard error tau / sqrt(n).
    tolerance = 4 * 1.5 / np.sqrt(len(times))
    assert abs(times.mean() - 1.5) < tolerance
    # Exponential: the standard deviation equals the mean, and the median is tau * ln 2.
    assert abs(times.std() / times.mean() - 1) < 0.03
    assert abs(np.median(times) - 1.5 * np.log(2)) < 0.03


def test_lifetime_argument_sets_decay_time():
    frame = make_trigger_candidates(
        20_000, seed=3, signal_fraction=0.999, charm_fraction=0.0, fake_fraction=0.0,
        b_lifetime=0.5,
    )
    times = frame.loc[frame["label"] == 1, "decay_time"]
    assert abs(times.mean() - 0.5) < 4 * 0.5 / np.sqrt(len(times))


def test_flight_distance_grows_with_decay_time(signal_only):
    signal = signal_only[signal_only["label"] == 1]
    bins = pd.qcut(signal["decay_time"], 5)
    true_fd = signal.groupby(bins, observed=True)["true_fd"].mean().to_numpy()
    measured_fd = signal.groupby(bins, observed=True)["fd"].mean().to_numpy()
    ip_chi2 = signal.groupby(bins, observed=True)["log_min_ip_chi2"].mean().to_numpy()
    assert (np.diff(true_fd) > 0).all()
    assert (np.diff(measured_fd) > 0).all()
    assert (np.diff(ip_chi2) > 0).all()


def test_mean_flight_distance_matches_boost(signal_only):
    signal = signal_only[signal_only["label"] == 1]
    # L = beta gamma c t, and c tau = 0.45 mm; the mean boost is of order 10 to 40.
    ratio = signal["true_fd"].mean() / (0.2998 * signal["decay_time"].mean())
    assert 10 < ratio < 40


def test_harder_spectrum_flies_further():
    settings = dict(signal_fraction=0.999, charm_fraction=0.0, fake_fraction=0.0)
    soft = make_trigger_candidates(10_000, seed=12, b_pt_mean=4.0, **settings)
    hard = make_trigger_candidates(10_000, seed=12, b_pt_mean=12.0, **settings)
    soft, hard = soft[soft["label"] == 1], hard[hard["label"] == 1]
    # L = (p / m) c t: a harder spectrum boosts the same lifetime into a longer flight.
    assert hard["sum_pt"].mean() > soft["sum_pt"].mean()
    assert hard["true_fd"].mean() > 1.5 * soft["true_fd"].mean()


def test_signal_more_displaced_than_background(sample):
    signal = sample[sample["label"] == 1]
    background = sample[sample["label"] == 0]
    prompt = sample[sample["category"] == "prompt"]
    assert signal["log_min_ip_chi2"].mean() > background["log_min_ip_chi2"].mean() + 1
    assert signal["log_fd_chi2"].mean() > background["log_fd_chi2"].mean() + 1
    assert signal["sum_pt"].mean() > background["sum_pt"].mean()
    # Prompt IP chi2 comes from resolution: the minimum of two chi2(2) variables has mean 1,
    # and the smearing tails add a little.
    assert 0.8 < np.exp(prompt["log_min_ip_chi2"]).mean() < 2.5


def test_corrected_mass_of_full_b_decays(signal_only):
    # Corrected mass is at least the mass of two pions. Partially reconstructed
    # decays pull it below the b mass, so the median lies between 3 and 5.3 GeV.
    signal = signal_only[signal_only["label"] == 1]
    assert 3.0 < signal["mcorr"].median() < 5.3
    assert (signal["mcorr"] > 2 * 0.1395).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be a positive integer, got 0"),
        ({"n": 2.5}, "n must be a positive integer, got 2.5"),
        ({"n": True}, "n must be a positive integer, got True"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"seed": None}, "seed must be a non-negative integer"),
        ({"signal_fraction": 0.0}, r"signal_fraction must lie in \(0, 1\), got 0.0"),
        ({"signal_fraction": 1.0}, r"signal_fraction must lie in \(0, 1\), got 1.0"),
        ({"signal_fraction": "half"}, "signal_fraction must be a finite number"),
        ({"charm_fraction": -0.1}, r"charm_fraction must lie in \[0, 1\), got -0.1"),
        ({"fake_fraction": float("nan")}, "fake_fraction must be a finite number"),
        (
            {"charm_fraction": 0.5, "fake_fraction": 0.5},
            "charm_fraction \\+ fake_fraction = 1 must be below 1",
        ),
        ({"b_lifetime": 0}, "b_lifetime must be a positive number, got 0"),
        ({"b_pt_mean": float("inf")}, "b_pt_mean must be finite, got inf"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    arguments = {"n": 100, "seed": 0, **kwargs}
    with pytest.raises(DataError, match=match):
        make_trigger_candidates(**arguments)
