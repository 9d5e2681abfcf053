"""The trigger classifiers: monotonic Lipschitz network, its unconstrained twins and trees.

Every model is returned as a :class:`Scorer`, a callable that maps a feature
table ``(N, n_features)`` to a score ``(N,)`` where larger means more signal-like.
Networks return their logit, trees their raw decision function, so scores never
saturate the way probabilities do in float32.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from torch import nn

import lipmono

__all__ = [
    "NetworkSettings",
    "Scorer",
    "fit_boosted_trees",
    "fit_lipschitz_network",
    "fit_unconstrained_network",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkSettings:
    """Architecture and optimizer settings shared by every network in the example."""

    # Two hidden layers of 64, each followed by MaxMin (GroupSort with groups of 2).
    hidden_layer_sizes: tuple[int, ...] = (64, 64)
    # Epoch cap; early stopping on a 10 % validation split usually ends training sooner.
    max_iter: int = 30
    # Large batches keep an epoch of 10^5 candidates at a few hundred steps on a CPU.
    batch_size: int = 1024
    learning_rate: float = 3e-3
    n_iter_no_change: int = 4


@dataclass
class Scorer:
    """A fitted model: a name, a score function on feature tables and its training time."""

    name: str
    features: list[str]
    score_table: Callable[[pd.DataFrame], np.ndarray]
    seconds: float
    model: object = None

    def __call__(self, table: pd.DataFrame) -> np.ndarray:
        return self.score_table(table[self.features])


def fit_lipschitz_network(
    table: pd.DataFrame,
    y: np.ndarray,
    *,
    monotonic: dict[str, int] | None,
    lipschitz: float,
    settings: NetworkSettings,
    seed: int,
    name: str,
) -> Scorer:
    """Fit a monotonic Lipschitz network; ``monotonic=None`` leaves it unconstrained.

    Without constraints the network keeps its Lipschitz bound ``lipschitz`` but
    may rise or fall in any direction.
    """
    estimator = lipmono.MonotonicClassifier(
        monotonic_cst=monotonic,
        lipschitz=lipschitz,
        hidden_layer_sizes=settings.hidden_layer_sizes,
        max_iter=settings.max_iter,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        n_iter_no_change=settings.n_iter_no_change,
        random_state=seed,
    )
    start = time.perf_counter()
    estimator.fit(table, y)
    seconds = time.perf_counter() - start
    logger.info("%s: %d epochs in %.1f s", name, estimator.n_iter_, seconds)

    def score(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(estimator.decision_function(frame), dtype=np.float64)

    return Scorer(name, list(table.columns), score, seconds, estimator)


def _plain_network(n_inputs: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), lipmono.GroupSort(2)]
        width = size
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def fit_unconstrained_network(
    table: pd.DataFrame, y: np.ndarray, *, settings: NetworkSettings, seed: int, name: str
) -> Scorer:
    """Fit the same GroupSort network with plain dense layers, so no bound and no monotonicity."""
    torch.manual_seed(seed)
    network = _plain_network(table.shape[1], settings.hidden_layer_sizes)
    return _fit_torch(network, table, y, settings=settings, seed=seed, name=name)


def _fit_torch(
    network: nn.Module,
    table: pd.DataFrame,
    y: np.ndarray,
    *,
    settings: NetworkSettings,
    seed: int,
    name: str,
) -> Scorer:
    """Train ``network`` the way the estimators do.

    Inputs are standardized, Adam minimizes binary cross entropy on the logit,
    and training stops when the loss on a 10 % validation split stops improving.
    """
    X = table.to_numpy(np.float32)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_validation = max(1, len(X) // 10)
    validation, training = order[:n_validation], order[n_validation:]
    Xs = torch.as_tensor((X - mean) / scale)
    target = torch.as_tensor(np.asarray(y, dtype=np.float32))
    n_batches = max(1, len(training) // settings.batch_size)

    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    best_loss, best_state, stale, epochs = np.inf, None, 0, 0
    start = time.perf_counter()
    for _epoch in range(settings.max_iter):
        epochs += 1
        network.train()
        for batch in np.array_split(rng.permutation(training), n_batches):
            optimizer.zero_grad()
            loss = loss_fn(network(Xs[batch]).squeeze(-1), target[batch])
            loss.backward()
            optimizer.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(network(Xs[validation]).squeeze(-1), target[validation]))
        if val_loss < best_loss - 1e-4:
            best_loss, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.n_iter_no_change:
                break
    network.load_state_dict(best_state)
    seconds = time.perf_counter() - start
    logger.info("%s: %d epochs in %.1f s", name, epochs, seconds)

    def score(frame: pd.DataFrame) -> np.ndarray:
        inputs = torch.as_tensor((frame.to_numpy(np.float32) - mean) / scale)
        with torch.no_grad():
            return network(inputs).squeeze(-1).double().numpy()

    return Scorer(name, list(table.columns), score, seconds, network)


def fit_boosted_trees(table: pd.DataFrame, y: np.ndarray, *, seed: int, name: str) -> Scorer:
    """Fit scikit-learn's histogram gradient boosting with early stopping on 10 % of the rows."""
    model = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.1, early_stopping=True, random_state=seed
    )
    start = time.perf_counter()
    model.fit(table, y)
    seconds = time.perf_counter() - start
    logger.info("%s: %d trees in %.1f s", name, model.n_iter_, seconds)

    def score(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.decision_function(frame), dtype=np.float64)

    return Scorer(name, list(table.columns), score, seconds, model)
