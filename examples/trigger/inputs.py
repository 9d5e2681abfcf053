"""Model inputs built from the simulated candidates, and the monotonic constraints on them.

Transverse momenta, masses and the vertex chi2 enter as logarithms. A Lipschitz
network's logit moves by at most a few times lambda per standard deviation of
an input. Corrected mass runs to 1000 GeV while b hadrons sit below 5.3 GeV, so
on a linear scale its informative range would be a small part of one standard
deviation, where the network cannot follow it. Logarithms are increasing, so
every monotonic constraint keeps its meaning.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FOUR_INPUTS", "INPUTS", "MONOTONIC", "model_inputs"]

INPUTS = [
    "log_sum_pt",
    "log_min_pt",
    "log_min_ip_chi2",
    "log_fd_chi2",
    "log_vertex_chi2",
    "doca",
    "log_mcorr",
    "log_pt",
]

# Larger displacement and harder tracks must never make a candidate less signal-like.
MONOTONIC = {"log_min_ip_chi2": 1, "log_fd_chi2": 1, "log_min_pt": 1, "log_sum_pt": 1}

# The compact model that is exported to C.
FOUR_INPUTS = ["log_fd_chi2", "log_sum_pt", "log_vertex_chi2", "log_min_ip_chi2"]


def model_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the ``(N, 8)`` table of :data:`INPUTS` for simulated candidates ``frame``."""
    return pd.DataFrame(
        {
            "log_sum_pt": np.log(frame["sum_pt"]),
            "log_min_pt": np.log(frame["min_pt"]),
            "log_min_ip_chi2": frame["log_min_ip_chi2"],
            "log_fd_chi2": frame["log_fd_chi2"],
            # log1p because a good vertex has chi2 near zero, where log diverges.
            "log_vertex_chi2": np.log1p(frame["vertex_chi2"]),
            "doca": frame["doca"],
            "log_mcorr": np.log(frame["mcorr"]),
            "log_pt": np.log(frame["pt"]),
        },
        index=frame.index,
    )
