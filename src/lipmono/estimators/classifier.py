"""Monotonic, Lipschitz-certified classification with the scikit-learn API."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from scipy.special import expit, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ..errors import ConstraintError, DataError
from .base import DTYPE, MonotonicEstimatorBase

__all__ = ["MonotonicClassifier"]


class MonotonicClassifier(ClassifierMixin, MonotonicEstimatorBase):
    r"""Classifier whose logit is monotonic in chosen features, with a certified Lipschitz bound.

    Binary: one logit :math:`f(z) = g(z) + \lambda \sum_i s_i z_i` on the
    standardized encoded features, trained with binary cross-entropy. The
    probability of ``classes_[1]`` is ``sigmoid(f)``, so it is monotonic in every
    constrained feature. Multiclass (without constraints): one logit per class,
    trained with softmax cross-entropy. Constraints with more than two classes are
    rejected, because a softmax probability depends on every logit and so stays
    monotonic in no feature even when each logit is.

    Parameters
    ----------
    monotonic_cst, lipschitz, hidden_layer_sizes, group_size, norm, learning_rate, \
batch_size, max_iter, early_stopping, validation_fraction, n_iter_no_change, tol, \
random_state, verbose, device
        As in :class:`~lipmono.MonotonicRegressor`. The validation split is
        stratified by class when every class has at least two rows.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.
    model_, n_features_in_, feature_names_in_, encoded_feature_names_, \
encoded_monotonic_cst_, certificate_, history_, n_iter_
        As in :class:`~lipmono.MonotonicRegressor`; the certificate bounds the logit.

    Examples
    --------
    >>> import numpy as np
    >>> from lipmono import MonotonicClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2)); y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    >>> model = MonotonicClassifier({0: "increasing"}, max_iter=5, random_state=0).fit(X, y)
    >>> grid = np.column_stack([np.linspace(-2, 2, 9), np.zeros(9)])
    >>> bool(np.all(np.diff(model.predict_proba(grid)[:, 1]) >= 0))
    True
    """

    def _prepare_target(self, y, n_samples: int):
        y = column_or_1d(y, warn=True)
        check_consistent_length(np.empty((n_samples, 0)), y)
        missing = _count_missing(y)
        if missing:
            raise DataError(
                f"the target contains missing values in {missing} rows; remove those rows first"
            )
        try:
            check_classification_targets(y)
        except ValueError as error:
            raise DataError(
                f"{str(error).rstrip('.')}. MonotonicClassifier needs class labels; use "
                "MonotonicRegressor for a continuous target"
            ) from None
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(
                f"the target has only 1 class ({classes.tolist()[0]!r}); a classifier needs rows "
                "of at least two classes"
            )
        self.classes_ = classes
        if len(classes) == 2:
            return torch.as_tensor(encoded, dtype=DTYPE), 1
        return torch.as_tensor(encoded, dtype=torch.int64), len(classes)

    def _check_constraints(self, constraints: np.ndarray) -> None:
        if len(self.classes_) > 2 and np.any(constraints != 0):
            raise ConstraintError(
                f"monotonic constraints need a binary target, but y has {len(self.classes_)} "
                "classes: a softmax probability depends on every logit, so it is not monotonic "
                "in a feature even when each logit is. Fit one binary classifier per class "
                "(one-vs-rest) or drop the constraints"
            )

    def _stream_target(self, dataset, target: str, stats):
        """Set ``classes_`` from a pass over the target column; return the target transform."""
        from ..streaming import DEFAULT_MAX_LEVELS
        from .streamed import distinct_values, value_type

        data_type = value_type(dataset, target)
        values = distinct_values(dataset, target, DEFAULT_MAX_LEVELS)
        classes = np.unique(pa.array(values, type=data_type).to_numpy(zero_copy_only=False))
        if len(classes) < 2:
            raise DataError(
                f"the target column {target!r} has only 1 class ({classes.tolist()[0]!r}); a "
                "classifier needs rows of at least two classes"
            )
        self.classes_ = classes
        value_set = pa.array(classes.tolist(), type=data_type)
        dtype = DTYPE if len(classes) == 2 else torch.int64

        def transform(column: pa.Array) -> torch.Tensor:
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            index = pc.index_in(column, value_set=value_set)
            if index.null_count:
                raise DataError(
                    f"the target column {target!r} has a missing value or a class not seen "
                    "in the first pass; fill or drop those rows"
                )
            positions = index.to_numpy(zero_copy_only=False).astype(np.int64)
            return torch.as_tensor(positions, dtype=dtype)

        return transform, 1 if len(classes) == 2 else len(classes)

    def _stratify(self, target):
        return target.detach().cpu().numpy()

    def _loss(self, output, target):
        if output.shape[1] == 1:
            return torch.nn.functional.binary_cross_entropy_with_logits(output[:, 0], target)
        return torch.nn.functional.cross_entropy(output, target)

    def _output_kind(self) -> str:
        return "logit" if len(self.classes_) == 2 else "logits"

    def decision_function(self, X) -> np.ndarray:
        """Return the logit, shape ``(N,)`` (binary) or ``(N, n_classes)``."""
        check_is_fitted(self)
        raw = self._raw_output(X)
        return raw[:, 0] if raw.shape[1] == 1 else raw

    def predict_proba(self, X) -> np.ndarray:
        """Return class probabilities, shape ``(N, n_classes)``, columns in ``classes_`` order."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = expit(scores)
            return np.column_stack([1.0 - positive, positive])
        return softmax(scores, axis=1)

    def predict(self, X) -> np.ndarray:
        """Return the most probable class of each row, shape ``(N,)``."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]

    def _export_extra(self) -> dict:
        return {"classes": {"values": self.classes_.tolist(), "dtype": self.classes_.dtype.str}}

    def _restore_extra(self, document: dict) -> None:
        classes = document["classes"]
        self.classes_ = np.asarray(classes["values"], dtype=np.dtype(classes["dtype"]))


def _count_missing(y) -> int:
    if y.dtype.kind == "f":
        return int(np.isnan(y).sum())
    if y.dtype.kind == "O":
        return int(sum(1 for value in y if value is None or value != value))
    return 0
