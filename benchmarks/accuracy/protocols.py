"""The literature and honest protocols, for the networks and the tree baselines.

Literature protocol: the papers' fixed train/test split, fixed settings, and the
epoch (or number of trees) with the best *test* score, as most monotonic-network
papers report. This selection looks at the test set, so its numbers are optimistic.

Honest protocol: settings and the number of epochs (or trees) are chosen by
K-fold cross-validation on the training rows only, or by one 80/20 holdout when K
is 1. The chosen setting is then refit on all training rows for each seed, and
the test set is scored once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from .config import METRICS, DatasetSpec
from .estimator import FittedEstimator, fit_estimator
from .network import FittedNet, NetConfig, train_network
from .probes import violation_rate
from .trees import TREE_MODELS, TreeConfig, fit_trees

__all__ = ["MODELS", "HONEST_MODELS", "Row", "run_literature", "run_honest"]

logger = logging.getLogger(__name__)

#: Row order of every table: our network, the same network unconstrained, trees.
MODELS = ("lipmono", "lipmono_unconstrained", *TREE_MODELS)
#: The honest protocol adds lipmono's scikit-learn estimator with its own early stopping.
HONEST_MODELS = (*MODELS, "lipmono_estimator")


@dataclass
class Row:
    """Results of one model under one protocol, over all seeds."""

    model: str
    values: list[float] = field(default_factory=list)  # test metric per seed
    fit_seconds: list[float] = field(default_factory=list)
    selected: list[int] = field(default_factory=list)  # epochs or trees used, per seed
    violation_rates: list[float] = field(default_factory=list)
    size: int = 0
    size_unit: str = ""
    setting: dict = field(default_factory=dict)

    def summary(self) -> dict:
        values = np.asarray(self.values)
        return {
            "model": self.model,
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "per_seed": [float(v) for v in values],
            "size": self.size,
            "size_unit": self.size_unit,
            "fit_seconds_mean": float(np.mean(self.fit_seconds)),
            "selected_per_seed": self.selected,
            "violation_rate_max": float(max(self.violation_rates)),
            "setting": self.setting,
        }


@dataclass
class Data:
    """Arrays of one data set, with the probe pairs drawn from its test rows."""

    spec: DatasetSpec
    task: str
    cst: list[int]
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    probes: tuple


def _record(row: Row, fitted, data: Data, value: float, selected: int, seconds: float) -> None:
    row.values.append(value)
    row.fit_seconds.append(seconds)
    row.selected.append(int(selected))
    if isinstance(fitted, FittedNet):
        # float64 so that rounding cannot pass for a violation.
        scores = lambda X: fitted.decision_function(X, dtype=torch.float64)  # noqa: E731
        row.size, row.size_unit = fitted.n_parameters(), "parameters"
    elif isinstance(fitted, FittedEstimator):
        scores = fitted.decision_function
        row.size, row.size_unit = fitted.n_parameters(), "parameters"
    else:
        scores = fitted.decision_function
        row.size, row.size_unit = fitted.n_leaves(), "leaves"
    row.violation_rates.append(violation_rate(scores, *data.probes))


def _net_cst(model: str, data: Data) -> list[int]:
    return data.cst if model == "lipmono" else [0] * len(data.cst)


def run_literature(data: Data, seeds: list[int]) -> list[dict]:
    """Run every model with the best epoch or tree count picked on the test set."""
    metric = METRICS[data.spec.metric]
    rows = {model: Row(model) for model in MODELS}
    net = data.spec.literature_net
    tree_config = data.spec.tree_grid[-1]
    for seed in seeds:
        for model in MODELS[:2]:
            fitted = train_network(
                net, _net_cst(model, data), data.task, data.X_train, data.y_train, seed,
                lambda f: metric.score(data.y_test, f.predict(data.X_test)),
            )
            value = metric.compute(data.y_test, fitted.predict(data.X_test))
            _record(rows[model], fitted, data, value, fitted.best_epoch + 1, fitted.fit_seconds)
            rows[model].setting = asdict(net)
            logger.info("%s literature %s seed %d: %.4f", data.spec.name, model, seed, value)
        for library in TREE_MODELS:
            fitted = fit_trees(
                library, tree_config, data.cst, data.task, data.X_train, data.y_train,
                data.X_test, data.y_test, seed,
            )
            value = metric.compute(data.y_test, fitted.predict(data.X_test))
            _record(rows[library], fitted, data, value, fitted.n_rounds, fitted.fit_seconds)
            rows[library].setting = asdict(tree_config)
            logger.info("%s literature %s seed %d: %.4f", data.spec.name, library, seed, value)
    return [rows[model].summary() for model in MODELS]


def _folds(data: Data, seed: int):
    k = data.spec.honest_folds
    stratify = data.y_train if data.task == "classification" else None
    if k == 1:
        train, valid = train_test_split(
            np.arange(len(data.y_train)), test_size=0.2, random_state=seed, stratify=stratify
        )
        return [(train, valid)]
    splitter = (
        StratifiedKFold(k, shuffle=True, random_state=seed) if stratify is not None
        else KFold(k, shuffle=True, random_state=seed)
    )
    return list(splitter.split(data.X_train, data.y_train))


def _cross_validate(data: Data, candidates, fit_one) -> tuple[object, int, dict]:
    """Return the candidate with the best mean fold score and its mean best length."""
    results = {}
    for candidate in candidates:
        scores, lengths = [], []
        for train, valid in _folds(data, seed=0):
            best_score, best_length = fit_one(candidate, train, valid)
            scores.append(best_score)
            lengths.append(best_length)
        results[candidate] = (float(np.mean(scores)), max(1, int(round(np.mean(lengths)))))
    best = max(results, key=lambda c: results[c][0])
    table = {str(asdict(c)): {"cv_score": s, "length": n} for c, (s, n) in results.items()}
    return best, results[best][1], table


def _tune_net(data: Data, model: str) -> tuple[NetConfig, int, dict]:
    metric = METRICS[data.spec.metric]
    cst = _net_cst(model, data)

    def fit_one(config: NetConfig, train, valid):
        X_valid, y_valid = data.X_train[valid], data.y_train[valid]
        fitted = train_network(
            config, cst, data.task, data.X_train[train], data.y_train[train], 0,
            lambda f: metric.score(y_valid, f.predict(X_valid)),
            patience=max(10, config.epochs // 5),
        )
        return max(fitted.history), fitted.best_epoch + 1

    return _cross_validate(data, data.spec.honest_nets, fit_one)


def _tune_trees(data: Data, library: str) -> tuple[TreeConfig, int, dict]:
    def fit_one(config: TreeConfig, train, valid):
        fitted = fit_trees(
            library, config, data.cst, data.task, data.X_train[train], data.y_train[train],
            data.X_train[valid], data.y_train[valid], 0,
        )
        return max(fitted.history), fitted.n_rounds

    return _cross_validate(data, data.spec.tree_grid, fit_one)


def run_honest(data: Data, seeds: list[int]) -> tuple[list[dict], dict]:
    """Choose settings on the training rows, refit per seed, score the test set once."""
    metric = METRICS[data.spec.metric]
    rows, selection = {model: Row(model) for model in HONEST_MODELS}, {}
    chosen_nets = {}
    for model in MODELS:
        is_net = model.startswith("lipmono")
        config, length, table = _tune_net(data, model) if is_net else _tune_trees(data, model)
        chosen_nets[model] = config
        selection[model] = {"chosen": asdict(config), "length": length, "candidates": table}
        rows[model].setting = {**asdict(config), "length": length}
        logger.info("%s honest %s: chose %s with length %d", data.spec.name, model, config, length)
        for seed in seeds:
            if is_net:
                fixed = replace(config, epochs=length)
                fitted = train_network(
                    fixed, _net_cst(model, data), data.task, data.X_train, data.y_train, seed,
                    None,
                )
                seconds = fitted.fit_seconds
            else:
                fixed = replace(config, n_estimators=length)
                fitted = fit_trees(
                    model, fixed, data.cst, data.task, data.X_train, data.y_train,
                    None, None, seed,
                )
                seconds = fitted.fit_seconds
            value = metric.compute(data.y_test, fitted.predict(data.X_test))
            _record(rows[model], fitted, data, value, length, seconds)
            logger.info("%s honest %s seed %d: %.4f", data.spec.name, model, seed, value)

    # The estimator gets the network's chosen architecture and stops early on its own
    # validation split, so it needs no epoch count from the cross-validation.
    row = rows["lipmono_estimator"]
    row.setting = asdict(chosen_nets["lipmono"])
    for seed in seeds:
        fitted = fit_estimator(
            chosen_nets["lipmono"], data.cst, data.task, data.X_train, data.y_train, seed
        )
        value = metric.compute(data.y_test, fitted.predict(data.X_test))
        _record(row, fitted, data, value, fitted.n_epochs(), fitted.fit_seconds)
        logger.info("%s honest lipmono_estimator seed %d: %.4f", data.spec.name, seed, value)
    return [rows[model].summary() for model in HONEST_MODELS], selection
