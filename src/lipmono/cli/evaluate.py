"""Score a saved model on a labelled table.

Classifiers: accuracy, ROC AUC and log loss. Regressors: RMSE, MAE and R2.
"""

from __future__ import annotations

import argparse
import json

from ..errors import DataError
from ._io import load_model, read_table, split_target

__all__ = ["add_arguments", "run", "metrics"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by lipmono train")
    parser.add_argument("data", help="labelled table (.csv, or .parquet/.pq)")
    parser.add_argument(
        "--target", help="target column (default: the one the model was trained on)"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def metrics(estimator, features, target) -> dict[str, float]:
    """Return the task's metrics of ``estimator`` on ``features`` and the Series ``target``."""
    import numpy as np
    from sklearn import metrics as sk

    missing = int(target.isna().sum())
    if missing:
        raise DataError(
            f"the target column {target.name!r} has {missing} missing values; "
            "remove those rows to evaluate"
        )
    if not hasattr(estimator, "classes_"):
        prediction = estimator.predict(features)
        try:
            target = np.asarray(target, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(
                f"the target column {target.name!r} is not numeric, but the model is a regressor"
            ) from None
        return {
            "rmse": float(np.sqrt(sk.mean_squared_error(target, prediction))),
            "mae": float(sk.mean_absolute_error(target, prediction)),
            "r2": float(sk.r2_score(target, prediction)),
        }
    classes = estimator.classes_
    unknown = sorted(set(np.asarray(target).tolist()) - set(classes.tolist()), key=str)
    if unknown:
        raise DataError(
            f"the target has labels the model was not trained on: {unknown[:5]}; "
            f"known classes: {classes.tolist()}"
        )
    probabilities = estimator.predict_proba(features)
    result = {
        "accuracy": float(sk.accuracy_score(target, classes[probabilities.argmax(axis=1)])),
        "log_loss": float(sk.log_loss(target, probabilities, labels=classes)),
    }
    present = np.unique(target)
    if len(present) < 2:
        result["roc_auc"] = None  # undefined with a single class present
    elif len(classes) == 2:
        result["roc_auc"] = float(sk.roc_auc_score(target == classes[1], probabilities[:, 1]))
    else:
        result["roc_auc"] = float(
            sk.roc_auc_score(target, probabilities, multi_class="ovr", labels=classes)
        )
    return result


def run(args) -> int:
    estimator = load_model(args.model)
    target_name = args.target or getattr(estimator, "target_name_", None)
    if target_name is None:
        raise DataError("the model file does not name its target column; pass --target")
    features, target = split_target(read_table(args.data), target_name, args.data)
    scores = metrics(estimator, features, target)
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        for name, value in scores.items():
            print(f"{name}: {'undefined' if value is None else f'{value:.4f}'}")
    return 0
