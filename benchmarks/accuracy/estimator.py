"""lipmono's scikit-learn estimators, used as a practitioner would.

The honest protocol adds one row that fits ``lipmono.MonotonicClassifier`` or
``lipmono.MonotonicRegressor`` with the architecture chosen by cross-validation
and the estimator's own early stopping (10% of the training rows held out, stop
after 10 epochs without improvement). A ``quantile`` scaling choice becomes a
scikit-learn pipeline with a ``QuantileTransformer`` in front; the estimator
always standardizes its inputs itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import QuantileTransformer

import lipmono

from .network import NetConfig

__all__ = ["FittedEstimator", "fit_estimator"]


@dataclass
class FittedEstimator:
    """A fitted lipmono estimator, alone or behind a quantile transform."""

    model: object  # the estimator or a Pipeline ending in it
    task: str
    fit_seconds: float

    @property
    def estimator(self):
        """The lipmono estimator itself."""
        return self.model[-1] if isinstance(self.model, Pipeline) else self.model

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return class labels 0/1 or regression predictions, shape ``(N,)``."""
        return np.asarray(self.model.predict(X))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Return the logit or prediction computed in float64, shape ``(N,)``."""
        if isinstance(self.model, Pipeline):
            X = self.model[:-1].transform(X)
        module = self.estimator.to_torch().double()
        with torch.no_grad():
            out = torch.cat([module(chunk) for chunk in torch.as_tensor(X).split(65536)])
        return out[:, 0].numpy()

    def n_parameters(self) -> int:
        """Number of trainable scalars of the network."""
        return int(sum(p.numel() for p in self.estimator.model_.parameters() if p.requires_grad))

    def n_epochs(self) -> int:
        """Epochs run before early stopping."""
        return int(self.estimator.n_iter_)


def fit_estimator(
    config: NetConfig, monotonic_cst: list[int], task: str, X_train, y_train, seed: int
) -> FittedEstimator:
    """Fit the estimator with ``config``'s architecture and its built-in early stopping."""
    cls = lipmono.MonotonicClassifier if task == "classification" else lipmono.MonotonicRegressor
    estimator = cls(
        monotonic_cst=list(monotonic_cst),
        lipschitz=config.lipschitz,
        hidden_layer_sizes=tuple(config.hidden),
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        max_iter=config.epochs,
        early_stopping=True,
        random_state=seed,
    )
    model = estimator
    if config.scaling == "quantile":
        quantiles = QuantileTransformer(
            n_quantiles=min(1000, len(X_train)), subsample=100_000, random_state=seed
        )
        model = make_pipeline(quantiles, estimator)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    return FittedEstimator(model, task, time.perf_counter() - start)
