"""Evidence that a fitted model behaves: monotonicity checks, certificates and robustness radii.

:func:`audit` runs every check that applies to a model and returns an
:class:`AuditResult`; with ``out_dir`` it also writes a Markdown report with plots.
The monotonicity checks work on any model with ``predict`` or ``predict_proba``;
the Lipschitz certificate and the certified radii need a lipmono estimator.
matplotlib is imported only when a report is written.

``lipmono.audit`` names both this package and the :func:`audit` function. Once the
package is imported, Python binds ``lipmono.audit`` to the package, so the package
itself is callable and runs :func:`audit`: ``lipmono.audit(model, X)`` works either way.
"""

import sys
import types

from .core import audit, is_lipmono_model
from .probes import check_monotonicity
from .radius import audit_certificate, audit_radius, certified_radius, module_radius
from .report import render_markdown, write_report
from .result import (
    AuditResult,
    CertificateAudit,
    CheckSummary,
    MonotonicityAudit,
    RadiusAudit,
    SweepCurves,
    ViolationExample,
)

__all__ = [
    "AuditResult",
    "CertificateAudit",
    "CheckSummary",
    "MonotonicityAudit",
    "RadiusAudit",
    "SweepCurves",
    "ViolationExample",
    "audit",
    "audit_certificate",
    "audit_radius",
    "certified_radius",
    "check_monotonicity",
    "is_lipmono_model",
    "module_radius",
    "render_markdown",
    "write_report",
]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
