"""The error that the export functions raise."""

from ..errors import LipmonoError

__all__ = ["ExportError"]


class ExportError(LipmonoError, ValueError):
    """A model cannot be exported: an unsupported layer, bad weights or a bad target."""
