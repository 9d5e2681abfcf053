"""The data sets shipped inside the package (no download, no data folder needed).

Only the preprocessed COMPAS split is bundled; ``data/compas/ATTRIBUTION.md``
states its provenance and licence.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["COMPAS_MONOTONIC", "COMPAS_TARGET", "compas_path", "load_compas"]

#: Target column of the COMPAS files (two-year recidivism, 0/1).
COMPAS_TARGET = "ground_truth"

#: Constraints used for COMPAS in the monotonic-network literature.
COMPAS_MONOTONIC = {
    "priors_count": "increasing",
    "juv_fel_count": "increasing",
    "juv_misd_count": "increasing",
    "juv_other_count": "increasing",
}


def compas_path(split: str = "train"):
    """Return the path of the bundled COMPAS ``split`` ("train" or "test")."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return resources.files("lipmono.datasets") / "data" / "compas" / f"{split}_compas.csv"


def load_compas(split: str = "train"):
    """Load the bundled COMPAS ``split``; return ``(X, y)`` as a DataFrame and a Series.

    ``X`` has the 13 feature columns, ``y`` the 0/1 target ``ground_truth``.
    """
    import pandas as pd

    with resources.as_file(compas_path(split)) as path:
        frame = pd.read_csv(path)
    return frame.drop(columns=[COMPAS_TARGET]), frame[COMPAS_TARGET]
