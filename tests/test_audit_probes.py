"""Monotonicity checks of lipmono.audit on models that are not lipmono's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from lipmono.audit import audit, check_monotonicity, render_markdown
from lipmono.errors import ConstraintError, DataError

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_compas = pytest.mark.skipif(
    not (DATA_DIR / "compas").is_dir(), reason=f"COMPAS data not found in {DATA_DIR}"
)
COMPAS_CST = {"priors_count": 1, "juv_fel_count": 1, "juv_misd_count": 1, "juv_other_count": 1}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The models and data here are small: extra OpenMP and BLAS threads only add
    # synchronisation overhead, which dominates on a busy machine.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def compas():
    train = pd.read_csv(DATA_DIR / "compas" / "train_compas.csv")
    test = pd.read_csv(DATA_DIR / "compas" / "test_compas.csv")
    return (
        train.drop(columns="ground_truth"), train["ground_truth"],
        test.drop(columns="ground_truth"), test["ground_truth"],
    )


class FunctionModel:
    """A regression model given by a formula, so that every violation is known exactly."""

    def __init__(self, formula):
        self.formula = formula

    def predict(self, X):
        return self.formula(np.asarray(X, dtype=np.float64))


def _repredict(model, X: pd.DataFrame, example) -> tuple[float, float]:
    row = X.iloc[[example.row, example.row]].reset_index(drop=True)
    row[example.feature] = [example.value_low, example.value_high]
    proba = model.predict_proba(row)[:, 1]
    return float(proba[0]), float(proba[1])


@needs_compas
@pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)
def test_unconstrained_mlp_violates(compas):
    X_train, y_train, X_test, _ = compas
    model = MLPClassifier((32, 32), max_iter=200, random_state=0)
    model.fit(X_train.iloc[:2500], y_train.iloc[:2500])
    result = check_monotonicity(model, X_test, COMPAS_CST, n_pairs=1000, n_anchors=100)

    assert not result.passed
    assert not result.guaranteed
    assert result.pairs.n_violations > 0
    assert result.sweeps.n_violations > 0
    worst = result.pairs.worst
    low, high = _repredict(model, X_test, worst)
    # The reported example reproduces: the two predictions and the size of the drop.
    assert low == pytest.approx(worst.prediction_low, abs=1e-12)
    assert high == pytest.approx(worst.prediction_high, abs=1e-12)
    assert low - high == pytest.approx(worst.violation, abs=1e-12)
    assert worst.violation == pytest.approx(result.pairs.max_violation)
    assert worst.value_low < worst.value_high


@needs_compas
def test_unconstrained_trees_violate(compas):
    X_train, y_train, X_test, _ = compas
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X_train, y_train)
    result = check_monotonicity(model, X_test, list(COMPAS_CST.values()) + [0] * 9, n_anchors=100)

    assert not result.passed
    assert result.sweeps.violation_rate > 0.1
    worst = result.sweeps.worst
    low, high = _repredict(model, X_test, worst)
    assert low - high == pytest.approx(worst.violation, abs=1e-12)
    assert set(result.sweeps.per_feature) == set(COMPAS_CST)


@needs_compas
def test_constrained_trees_pass_with_own_cst(compas):
    X_train, y_train, X_test, y_test = compas
    model = HistGradientBoostingClassifier(
        max_iter=30, random_state=0, monotonic_cst=COMPAS_CST
    ).fit(X_train, y_train)
    # monotonic_cst=None: the constraints come from the model itself.
    result = audit(model, X_test, y_test, n_anchors=100)

    assert result.monotonicity.passed
    assert result.monotonicity.constraints == COMPAS_CST
    assert result.passed
    assert result.certificate is None
    assert result.radius is None
    assert 0.5 < result.performance["roc_auc"] <= 1.0
    assert "not a lipmono model" in " ".join(result.verdict)


def test_exact_violation_of_decreasing_formula():
    X = np.column_stack([np.linspace(0.0, 2.0, 50), np.ones(50)])
    model = FunctionModel(lambda X: X[:, 0] ** 2 - 2 * X[:, 0])  # minimum at 1
    result = check_monotonicity(model, X, [1, 0], n_pairs=500, n_grid=21, n_anchors=10)

    # Every curve falls from 0 at x0=0 to -1 at x0=1, a drop of exactly 1.0.
    assert result.sweeps.n_violations == result.sweeps.n_checks == 10
    assert result.sweeps.max_violation == pytest.approx(1.0)
    worst = result.sweeps.worst
    assert worst.value_low == pytest.approx(0.0)
    assert worst.value_high == pytest.approx(1.0)
    assert worst.prediction_low == pytest.approx(0.0)
    assert worst.prediction_high == pytest.approx(-1.0)
    assert 0 < result.pairs.violation_rate < 1
    assert result.pairs.max_violation <= 1.0 + 1e-12


@pytest.mark.parametrize(
    ("formula", "cst", "passes"),
    [
        (lambda X: 3 * X[:, 0] - X[:, 1], [1, -1], True),
        (lambda X: 3 * X[:, 0] - X[:, 1], {"x1": 1}, False),
        (lambda X: -X[:, 0], ["decreasing", 0], True),
        (lambda X: np.floor(4 * X[:, 0]), [1, 0], True),
    ],
)
def test_formula_constraint_forms(formula, cst, passes):
    X = np.random.default_rng(1).uniform(size=(80, 2))
    result = check_monotonicity(FunctionModel(formula), X, cst, n_pairs=300, n_anchors=20)
    assert result.passed is passes


def test_all_pairs_violate_for_opposite_sign():
    X = np.random.default_rng(2).uniform(size=(60, 3))
    result = check_monotonicity(FunctionModel(lambda X: -X[:, 2]), X, [0, 0, 1], n_pairs=400)
    assert result.pairs.violation_rate == pytest.approx(1.0)
    assert result.sweeps.violation_rate == pytest.approx(1.0)


def test_tolerance_hides_small_drops():
    X = np.random.default_rng(3).uniform(size=(60, 1))
    # Slope 1 + 2 cos(100 x) is negative on stretches; each dip is about 0.014 deep.
    wiggle = FunctionModel(lambda X: X[:, 0] + 0.02 * np.sin(100 * X[:, 0]))
    strict = check_monotonicity(wiggle, X, [1], tolerance=0.0, n_grid=200)
    loose = check_monotonicity(wiggle, X, [1], tolerance=0.05, n_grid=200)
    assert not strict.passed
    assert loose.passed


def test_logistic_regression_doctest_case():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    model = LogisticRegression().fit(X, X[:, 0] - X[:, 1] > 0)
    assert audit(model, X, monotonic_cst=[1, -1]).monotonicity.passed
    assert not audit(model, X, monotonic_cst=[-1, 0]).monotonicity.passed


def test_unknown_column_rejected():
    X = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 2.0]})
    with pytest.raises(ConstraintError, match="'c', which is not among"):
        check_monotonicity(FunctionModel(lambda X: X[:, 0]), X, {"c": 1})


def test_all_zero_constraints_rejected():
    X = np.zeros((3, 2)) + np.arange(3)[:, None]
    with pytest.raises(ConstraintError, match="nothing to check"):
        check_monotonicity(FunctionModel(lambda X: X[:, 0]), X, [0, 0])


def test_missing_constraints_rejected():
    X = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ConstraintError, match="pass monotonic_cst"):
        check_monotonicity(FunctionModel(lambda X: X[:, 0]), X)


def test_text_column_rejected_when_constrained():
    X = pd.DataFrame({"city": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="'city' is constrained but not numeric"):
        check_monotonicity(FunctionModel(lambda X: X[:, 1]), X, {"city": 1})


def test_nan_column_rejected():
    X = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 3.0]])
    with pytest.raises(DataError, match="'x0' contains NaN"):
        check_monotonicity(FunctionModel(lambda X: X[:, 1]), X, [1, 0])


def test_nan_prediction_rejected():
    X = np.arange(6.0).reshape(3, 2)
    with pytest.raises(DataError, match="NaN or infinite"):
        check_monotonicity(FunctionModel(lambda X: np.full(len(X), np.nan)), X, [1, 0])


def test_constant_feature_rejected():
    X = np.column_stack([np.ones(5), np.arange(5.0)])
    with pytest.raises(DataError, match="constant"):
        check_monotonicity(FunctionModel(lambda X: X[:, 0]), X, [1, 0])


def test_bad_arguments_rejected():
    X = np.arange(6.0).reshape(3, 2)
    model = FunctionModel(lambda X: X[:, 0])
    with pytest.raises(ValueError, match="n_pairs must be a positive integer"):
        check_monotonicity(model, X, [1, 0], n_pairs=0)
    with pytest.raises(ValueError, match="n_grid must be at least 2"):
        check_monotonicity(model, X, [1, 0], n_grid=1)
    with pytest.raises(ValueError, match="tolerance must be a finite number"):
        check_monotonicity(model, X, [1, 0], tolerance=-1.0)
    with pytest.raises(ValueError, match="response='proba' is not supported"):
        check_monotonicity(model, X, [1, 0], response="proba")
    with pytest.raises(DataError, match="2-D table"):
        check_monotonicity(model, np.arange(3.0), [1])


def test_multiclass_proba_rejected():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 2))
    model = LogisticRegression().fit(X, np.arange(90) % 3)
    with pytest.raises(DataError, match="covers binary classifiers"):
        check_monotonicity(model, X, [1, 0])
    result = check_monotonicity(model, X, [1, 0], response="predict", n_pairs=50)
    assert result.response == "predict"


def test_audit_without_constraints_skips_monotonicity():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    result = audit(LogisticRegression().fit(X, X[:, 0] > 0), X)
    assert result.monotonicity is None
    assert result.passed
    assert result.verdict[0].startswith("Monotonicity: not checked")


@needs_compas
@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosting_libraries_audited(compas, library):
    module = pytest.importorskip(library)
    X_train, y_train, X_test, _ = compas
    cst = list(COMPAS_CST.values()) + [0] * 9
    make = {
        "xgboost": lambda **kw: module.XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1, **kw),
        "lightgbm": lambda **kw: module.LGBMClassifier(n_estimators=30, n_jobs=1, verbose=-1, **kw),
    }[library]
    free = make().fit(X_train, y_train)
    constrained = make(monotone_constraints=tuple(cst)).fit(X_train, y_train)

    free_result = check_monotonicity(free, X_test, cst, n_pairs=500, n_anchors=50)
    constrained_result = check_monotonicity(constrained, X_test, cst, n_pairs=500, n_anchors=50)
    assert free_result.pairs.n_violations > 0
    assert not free_result.passed
    assert constrained_result.passed


def test_constant_constrained_feature_reported():
    X = np.column_stack([np.arange(20.0), np.ones(20)])
    result = audit(FunctionModel(lambda X: X[:, 0]), X, monotonic_cst=[1, 1], n_pairs=50)
    assert result.monotonicity.passed
    assert "x1" not in result.monotonicity.sweeps.per_feature
    assert "x1" not in result.monotonicity.pairs.per_feature
    text = render_markdown(result)
    assert "Not checked, because they are constant in the audited data: x1." in text
