"""Exception and warning classes raised by lipmono."""

__all__ = [
    "LipmonoError",
    "ConstraintError",
    "BudgetError",
    "CertificateError",
    "ModelFileError",
    "DataError",
    "ParameterError",
    "ExportError",
]


class LipmonoError(Exception):
    """Base class of every error that lipmono raises on purpose."""


class ConstraintError(LipmonoError, ValueError):
    """A monotonicity constraint is malformed or does not match the inputs."""


class BudgetError(LipmonoError, ValueError):
    """A Lipschitz budget is invalid or the layer budgets do not multiply to it."""


class CertificateError(LipmonoError, ValueError):
    """A certificate cannot be issued for a module (unknown layer, bound above budget)."""


class ModelFileError(LipmonoError, ValueError):
    """A model file is missing, truncated, corrupted, from a newer format or not a model."""


class DataError(LipmonoError, ValueError):
    """Input data is invalid: missing columns, non-finite values, wrong target type."""


class ParameterError(LipmonoError, ValueError):
    """A parameter is invalid: its type, its range, or its fit with another parameter."""


class ExportError(LipmonoError, ValueError):
    """A model cannot be exported: an unsupported layer, bad weights or a bad target."""
