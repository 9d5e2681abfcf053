"""lipmono: provably Lipschitz-bounded and monotonic neural networks in PyTorch."""

from .affine import OutputAffine, Standardize
from .certify import declared_bound, empirical_lipschitz, lipschitz_bound
from .constraints import parse_monotonic_cst
from .errors import (
    BudgetError,
    CertificateError,
    ConstraintError,
    DataError,
    LipmonoError,
    ModelFileError,
)
from .layers import GroupSort, LipschitzLinear, LipschitzNormalization
from .models import LipschitzMLP, MonotonicMLP, split_budget
from .monotonic import MonotonicResidual

__version__ = "0.1.0"

# Names imported on first use: the estimators and model files need scikit-learn and
# pandas, which would make `import lipmono` slow for users of the torch layers alone.
_LAZY = {
    "MonotonicClassifier": "lipmono.estimators",
    "MonotonicRegressor": "lipmono.estimators",
    "audit": "lipmono.audit",
    "load": "lipmono.serialization",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lipmono' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "BudgetError",
    "CertificateError",
    "ConstraintError",
    "DataError",
    "GroupSort",
    "LipmonoError",
    "LipschitzLinear",
    "LipschitzMLP",
    "LipschitzNormalization",
    "ModelFileError",
    "MonotonicClassifier",
    "MonotonicMLP",
    "MonotonicRegressor",
    "MonotonicResidual",
    "OutputAffine",
    "Standardize",
    "audit",
    "declared_bound",
    "empirical_lipschitz",
    "lipschitz_bound",
    "load",
    "parse_monotonic_cst",
    "split_budget",
]
