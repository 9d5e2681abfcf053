"""Data sets: loaders for real tabular benchmarks, the bundled demo data and simulators.

Nothing here downloads: loaders read files shipped with the package or found in a
data folder the caller names.
"""

from .tabular import (
    BLOGFEEDBACK_MONOTONE_COLUMNS,
    LOAN_FEATURE_COUNT,
    TabularSplit,
    load_auto_mpg,
    load_blogfeedback,
    load_compas,
    load_heart_disease,
    load_loan_defaulter,
)
from .trigger import make_trigger_candidates

__all__: list[str] = [
    "BLOGFEEDBACK_MONOTONE_COLUMNS",
    "LOAN_FEATURE_COUNT",
    "TabularSplit",
    "load_auto_mpg",
    "load_blogfeedback",
    "load_compas",
    "load_heart_disease",
    "load_loan_defaulter",
    "make_trigger_candidates",
]
