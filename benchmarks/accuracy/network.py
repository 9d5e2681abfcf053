"""Epoch-by-epoch training of lipmono.MonotonicMLP for the accuracy benchmark.

The loop is written here rather than taken from an estimator because the
literature protocol needs the test metric after every epoch. Inputs go through a
non-decreasing map fitted on the training rows (see ``NetConfig.scaling``), so
every constraint keeps its direction in the original units. Regression targets
are standardized, and the Lipschitz bound ``lipschitz`` applies in the mapped
input units and standardized target units.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

import lipmono

__all__ = ["NetConfig", "FittedNet", "train_network"]


@dataclass(frozen=True)
class NetConfig:
    """Hyper-parameters of one network run."""

    hidden: tuple[int, ...]  # widths of the hidden layers
    lipschitz: float  # lambda of the monotonic residual, in standardized units
    learning_rate: float  # Adam step size
    epochs: int  # number of passes over the training rows
    batch_size: int = 256
    weight_decay: float = 0.0
    # Input map fitted on the training rows: "standard" (mean and standard
    # deviation), "none", or "quantile" (each feature through its empirical CDF,
    # then standardized). All three are non-decreasing per feature. Standardizing
    # BlogFeedback's sparse count features sends rare rows hundreds of standard
    # deviations out, where an l1-Lipschitz model cannot fit them.
    scaling: str = "standard"


@dataclass
class FittedNet:
    """A trained network with the scaling it was trained under."""

    model: nn.Module
    x_map: object  # fitted scikit-learn transformer, or None for no map
    y_mean: float
    y_scale: float
    task: str
    best_epoch: int
    history: list[float]
    fit_seconds: float

    def decision_function(self, X: np.ndarray, dtype=torch.float32) -> np.ndarray:
        """Return the logit (classification) or prediction (regression), shape ``(N,)``."""
        model = self.model.to(dtype).eval()
        x = torch.as_tensor(_apply(self.x_map, X), dtype=dtype)
        with torch.no_grad():
            out = torch.cat([model(chunk) for chunk in x.split(65536)]).squeeze(-1)
        self.model.float()
        values = out.double().numpy()
        if self.task == "regression":
            return values * self.y_scale + self.y_mean
        return values

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return class labels 0/1 or regression predictions, shape ``(N,)``."""
        scores = self.decision_function(X)
        return (scores > 0).astype(int) if self.task == "classification" else scores

    def n_parameters(self) -> int:
        """Number of trainable scalars."""
        return int(sum(p.numel() for p in self.model.parameters() if p.requires_grad))


def _fit_input_map(scaling: str, X_train: np.ndarray, seed: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer, StandardScaler

    if scaling == "none":
        return None
    if scaling == "standard":
        return StandardScaler().fit(X_train)
    if scaling == "quantile":
        quantiles = QuantileTransformer(
            n_quantiles=min(1000, len(X_train)), subsample=100_000, random_state=seed
        )
        return make_pipeline(quantiles, StandardScaler()).fit(X_train)
    raise ValueError(f"unknown scaling {scaling!r}; use 'standard', 'none' or 'quantile'")


def _apply(x_map, X: np.ndarray) -> np.ndarray:
    return X if x_map is None else x_map.transform(X)


def train_network(
    config: NetConfig,
    monotonic_cst: list[int],
    task: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    seed: int,
    score_epoch: Callable[[FittedNet], float] | None,
    patience: int | None = None,
) -> FittedNet:
    """Train a MonotonicMLP and keep the weights of the epoch with the best score.

    Parameters
    ----------
    config : NetConfig
        Architecture and optimizer settings.
    monotonic_cst : list of int
        One of -1, 0, 1 per column; all zeros gives the unconstrained network.
    task : {"classification", "regression"}
        Loss: binary cross-entropy on logits or mean squared error.
    X_train, y_train : numpy.ndarray
        Shapes ``(N, n_features)`` and ``(N,)``.
    seed : int
        Seeds the initialization and the batch order.
    score_epoch : callable or None
        Called with the network after each epoch; returns a score where higher is
        better. The literature protocol passes the test metric, the honest one a
        validation metric while it tunes. None trains all ``config.epochs`` and
        keeps the last weights.
    patience : int, optional
        Stop after this many epochs without a better score.

    Returns
    -------
    FittedNet
        With the weights of the best-scoring epoch and the score of every epoch.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_map = _fit_input_map(config.scaling, X_train, seed)
    if task == "regression":
        y_mean, y_scale = float(y_train.mean()), float(y_train.std())
    else:
        y_mean, y_scale = 0.0, 1.0
    x = torch.as_tensor(_apply(x_map, X_train), dtype=torch.float32)
    y = torch.as_tensor((y_train - y_mean) / y_scale, dtype=torch.float32)

    model = lipmono.MonotonicMLP(
        x.shape[1], list(config.hidden), monotonic_cst=list(monotonic_cst),
        lipschitz=config.lipschitz,
    )
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = nn.BCEWithLogitsLoss() if task == "classification" else nn.MSELoss()
    fitted = FittedNet(model, x_map, y_mean, y_scale, task, -1, [], 0.0)

    best_score, best_state, stale = -np.inf, None, 0
    start = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(config.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]).squeeze(-1), y[batch])
            loss.backward()
            optimizer.step()
        if score_epoch is None:
            continue
        score = float(score_epoch(fitted))
        fitted.history.append(score)
        if score > best_score:
            best_score, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            fitted.best_epoch = epoch
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    fitted.fit_seconds = time.perf_counter() - start
    if best_state is None:
        fitted.best_epoch = config.epochs - 1
    else:
        model.load_state_dict(best_state)
    return fitted
