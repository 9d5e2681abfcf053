"""Data sets, metrics, settings and published results of the accuracy benchmark."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from lipmono import datasets

from .network import NetConfig
from .trees import TreeConfig

__all__ = ["Metric", "Published", "DatasetSpec", "SPECS", "quick_spec", "METRICS"]


@dataclass(frozen=True)
class Metric:
    """A test metric and how it maps to a score where higher is better."""

    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], float]

    def score(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        value = self.compute(y_true, y_pred)
        return value if self.higher_is_better else -value


METRICS = {
    "accuracy": Metric("accuracy (%)", True, lambda y, p: 100.0 * float(np.mean(y == p))),
    "rmse": Metric("RMSE", False, lambda y, p: float(np.sqrt(np.mean((y - p) ** 2)))),
    "mse": Metric("MSE", False, lambda y, p: float(np.mean((y - p) ** 2))),
}


@dataclass(frozen=True)
class Published:
    """A published test result and where it was reported."""

    value: float
    model: str
    source: str


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the harness needs to run one data set."""

    name: str
    loader: Callable
    metric: str
    literature_net: NetConfig  # fixed settings, best epoch picked on the test set
    honest_nets: tuple[NetConfig, ...]  # candidates; the choice uses training rows only
    honest_folds: int  # K of the K-fold split of the training rows (1: one 80/20 holdout)
    tree_grid: tuple[TreeConfig, ...] = (TreeConfig(),)
    published: tuple[Published, ...] = ()
    goals: dict = field(default_factory=dict)  # protocol -> target value of the metric
    max_train_rows: int | None = None  # subsample the training rows (quick mode)
    status: str = "run"  # "not run" when the data is not available
    reason: str = ""


_NOLTE = "Nolte et al. 2023, Expressive Monotonic Neural Networks (ICLR)"
_BEST = "best result reported in the monotonic-network literature, source paper not re-checked"
_TREES = (TreeConfig(max_leaves=7), TreeConfig(max_leaves=31))

SPECS: dict[str, DatasetSpec] = {
    "compas": DatasetSpec(
        name="compas",
        loader=datasets.load_compas,
        metric="accuracy",
        literature_net=NetConfig((32, 32), 2.0, 1e-3, 40, batch_size=64),
        honest_nets=(
            NetConfig((32, 32), 1.0, 1e-3, 40, batch_size=64),
            NetConfig((32, 32), 2.0, 1e-3, 40, batch_size=64),
            NetConfig((32, 32), 2.0, 1e-3, 40, batch_size=64, scaling="quantile"),
        ),
        honest_folds=3,
        tree_grid=_TREES,
        published=(
            Published(69.3, "LMN", _NOLTE),
            Published(
                69.5, "constrained monotonic network",
                "Runje & Shankaranarayana 2023, Constrained Monotonic Neural Networks (ICML)",
            ),
        ),
        goals={"literature": 69.6, "honest": 68.6},
    ),
    "blogfeedback": DatasetSpec(
        name="blogfeedback",
        loader=datasets.load_blogfeedback,
        metric="rmse",
        literature_net=NetConfig((64, 64), 0.5, 1e-3, 30, batch_size=256, scaling="quantile"),
        honest_nets=(
            NetConfig((64, 64), 0.25, 1e-3, 30, batch_size=256, scaling="quantile"),
            NetConfig((64, 64), 0.5, 1e-3, 30, batch_size=256, scaling="quantile"),
        ),
        honest_folds=1,
        tree_grid=(TreeConfig(max_leaves=31, learning_rate=0.1, n_estimators=300),),
        published=(
            Published(0.160, "LMN", _NOLTE),
            Published(0.149, "best reported", _BEST),
        ),
        goals={"literature": 0.148},
    ),
    "auto_mpg": DatasetSpec(
        name="auto_mpg",
        loader=datasets.load_auto_mpg,
        metric="mse",
        literature_net=NetConfig((32, 32), 1.0, 3e-3, 150, batch_size=16, scaling="quantile"),
        honest_nets=(
            NetConfig((32, 32), 1.0, 3e-3, 150, batch_size=16),
            NetConfig((32, 32), 0.5, 3e-3, 150, batch_size=16, scaling="quantile"),
            NetConfig((32, 32), 1.0, 3e-3, 150, batch_size=16, scaling="quantile"),
        ),
        honest_folds=3,
        tree_grid=_TREES,
        published=(
            Published(7.58, "LMN", _NOLTE + " (random 80/20 splits, not the COMET split)"),
            Published(7.35, "best reported, COMET split", _BEST),
        ),
        goals={"literature": 7.3, "honest": 9.5},
    ),
    "heart_disease": DatasetSpec(
        name="heart_disease",
        loader=datasets.load_heart_disease,
        metric="accuracy",
        literature_net=NetConfig((32, 32), 0.5, 3e-3, 60, batch_size=16),
        honest_nets=(
            NetConfig((32, 32), 0.5, 3e-3, 60, batch_size=16),
            NetConfig((32, 32), 1.0, 3e-3, 60, batch_size=16),
        ),
        honest_folds=3,
        tree_grid=_TREES,
        published=(Published(89.6, "LMN", _NOLTE),),
        goals={"literature": 90.0, "honest": 83.5},
    ),
    "loan_defaulter": DatasetSpec(
        name="loan_defaulter",
        loader=datasets.load_loan_defaulter,
        metric="accuracy",
        literature_net=NetConfig((32, 32), 1.0, 3e-3, 20, batch_size=1024),
        honest_nets=(NetConfig((32, 32), 1.0, 3e-3, 20, batch_size=1024),),
        honest_folds=1,
        status="not run",
        reason="no copy of Liu et al.'s preprocessed.csv was available; the loader is "
        "tested on a generated file in the published layout",
    ),
}


def quick_spec(spec: DatasetSpec, epochs: int = 3) -> DatasetSpec:
    """Shrink a spec for the quick mode: few epochs, one candidate, few trees."""

    def shrink(net: NetConfig) -> NetConfig:
        return replace(net, epochs=min(net.epochs, epochs))

    return replace(
        spec,
        literature_net=shrink(spec.literature_net),
        honest_nets=(shrink(spec.honest_nets[0]),),
        honest_folds=min(spec.honest_folds, 2),
        tree_grid=(replace(spec.tree_grid[0], n_estimators=20),),
        max_train_rows=3000 if spec.name == "blogfeedback" else None,
    )
