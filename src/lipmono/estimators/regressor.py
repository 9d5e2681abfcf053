"""Monotonic, Lipschitz-certified regression with the scikit-learn API."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..errors import DataError
from ..schema import Standardizer
from ..streaming import numeric_matrix
from .base import DTYPE, MonotonicEstimatorBase

__all__ = ["MonotonicRegressor"]


def _numeric_target(y) -> np.ndarray:
    array = np.asarray(y)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64)
    try:
        return array.astype(np.float64)
    except (TypeError, ValueError):
        flat = array.ravel()
        example = next((v for v in flat if not _is_number(v)), flat[0] if flat.size else None)
        raise DataError(
            f"the regression target is not numeric (found {example!r}); "
            "MonotonicRegressor needs numbers, use MonotonicClassifier for class labels"
        ) from None


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class MonotonicRegressor(RegressorMixin, MonotonicEstimatorBase):
    r"""Regressor that is monotonic in chosen features and Lipschitz with a certified bound.

    The model is :math:`\hat y = a\,f(z) + b` where :math:`z` are the standardized,
    encoded features and :math:`f(z) = g(z) + \lambda \sum_i s_i z_i` is a
    :class:`~lipmono.MonotonicMLP`: non-decreasing in every feature with
    :math:`s_i = 1` and non-increasing where :math:`s_i = -1`, for any weights.
    The target is standardized for training (``a`` is its positive standard
    deviation, ``b`` its mean), so every direction is kept. Trained with Adam on
    the mean squared error, in float64.

    Parameters
    ----------
    monotonic_cst : array-like of int, dict, str or None, default=None
        Direction per input column, as in scikit-learn: 1 increasing, -1
        decreasing, 0 none, by position, or a dict by column name (for a
        DataFrame) or position. ``"increasing"`` and ``"decreasing"`` are accepted
        as well. A constraint on a categorical column is an error.
    lipschitz : float, default=1.0
        :math:`\lambda`, the bound of the inner network ``g`` on standardized
        features, which is also the slope of the monotonic residual term.
    hidden_layer_sizes : int or tuple of int, default=(64, 64)
        Width of each hidden layer; each must be divisible by ``group_size``.
    group_size : int, default=2
        GroupSort group size (2 is MaxMin).
    norm : {"l1", "linf", "l2", "l1->l1"}, default="l1"
        Norm chain of the Lipschitz bound; ``"l1"`` bounds every partial derivative.
    learning_rate : float, default=1e-3
        Adam step size.
    batch_size : int, default=256
        Mini-batch size (capped at the number of training rows).
    max_iter : int, default=200
        Maximum number of epochs.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows, stop when their loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and keep the best weights.
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping.
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Smallest loss decrease that counts as an improvement.
    random_state : int, RandomState or None, default=None
        Seed for initialization, the validation split and batch order; an int gives
        identical results on every run on the same device.
    verbose : bool, default=False
        Show a progress bar on stderr.
    device : str, default="auto"
        Torch device; ``"auto"`` uses CUDA when torch detects a GPU.

    Attributes
    ----------
    model_ : MonotonicMLP
        The network on standardized encoded features, in eval mode.
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Input column names (only when fitted on a DataFrame with string column names).
    encoded_feature_names_ : list of str
        Names of the encoded columns (one-hot columns are ``column_level``).
    encoded_monotonic_cst_ : ndarray of int
        Direction per encoded column.
    certificate_ : dict
        Certified bounds: see :func:`lipmono.estimators.certificate.build_certificate`.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (None without early
        stopping) and ``seconds``. Losses are on the standardized target.
    n_iter_ : int
        Epochs run.

    Examples
    --------
    >>> import numpy as np
    >>> from lipmono import MonotonicRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = X[:, 0] + np.sin(X[:, 1])
    >>> model = MonotonicRegressor([1, 0], max_iter=5, random_state=0).fit(X, y)
    >>> grid = np.column_stack([np.linspace(-2, 2, 9), np.zeros(9)])
    >>> bool(np.all(np.diff(model.predict(grid)) >= 0))
    True
    """

    def _prepare_target(self, y, n_samples: int):
        y = column_or_1d(_numeric_target(y), warn=True)
        check_consistent_length(np.empty((n_samples, 0)), y)
        bad = ~np.isfinite(y)
        if bad.any():
            raise DataError(
                f"the target contains NaN or inf in {int(bad.sum())} rows; remove those rows first"
            )
        self.target_scaler_ = Standardizer.fit(y)
        target = (y - self.target_scaler_.mean[0]) / self.target_scaler_.scale[0]
        return torch.as_tensor(target, dtype=DTYPE), 1

    def _stream_target_numeric(self, target: str) -> list[str]:
        return [target]

    def _stream_target(self, dataset, target: str, stats):
        """Set ``target_scaler_`` from the statistics pass; return the target transform."""
        j = stats.numeric_columns.index(target)
        scale = stats.std[j] if stats.std[j] > 0 else 1.0
        self.target_scaler_ = Standardizer(np.array([stats.mean[j]]), np.array([scale]))
        mean, scale = float(stats.mean[j]), float(scale)

        def transform(column: pa.Array) -> torch.Tensor:
            batch = pa.RecordBatch.from_arrays([column], names=[target])
            values = numeric_matrix(batch, [target])[:, 0]
            return torch.from_numpy((values - mean) / scale)

        return transform, 1

    def _loss(self, output, target):
        return torch.nn.functional.mse_loss(output[:, 0], target)

    def _output_kind(self) -> str:
        return "target"

    def _output_scale(self):
        return self.target_scaler_.scale.copy(), self.target_scaler_.mean.copy()

    def predict(self, X) -> np.ndarray:
        """Predict the target, shape ``(N,)``."""
        check_is_fitted(self)
        return self._raw_output(X)[:, 0]

    def _export_extra(self) -> dict:
        return {"target_scaler": self.target_scaler_.to_dict()}

    def _restore_extra(self, document: dict) -> None:
        self.target_scaler_ = Standardizer.from_dict(document["target_scaler"])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        return tags
