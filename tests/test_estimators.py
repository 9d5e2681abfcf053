"""MonotonicRegressor and MonotonicClassifier: data handling, guarantees and contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import lipmono
from lipmono import BudgetError, ConstraintError, DataError, MonotonicClassifier, MonotonicRegressor
from lipmono.estimators import ParameterError

FAST = {"hidden_layer_sizes": (8,), "max_iter": 3, "random_state": 0}


def make_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "dose": rng.normal(5.0, 2.0, n),
            "age": rng.uniform(20, 80, n),
            "city": rng.choice(["paris", "rome", "oslo"], n),
            "constant": np.full(n, 3.0),
        }
    )
    frame["city"] = frame["city"].astype("category")
    return frame


def regression_target(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(0.5 * frame["dose"] - 0.01 * frame["age"], name="response")


def sweep(frame: pd.DataFrame, column: str, n: int = 25) -> pd.DataFrame:
    """Return n copies of the first rows with ``column`` increasing from min to max."""
    rows = frame.iloc[[0] * n].reset_index(drop=True)
    rows[column] = np.linspace(frame[column].min() - 1, frame[column].max() + 1, n)
    return rows


def test_regressor_monotonic_in_dataframe_columns():
    frame = make_frame()
    model = MonotonicRegressor({"dose": "increasing", "age": -1}, **FAST)
    model.fit(frame, regression_target(frame))
    assert np.all(np.diff(model.predict(sweep(frame, "dose"))) >= 0)
    assert np.all(np.diff(model.predict(sweep(frame, "age"))) <= 0)


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    signs=st.lists(st.sampled_from([-1, 0, 1]), min_size=2, max_size=4),
    lipschitz=st.floats(0.1, 5.0),
)
def test_classifier_probability_monotonic_property(seed, signs, lipschitz):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, len(signs))) * rng.uniform(0.1, 10, len(signs))
    y = (X @ rng.normal(size=len(signs)) > 0).astype(int)
    if len(np.unique(y)) < 2:
        y[0] = 1 - y[0]
    model = MonotonicClassifier(signs, lipschitz=lipschitz, hidden_layer_sizes=(8,), max_iter=2)
    model.fit(X, y)
    for feature, sign in enumerate(signs):
        if sign == 0:
            continue
        grid = np.repeat(X[:1], 30, axis=0)
        grid[:, feature] = np.linspace(X[:, feature].min() - 5, X[:, feature].max() + 5, 30)
        probability = model.predict_proba(grid)[:, 1]
        assert np.all(sign * np.diff(probability) >= 0)
        assert np.all(sign * np.diff(model.decision_function(grid)) >= 0)


def test_categorical_columns_one_hot_encoded():
    frame = make_frame()
    model = MonotonicRegressor({"dose": 1}, **FAST).fit(frame, regression_target(frame))
    assert model.encoded_feature_names_ == [
        "dose",
        "age",
        "city_oslo",
        "city_paris",
        "city_rome",
        "constant",
    ]
    encoded = model.encode(frame)
    assert encoded.dtype == np.float64
    assert encoded.shape == (len(frame), 6)
    assert np.array_equal(encoded[:, 0], frame["dose"].to_numpy())
    assert np.array_equal(encoded[:, 3], (frame["city"] == "paris").to_numpy(dtype=float))
    assert list(model.encoded_monotonic_cst_) == [1, 0, 0, 0, 0, 0]
    assert model.n_features_in_ == 4
    assert list(model.feature_names_in_) == ["dose", "age", "city", "constant"]


def test_object_and_string_columns_are_categorical():
    frame = make_frame()
    frame["city"] = frame["city"].astype(str)
    frame["shop"] = pd.array(["a", "b"] * 60, dtype="string")
    model = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    assert "shop_a" in model.encoded_feature_names_
    assert "city_rome" in model.encoded_feature_names_


def test_identifier_like_column_warns():
    frame = make_frame()
    frame["row_id"] = [f"id{i}" for i in range(len(frame))]
    with pytest.warns(UserWarning, match="'row_id' has 120 distinct values in 120 rows"):
        MonotonicRegressor(**FAST).fit(frame, regression_target(frame))


def test_constraint_on_categorical_column_rejected():
    frame = make_frame()
    model = MonotonicRegressor({"city": 1}, **FAST)
    with pytest.raises(ConstraintError, match="'city' is categorical"):
        model.fit(frame, regression_target(frame))


def test_constraint_on_unknown_column_lists_columns():
    frame = make_frame()
    model = MonotonicRegressor({"doze": 1}, **FAST)
    with pytest.raises(ConstraintError, match="'doze'.*dose, age, city, constant"):
        model.fit(frame, regression_target(frame))


def test_unseen_level_encoded_as_zeros_with_warning():
    frame = make_frame()
    model = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    other = frame.head(3).copy()
    other["city"] = ["lima", "paris", "lima"]
    with pytest.warns(UserWarning, match="'city' has 1 level.*'lima'"):
        encoded = model.encode(other)
    assert encoded[0, 2:5].sum() == 0
    assert encoded[1, 3] == 1


def test_categorical_model_needs_dataframe():
    frame = make_frame()
    model = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    with pytest.raises(DataError, match="one-hot encodes the categorical column\\(s\\) city"):
        model.predict(frame.to_numpy())


def test_missing_category_rejected():
    frame = make_frame()
    frame["city"] = frame["city"].astype(object)
    frame.loc[[3, 5], "city"] = None
    with pytest.raises(DataError, match="NaN in the categorical column 'city' \\(2 rows\\)"):
        MonotonicRegressor(**FAST).fit(frame, regression_target(frame))


def test_standardization_positive_scales():
    frame = make_frame()
    model = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    scale = model.input_scaler_.scale
    assert np.all(scale > 0)
    assert scale[-1] == 1.0  # the constant column
    assert scale[0] == pytest.approx(frame["dose"].std(ddof=0))


def test_nan_and_inf_named_by_column():
    frame = make_frame()
    frame.loc[[1, 4, 7], "dose"] = np.nan
    frame.loc[2, "age"] = np.inf
    model = MonotonicRegressor(**FAST)
    with pytest.raises(
        DataError, match=r"NaN or inf in 2 column\(s\): 'dose' \(3 rows\), 'age' \(1 rows\)"
    ):
        model.fit(frame, regression_target(make_frame()))


def test_non_numeric_regression_target_rejected():
    frame = make_frame()
    with pytest.raises(DataError, match="regression target is not numeric.*'high'"):
        MonotonicRegressor(**FAST).fit(frame, ["high", "low"] * 60)


def test_single_class_target_rejected():
    frame = make_frame()
    with pytest.raises(DataError, match="only 1 class"):
        MonotonicClassifier(**FAST).fit(frame, np.ones(len(frame)))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "big"])
def test_invalid_lipschitz_rejected(value):
    frame = make_frame()
    with pytest.raises(BudgetError, match="lipschitz must be a positive finite number"):
        MonotonicRegressor(lipschitz=value, **FAST).fit(frame, regression_target(frame))


def test_hidden_sizes_not_divisible_by_group_size():
    frame = make_frame()
    model = MonotonicRegressor(hidden_layer_sizes=(9, 8), group_size=4, max_iter=1)
    with pytest.raises(
        ParameterError, match=r"hidden_layer_sizes\[0\]=9 is not divisible by group_size=4"
    ):
        model.fit(frame, regression_target(frame))


def test_multiclass_without_constraints():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 3))
    y = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.5, 0.5])]
    model = MonotonicClassifier(
        hidden_layer_sizes=(16,), max_iter=40, learning_rate=0.01, random_state=0
    )
    model.fit(X, y)
    assert model.model_.out_features == 3
    assert list(model.classes_) == ["high", "low", "mid"]
    proba = model.predict_proba(X)
    assert proba.shape == (150, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert model.score(X, y) > 0.8
    assert model.certificate_["output"] == "logits"


def test_multiclass_with_constraints_rejected():
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = np.arange(30) % 3
    with pytest.raises(ConstraintError, match="3 classes: a softmax probability"):
        MonotonicClassifier([1, 0], **FAST).fit(X, y)


def test_certificate_contract():
    frame = make_frame()
    model = MonotonicRegressor({"dose": 1, "age": -1}, **FAST).fit(frame, regression_target(frame))
    certificate = model.certificate_
    assert certificate["norm"] == "l1"
    assert certificate["lipschitz_scaled"] == lipmono.lipschitz_bound(model.model_, "l1")
    assert certificate["monotonic"] == {"dose": "increasing", "age": "decreasing"}
    assert set(certificate["per_feature"]) == set(model.encoded_feature_names_)
    assert certificate["lipschitz_original"] == max(certificate["per_feature"].values())
    output_scale = model.target_scaler_.scale[0]
    for j, name in enumerate(model.encoded_feature_names_):
        expected = (
            certificate["per_feature_scaled"][name] * output_scale / model.input_scaler_.scale[j]
        )
        assert certificate["per_feature"][name] == pytest.approx(expected, rel=1e-12)
        assert certificate["per_feature_scaled"][name] <= certificate["lipschitz_scaled"] * (
            1 + 1e-12
        )


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_certificate_bounds_gradients_in_original_units(norm):
    frame = make_frame()
    model = MonotonicRegressor(
        {"dose": 1}, norm=norm, hidden_layer_sizes=(8, 8), max_iter=3, random_state=0
    )
    model.fit(frame, regression_target(frame))
    network = model.to_torch()
    x = torch.as_tensor(model.encode(frame)).requires_grad_(True)
    (gradient,) = torch.autograd.grad(network(x).sum(), x)
    slack = 1 + 1e-9
    for j, name in enumerate(model.encoded_feature_names_):
        assert gradient[:, j].abs().max() <= model.certificate_["per_feature"][name] * slack
    pair_norm = {"l1": float("inf"), "l2": 2, "linf": 1}[norm]
    largest = torch.linalg.vector_norm(gradient, ord=pair_norm, dim=1).max()
    assert largest <= model.certificate_["lipschitz_original"] * slack


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    norm=st.sampled_from(["l1", "l2", "linf", "l1->l1"]),
    log_scales=st.lists(st.floats(-3, 3), min_size=1, max_size=4),
)
def test_certificate_holds_for_any_feature_scales(seed, norm, log_scales):
    rng = np.random.default_rng(seed)
    n_features = len(log_scales)
    X = rng.normal(size=(80, n_features)) * 10.0 ** np.asarray(log_scales)
    y = (X / 10.0 ** np.asarray(log_scales)).sum(axis=1) * 10.0 ** rng.uniform(-2, 2)
    signs = rng.integers(-1, 2, n_features)
    model = MonotonicRegressor(signs, norm=norm, hidden_layer_sizes=(8, 8), max_iter=2)
    model.fit(X, y)
    network = model.to_torch()
    x = torch.as_tensor(X).requires_grad_(True)
    (gradient,) = torch.autograd.grad(network(x).sum(), x)
    slack = 1 + 1e-9
    bounds = np.array([model.certificate_["per_feature"][f"x{j}"] for j in range(n_features)])
    assert np.all(gradient.abs().max(dim=0).values.numpy() <= bounds * slack)
    for j, sign in enumerate(signs):
        if sign:
            assert np.all(sign * gradient[:, j].numpy() >= 0)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"group_size": 0}, "group_size must be an integer >= 1, got 0"),
        ({"norm": "l3"}, "norm must be one of l1, linf, l2, l1->l1; got 'l3'"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"max_iter": 2.5}, "max_iter must be an integer >= 1, got 2.5"),
        ({"learning_rate": -1.0}, "learning_rate must be a finite number >= 0, got -1.0"),
        ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
        ({"validation_fraction": 1.5}, r"validation_fraction must be in \(0, 1\), got 1.5"),
        ({"hidden_layer_sizes": ()}, "must name at least one hidden layer"),
        ({"hidden_layer_sizes": "wide"}, r"hidden_layer_sizes\[0\] must be an integer"),
    ],
)
def test_invalid_parameters_rejected_at_fit(params, match):
    model = MonotonicRegressor(**params)
    assert model.get_params()[next(iter(params))] == params[next(iter(params))]
    with pytest.raises(ParameterError, match=match):
        model.fit(np.zeros((10, 2)), np.arange(10.0))


def test_to_torch_reproduces_predictions():
    frame = make_frame()
    target = (regression_target(frame) > 2).astype(int)
    model = MonotonicClassifier({"dose": 1}, **FAST).fit(frame, target)
    network = model.to_torch()
    assert not network.training
    assert isinstance(network[0], lipmono.Standardize)
    assert isinstance(network[1], lipmono.MonotonicResidual)
    assert isinstance(network[2], lipmono.OutputAffine)
    with torch.no_grad():
        logits = network(torch.as_tensor(model.encode(frame))).numpy()[:, 0]
    assert np.array_equal(logits, model.decision_function(frame))
    regressor = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    with torch.no_grad():
        output = regressor.to_torch()(torch.as_tensor(regressor.encode(frame))).numpy()[:, 0]
    assert np.array_equal(output, regressor.predict(frame))


def test_to_torch_returns_a_copy():
    frame = make_frame()
    model = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    before = model.predict(frame)
    network = model.to_torch()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(1.0)
    assert np.array_equal(model.predict(frame), before)


def test_same_random_state_same_model():
    frame = make_frame()
    first = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    second = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    assert np.array_equal(first.predict(frame), second.predict(frame))
    assert [h["train_loss"] for h in first.history_] == [h["train_loss"] for h in second.history_]


def test_history_records_epochs():
    frame = make_frame()
    model = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    assert [entry["epoch"] for entry in model.history_] == [1, 2, 3]
    assert set(model.history_[0]) == {"epoch", "train_loss", "val_loss", "seconds"}
    assert all(entry["val_loss"] is not None for entry in model.history_)
    without = MonotonicRegressor(early_stopping=False, **FAST).fit(frame, regression_target(frame))
    assert all(entry["val_loss"] is None for entry in without.history_)


def test_early_stopping_stops_and_keeps_best():
    frame = make_frame()
    model = MonotonicRegressor(
        hidden_layer_sizes=(8,), max_iter=200, n_iter_no_change=2, tol=10.0, random_state=0
    ).fit(frame, regression_target(frame))
    # With tol=10 no epoch after the first counts as an improvement.
    assert model.n_iter_ == 3
    assert model.best_epoch_ == 1


def test_learns_a_monotonic_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(400, 2))
    y = X[:, 0] ** 3 + np.sin(2 * X[:, 1])
    model = MonotonicRegressor(
        [1, 0],
        lipschitz=2.0,
        hidden_layer_sizes=(32, 32),
        learning_rate=0.01,
        max_iter=60,
        random_state=0,
    ).fit(X, y)
    assert model.score(X, y) > 0.9


def test_predict_before_fit_raises_not_fitted():
    model = MonotonicRegressor()
    with pytest.raises(NotFittedError):
        model.predict(np.zeros((2, 2)))
    with pytest.raises(NotFittedError):
        model.encode(np.zeros((2, 2)))
    with pytest.raises(NotFittedError):
        model.to_torch()


def test_predict_with_missing_or_extra_columns():
    frame = make_frame()
    model = MonotonicRegressor(**FAST).fit(frame, regression_target(frame))
    with pytest.raises(DataError, match="missing:\n- age"):
        model.predict(frame.drop(columns=["age"]))
    with pytest.raises(DataError, match="unseen at fit time:\n- extra"):
        model.predict(frame.assign(extra=1.0))


def test_device_auto_uses_cpu_without_gpu():
    frame = make_frame()
    model = MonotonicRegressor(device="auto", **FAST).fit(frame, regression_target(frame))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device_.type == expected
    assert next(model.model_.parameters()).dtype == torch.float64


def test_lazy_exports_do_not_import_sklearn():
    import subprocess
    import sys

    code = "import sys, lipmono; print('sklearn' in sys.modules, 'pandas' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.split() == ["False", "False"]
    assert lipmono.MonotonicRegressor is MonotonicRegressor


@pytest.mark.parametrize(
    "module_name",
    [
        "lipmono.estimators",
        "lipmono.estimators.base",
        "lipmono.estimators.certificate",
        "lipmono.estimators.classifier",
        "lipmono.estimators.regressor",
        "lipmono.schema",
        "lipmono.serialization",
        "lipmono.training",
        "lipmono.datasets.bundled",
        "lipmono.cli",
        "lipmono.cli.train",
        "lipmono.cli.predict",
        "lipmono.cli.evaluate",
        "lipmono.cli.info",
        "lipmono.cli.demo",
    ],
)
def test_all_names_importable(module_name):
    import importlib

    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"
