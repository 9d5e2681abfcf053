"""The facts every export carries: features, constraints, budget, norm chain, certificate."""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from .. import functional as F_lip
from ..certify import CHAIN_NORM_PAIRS, lipschitz_bound
from ..errors import ExportError
from ..layers import LipschitzLinear
from ..monotonic import MonotonicResidual
from .fold import FoldedNetwork, fold, split_affine

__all__ = [
    "EXPORT_FORMAT_VERSION",
    "resolve_model",
    "export_metadata",
    "folded_bound",
    "metadata_strings",
]

#: Version of the metadata layout written into ONNX, C and NumPy exports.
EXPORT_FORMAT_VERSION = 1

# Chain name for the operator norm of a network's first layer.
_CHAIN_OF_FIRST_NORM = {"l1->linf": "l1", "linf->linf": "linf", "l2->l2": "l2", "l1->l1": "l1->l1"}


def resolve_model(model) -> tuple[nn.Module, object | None]:
    """Return ``(module, estimator)`` for a torch module, an estimator or a model file.

    An estimator is anything with a ``to_torch()`` method; its module is the one
    that method returns. A string or path is a model file, loaded with
    :func:`lipmono.load`. A torch module is returned with ``None`` as estimator.
    """
    if isinstance(model, nn.Module):
        return model, None
    if isinstance(model, (str, os.PathLike)):
        from ..serialization import load

        model = load(model)
    to_torch = getattr(model, "to_torch", None)
    if callable(to_torch):
        module = to_torch()
        if not isinstance(module, nn.Module):
            raise ExportError(
                f"{type(model).__name__}.to_torch() returned {type(module).__name__}, "
                "not a torch module"
            )
        return module, model
    raise ExportError(
        f"cannot export an object of type {type(model).__name__}; pass a torch module "
        "(MonotonicMLP, LipschitzMLP, MonotonicResidual), a fitted lipmono estimator or the "
        "path of a model file"
    )


def _chain(core: nn.Module) -> str:
    inner = core.inner if isinstance(core, MonotonicResidual) else core
    chain = getattr(inner, "chain", None)
    if chain in CHAIN_NORM_PAIRS:
        return chain
    first = next((m for m in inner.modules() if isinstance(m, LipschitzLinear)), None)
    return _CHAIN_OF_FIRST_NORM.get(first.norm, "l1") if first is not None else "l1"


def folded_bound(folded: FoldedNetwork, chain: str) -> float:
    """Return the certified Lipschitz bound of a folded network, in its input's units.

    The product of the exact operator norms of the folded dense layers (in the
    norms of ``chain``) plus the norm of the skip layer. Folding the scaler and
    the output map into the weights makes this a bound in the original units.
    """
    dense = [m for m in folded.body if isinstance(m, nn.Linear)]
    pair = CHAIN_NORM_PAIRS[chain]
    with torch.no_grad():
        bound = torch.ones((), dtype=torch.float64)
        for layer_norm, layer in zip(F_lip.chain_norms(chain, len(dense)), dense, strict=True):
            bound = bound * F_lip.operator_norm(layer.weight.to(torch.float64), layer_norm)
        if folded.skip is not None:
            bound = bound + F_lip.operator_norm(folded.skip.weight.to(torch.float64), pair)
    return float(bound)


def _jsonable(value):
    """Convert numpy and torch scalars and arrays inside ``value`` to plain Python."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def export_metadata(module: nn.Module, estimator=None, folded: FoldedNetwork | None = None) -> dict:
    """Return the metadata dict that every export format stores.

    Keys: ``format_version``, ``lipmono_version``, ``n_features``, ``n_outputs``,
    ``feature_names``, ``monotonic_cst`` (one list of -1/0/1 per input; a list per
    input for several outputs), ``lipschitz`` (the residual's budget, or ``None``),
    ``norm`` (the chain), ``certificate`` and ``output`` (what the output means).

    The certificate is the estimator's ``certificate_`` when there is one;
    otherwise ``lipschitz_scaled`` is :func:`lipmono.lipschitz_bound` of the
    model between the affine maps and ``lipschitz_original`` the bound of the
    folded network, which maps the unscaled inputs to the output.
    """
    # Imported here so that the package's __init__ may import this module early.
    from .. import __version__

    folded = fold(module) if folded is None else folded
    _, core, _ = split_affine(module)
    chain = _chain(core)
    n_features, n_outputs = folded.in_features, folded.out_features

    if isinstance(core, MonotonicResidual):
        constraints = core.monotonic_cst.detach().to(torch.int64)
        lipschitz = float(core.lipschitz)
    else:
        constraints = torch.zeros(n_features, n_outputs, dtype=torch.int64)
        lipschitz = float(getattr(core, "lipschitz", float("nan")))
    cst = constraints[:, 0].tolist() if n_outputs == 1 else constraints.tolist()
    names = getattr(core, "feature_names", None) or [f"x{i}" for i in range(n_features)]
    certificate = {
        "norm": chain,
        "pair": CHAIN_NORM_PAIRS[chain],
        "lipschitz_scaled": lipschitz_bound(core, chain),
        "lipschitz_original": folded_bound(folded, chain),
    }
    output = "raw"

    if estimator is not None:
        names = list(getattr(estimator, "encoded_feature_names_", names))
        est_cst = getattr(estimator, "encoded_monotonic_cst_", None)
        if est_cst is not None:
            cst = _jsonable(est_cst)
        est_certificate = getattr(estimator, "certificate_", None)
        if est_certificate is not None:
            certificate = _jsonable(dict(est_certificate))
        output = "logit" if hasattr(estimator, "classes_") else "value"

    if len(names) != n_features:
        raise ExportError(
            f"the model has {n_features} inputs but {len(names)} feature names: "
            f"{', '.join(map(str, names))}"
        )
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "lipmono_version": __version__,
        "n_features": n_features,
        "n_outputs": n_outputs,
        "feature_names": [str(name) for name in names],
        "monotonic_cst": cst,
        "lipschitz": None if lipschitz != lipschitz else lipschitz,
        "norm": chain,
        "certificate": certificate,
        "output": output,
    }


def metadata_strings(metadata: dict) -> dict[str, str]:
    """Return ``metadata`` as string pairs with ``lipmono.`` keys; values are JSON."""
    return {f"lipmono.{key}": json.dumps(value) for key, value in metadata.items()}
