"""The ``audit`` entry point: run every check that applies to a model and collect the results."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..errors import CertificateError, DataError
from .probes import FeatureTable, check_monotonicity, resolve_constraints
from .radius import audit_certificate, audit_radius
from .result import AuditResult
from .verdict import verdict_lines

__all__ = ["audit", "is_lipmono_model"]

logger = logging.getLogger(__name__)


def is_lipmono_model(model) -> bool:
    """Return whether ``model`` is a fitted lipmono estimator with a certificate."""
    return (
        type(model).__module__.startswith("lipmono")
        and hasattr(model, "to_torch")
        and hasattr(model, "certificate_")
    )


def _task(model) -> str:
    if hasattr(model, "classes_") or hasattr(model, "predict_proba"):
        return "classification"
    return "regression"


def _roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    # Mann-Whitney form of the area under the ROC curve; tied scores share their mean rank.
    positive = y_true == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    mean_ranks = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = mean_ranks[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _performance(model, X, y, task: str) -> dict[str, float]:
    y = np.asarray(y).reshape(-1)
    prediction = np.asarray(model.predict(X)).reshape(-1)
    if prediction.shape != y.shape:
        raise DataError(f"y has {y.size} rows but X has {prediction.size}; pass matching rows")
    if task == "classification":
        metrics = {"accuracy": float(np.mean(prediction == y))}
        classes = getattr(model, "classes_", None)
        if hasattr(model, "predict_proba") and classes is not None and len(classes) == 2:
            score = np.asarray(model.predict_proba(X))[:, 1]
            metrics["roc_auc"] = _roc_auc((y == classes[1]).astype(int), score)
        return metrics
    error = prediction.astype(np.float64) - y.astype(np.float64)
    variance = float(np.var(y.astype(np.float64)))
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1.0 - float(np.mean(error**2)) / variance if variance > 0 else float("nan"),
    }


def _is_guaranteed(model, monotonic_cst, names) -> bool:
    """Return whether the lipmono ``model`` enforces every requested constraint by construction."""
    if not is_lipmono_model(model):
        return False
    own = resolve_constraints(model, None, names)
    if monotonic_cst is None:
        return True
    requested = resolve_constraints(model, monotonic_cst, names)
    return bool(np.all((requested == 0) | (requested == own)))


def audit(
    model,
    X,
    y=None,
    *,
    monotonic_cst=None,
    response="auto",
    out_dir=None,
    n_pairs: int = 2000,
    n_anchors: int = 200,
    n_grid: int = 25,
    tolerance: float | None = None,
    seed: int = 0,
) -> AuditResult:
    """Audit a fitted model: monotonicity, and for lipmono models its certificate and radii.

    Parameters
    ----------
    model : object
        A fitted lipmono estimator, or any model with ``predict`` (and
        ``predict_proba`` for classifiers) such as a scikit-learn, XGBoost or
        LightGBM model. For models that are not lipmono's only the monotonicity
        checks and the performance apply.
    X : array-like of shape (N, n_features) or pandas.DataFrame
        Data rows in the form ``model.predict`` accepts, typically a test set.
    y : array-like of shape (N,), optional
        Targets, to report accuracy and ROC AUC or RMSE, MAE and R^2 next to the checks.
    monotonic_cst : list, dict or None
        Expected direction per feature: -1/0/1 by position or a dict by column name.
        ``None`` uses the model's own ``monotonic_cst``; without any, the
        monotonicity checks are skipped.
    response : {"auto", "predict_proba", "decision_function", "predict"} or callable
        The output whose monotonicity is checked. ``"auto"`` is the probability of
        the positive class for classifiers and ``predict`` otherwise.
    out_dir : str or path-like, optional
        When given, the report, its plots and ``audit.json`` are written there
        (see :func:`lipmono.audit.write_report`).
    n_pairs, n_anchors, n_grid, tolerance, seed
        Passed to :func:`lipmono.audit.check_monotonicity`.

    Returns
    -------
    AuditResult
        ``passed`` is false when a constraint is violated or a certificate fails.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> import numpy as np, lipmono
    >>> X = np.random.default_rng(0).normal(size=(200, 2)); y = (X[:, 0] - X[:, 1] > 0)
    >>> result = lipmono.audit(LogisticRegression().fit(X, y), X, monotonic_cst=[1, -1])
    >>> result.monotonicity.passed
    True
    """
    start = time.perf_counter()
    is_lipmono = is_lipmono_model(model)
    task = _task(model)
    feature_names = None if hasattr(X, "columns") else getattr(model, "feature_names_in_", None)
    table = FeatureTable(X, feature_names)
    settings = {
        "n_pairs": n_pairs, "n_anchors": n_anchors, "n_grid": n_grid,
        "tolerance": tolerance, "seed": seed,
        "response": response if isinstance(response, str) else "custom",
    }
    failures: list[str] = []

    monotonicity = None
    declared = monotonic_cst is not None or getattr(model, "monotonic_cst", None) is not None
    if declared and resolve_constraints(model, monotonic_cst, table.names).any():
        monotonicity = check_monotonicity(
            model, table.data, monotonic_cst, response=response, feature_names=table.names,
            n_pairs=n_pairs, n_anchors=n_anchors, n_grid=n_grid, tolerance=tolerance,
            guaranteed=_is_guaranteed(model, monotonic_cst, table.names), seed=seed,
        )
    else:
        logger.info("monotonicity checks skipped: no feature has a monotonicity constraint")

    certificate = radius = None
    notes: list[str] = []
    n_classes = len(getattr(model, "classes_", ()))
    if is_lipmono and n_classes > 2:
        notes.append(
            f"Lipschitz certificate: not checked. The model has {n_classes} outputs, and the "
            "certificate audit covers one-output models (regression, binary classification)."
        )
    elif is_lipmono:
        try:
            encoded = model.encode(table.data)
            certificate, logits = audit_certificate(model, encoded, seed=seed)
        except CertificateError as error:
            logger.error("certificate check failed: %s", error)
            failures.append(str(error))
        else:
            if n_classes == 2:
                radius = audit_radius(certificate, logits)

    performance = _performance(model, table.data, y, task) if y is not None else None
    history = getattr(model, "history_", None)
    history = [dict(row) for row in history] if history else None
    passed = not failures and (monotonicity is None or monotonicity.passed)
    result = AuditResult(
        model_type=type(model).__name__,
        is_lipmono=is_lipmono,
        task=task,
        n_samples=table.n_rows,
        n_features=table.n_features,
        monotonicity=monotonicity,
        certificate=certificate,
        radius=radius,
        performance=performance,
        history=history,
        passed=passed,
        verdict=[],
        runtime_seconds=0.0,
        settings=settings,
    )
    result.verdict = verdict_lines(result, failures, notes)
    result.runtime_seconds = time.perf_counter() - start
    if out_dir is not None:
        from .report import write_report

        write_report(result, out_dir)
    return result
