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
    "MonotonicMLP",
    "MonotonicResidual",
    "OutputAffine",
    "Standardize",
    "declared_bound",
    "empirical_lipschitz",
    "lipschitz_bound",
    "parse_monotonic_cst",
    "split_budget",
]
