"""Gradient-boosted tree baselines with monotone constraints.

XGBoost (``monotone_constraints``), LightGBM (``monotone_constraints``) and
scikit-learn's HistGradientBoosting (``monotonic_cst``) all take one -1/0/1 per
feature, the same convention as lipmono.

Size is counted as leaves summed over all trees: each leaf stores one value, and
each split node stores a feature index and a threshold (split nodes = leaves - 1
per tree, so nodes = 2 * leaves - trees).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TREE_MODELS", "TreeConfig", "FittedTrees", "fit_trees"]

TREE_MODELS = ("xgboost", "lightgbm", "hist_gradient_boosting")


@dataclass(frozen=True)
class TreeConfig:
    """Hyper-parameters shared by the three libraries."""

    max_leaves: int = 31  # leaves per tree (XGBoost: grows leaf-wise to this many)
    learning_rate: float = 0.05
    n_estimators: int = 500  # upper bound; the protocols pick the number of rounds
    min_child_samples: int = 20
    l2: float = 1.0  # L2 penalty on leaf values


@dataclass
class FittedTrees:
    """A fitted booster, truncated to ``n_rounds`` trees for prediction."""

    library: str
    task: str
    model: object
    n_rounds: int
    fit_seconds: float
    history: list[float] = field(default_factory=list)

    def _raw(self, X: np.ndarray, rounds: int) -> np.ndarray:
        if self.library == "xgboost":
            return self.model.predict(
                X, output_margin=True, iteration_range=(0, rounds)
            ).astype(np.float64)
        if self.library == "lightgbm":
            return self.model.predict(X, raw_score=True, num_iteration=rounds).astype(np.float64)
        for k, scores in enumerate(_staged_hgb(self.model, self.task, X), start=1):
            if k == rounds:
                return scores
        raise ValueError(f"the model has fewer than {rounds} trees")

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Return the margin (classification) or prediction (regression), shape ``(N,)``."""
        return self._raw(X, self.n_rounds)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return class labels 0/1 or regression predictions, shape ``(N,)``."""
        scores = self.decision_function(X)
        return (scores > 0).astype(int) if self.task == "classification" else scores

    def n_leaves(self) -> int:
        """Leaves summed over the first ``n_rounds`` trees."""
        return int(sum(_leaves_per_tree(self)[: self.n_rounds]))

    def n_nodes(self) -> int:
        """Split nodes plus leaves over the first ``n_rounds`` trees."""
        leaves = _leaves_per_tree(self)[: self.n_rounds]
        return int(2 * sum(leaves) - len(leaves))


def _staged_hgb(model, task: str, X: np.ndarray):
    staged = (
        model.staged_decision_function(X) if task == "classification" else model.staged_predict(X)
    )
    for scores in staged:
        yield np.asarray(scores, dtype=np.float64).ravel()


def _score(task: str, y: np.ndarray, scores: np.ndarray) -> float:
    if task == "classification":
        return float(((scores > 0).astype(int) == y).mean())
    return -float(((scores - y) ** 2).mean())


def _leaves_per_tree(fitted: FittedTrees) -> list[int]:
    if fitted.library == "xgboost":
        dumps = fitted.model.get_booster().get_dump(dump_format="json")
        return [_count_xgb_leaves(json.loads(tree)) for tree in dumps]
    if fitted.library == "lightgbm":
        info = fitted.model.booster_.dump_model()["tree_info"]
        return [tree["num_leaves"] for tree in info]
    return [
        int(predictor.nodes["is_leaf"].sum())
        for stage in fitted.model._predictors
        for predictor in stage
    ]


def _count_xgb_leaves(node: dict) -> int:
    if "leaf" in node:
        return 1
    return sum(_count_xgb_leaves(child) for child in node["children"])


def _make_model(library: str, config: TreeConfig, cst: list[int], task: str, seed: int):
    classify = task == "classification"
    if library == "xgboost":
        import xgboost

        cls = xgboost.XGBClassifier if classify else xgboost.XGBRegressor
        return cls(
            n_estimators=config.n_estimators, learning_rate=config.learning_rate,
            max_leaves=config.max_leaves, max_depth=0, grow_policy="lossguide",
            tree_method="hist", min_child_weight=1.0, reg_lambda=config.l2,
            subsample=0.8, monotone_constraints=tuple(cst), random_state=seed, n_jobs=1,
            eval_metric="error" if classify else "rmse",
        )
    if library == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
        return cls(
            n_estimators=config.n_estimators, learning_rate=config.learning_rate,
            num_leaves=config.max_leaves, min_child_samples=config.min_child_samples,
            reg_lambda=config.l2, subsample=0.8, subsample_freq=1,
            monotone_constraints=list(cst), random_state=seed, n_jobs=1, verbose=-1,
        )
    if library == "hist_gradient_boosting":
        from sklearn import ensemble

        cls = (
            ensemble.HistGradientBoostingClassifier if classify
            else ensemble.HistGradientBoostingRegressor
        )
        return cls(
            max_iter=config.n_estimators, learning_rate=config.learning_rate,
            max_leaf_nodes=config.max_leaves, min_samples_leaf=config.min_child_samples,
            l2_regularization=config.l2, monotonic_cst=list(cst), early_stopping=False,
            random_state=seed,
        )
    raise ValueError(f"unknown tree library {library!r}; use one of {TREE_MODELS}")


def _eval_curve(library: str, model, task: str, X_eval, y_eval) -> list[float]:
    classify = task == "classification"
    if library == "xgboost":
        curve = next(iter(model.evals_result()["validation_0"].values()))
        return [1.0 - e if classify else -e * e for e in curve]
    if library == "lightgbm":
        curve = model.evals_result_["valid_0"]["binary_error" if classify else "l2"]
        return [1.0 - e if classify else -e for e in curve]
    return [_score(task, y_eval, s) for s in _staged_hgb(model, task, X_eval)]


def fit_trees(
    library: str,
    config: TreeConfig,
    monotonic_cst: list[int],
    task: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_eval: np.ndarray | None,
    y_eval: np.ndarray | None,
    seed: int,
) -> FittedTrees:
    """Fit ``config.n_estimators`` trees and keep the round count that scores best on the eval set.

    The score is accuracy (classification) or minus the mean squared error
    (regression) on ``X_eval, y_eval``, after every round. The literature protocol
    passes the test set, the honest protocol a validation split of the training
    rows. Without an eval set all trees are kept. Rows are subsampled at 80% per
    tree for XGBoost and LightGBM; HistGradientBoosting has no row subsampling, so
    its seed only breaks ties.
    """
    model = _make_model(library, config, monotonic_cst, task, seed)
    start = time.perf_counter()
    if X_eval is None or library == "hist_gradient_boosting":
        model.fit(X_train, y_train)
    elif library == "xgboost":
        model.fit(X_train, y_train, eval_set=[(X_eval, y_eval)], verbose=False)
    else:
        metric = "binary_error" if task == "classification" else "l2"
        model.fit(X_train, y_train, eval_X=X_eval, eval_y=y_eval, eval_metric=metric)
    seconds = time.perf_counter() - start
    if X_eval is None:
        return FittedTrees(library, task, model, config.n_estimators, seconds)
    history = _eval_curve(library, model, task, X_eval, y_eval)
    best = int(np.argmax(history)) + 1
    return FittedTrees(library, task, model, best, seconds, history)
