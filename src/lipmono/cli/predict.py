"""Apply a saved model to a table and write its predictions as CSV or Parquet.

The input needs exactly the feature columns the model was trained on; a column
named like the training target is ignored. Classifiers also write the
probability of each class (binary: of the second class).
"""

from __future__ import annotations

import argparse

from ._io import load_model, read_table, write_csv

__all__ = ["add_arguments", "run", "prediction_frame", "drop_target"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by lipmono train")
    parser.add_argument("data", help="input table (.csv, or .parquet/.pq)")
    parser.add_argument(
        "--out",
        default="-",
        help="file to write: Parquet for .parquet/.pq, else CSV (default: CSV on standard output)",
    )


def drop_target(estimator, frame):
    """Return ``frame`` without the training target's column, if it has one."""
    name = getattr(estimator, "target_name_", None)
    return frame.drop(columns=[name]) if name is not None and name in frame.columns else frame


def prediction_frame(estimator, features):
    """Return a DataFrame of predictions (and class probabilities for a classifier)."""
    import pandas as pd

    columns = {"prediction": estimator.predict(features)}
    if hasattr(estimator, "classes_"):
        probabilities = estimator.predict_proba(features)
        if len(estimator.classes_) == 2:
            columns["probability"] = probabilities[:, 1]
        else:
            for index, label in enumerate(estimator.classes_):
                columns[f"probability_{label}"] = probabilities[:, index]
    return pd.DataFrame(columns)


def run(args) -> int:
    estimator = load_model(args.model)
    features = drop_target(estimator, read_table(args.data))
    write_csv(prediction_frame(estimator, features), args.out)
    return 0
