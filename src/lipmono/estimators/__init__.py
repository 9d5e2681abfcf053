"""scikit-learn estimators: :class:`MonotonicRegressor` and :class:`MonotonicClassifier`."""

from .base import MonotonicEstimatorBase, ParameterError
from .classifier import MonotonicClassifier
from .regressor import MonotonicRegressor

__all__ = [
    "ESTIMATOR_CLASSES",
    "MonotonicClassifier",
    "MonotonicEstimatorBase",
    "MonotonicRegressor",
    "ParameterError",
]

#: Estimator classes by name, as written in model files.
ESTIMATOR_CLASSES = {cls.__name__: cls for cls in (MonotonicRegressor, MonotonicClassifier)}
