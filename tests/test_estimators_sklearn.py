"""scikit-learn's common estimator checks on both estimators.

The settings keep each fit short. The checks that score the fit
(check_classifiers_train, check_regressors_train) still need a few dozen epochs
to reach their thresholds, so the learning rate is larger than the default. Both
estimators pass every check, so no check is declared as an expected failure.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from lipmono import MonotonicClassifier, MonotonicRegressor

SETTINGS = {"hidden_layer_sizes": (16,), "max_iter": 40, "learning_rate": 0.02, "random_state": 0}


@parametrize_with_checks([MonotonicRegressor(**SETTINGS), MonotonicClassifier(**SETTINGS)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
