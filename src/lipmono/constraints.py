"""Parsing of monotonicity constraints.

Every public entry point that takes ``monotonic_cst`` parses it here, so the
accepted forms are the same everywhere:

* ``None`` or ``"none"``: no constraint;
* ``"increasing"`` or ``"decreasing"``: the same direction for every input;
* a sequence, numpy array or tensor of ``-1``, ``0``, ``1`` (or the three strings),
  one entry per input, as ``monotonic_cst`` in scikit-learn;
* a dict from feature name (needs ``feature_names``) or position to a direction;
* an ``(n_inputs, n_outputs)`` matrix, one column per output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .errors import ConstraintError

__all__ = ["ALIASES", "parse_direction", "parse_monotonic_cst"]

#: Words accepted in place of -1, 0 and 1.
ALIASES = {
    "increasing": 1,
    "inc": 1,
    "+1": 1,
    "decreasing": -1,
    "dec": -1,
    "-1": -1,
    "none": 0,
    "free": 0,
    "0": 0,
}


def parse_direction(value, where: str) -> int:
    """Return -1, 0 or 1 for one constraint entry; ``where`` names it in errors."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ALIASES:
            return ALIASES[key]
    elif isinstance(value, (bool, np.bool_)):
        pass
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if number in (-1.0, 0.0, 1.0):
            return int(number)
    raise ConstraintError(
        f"invalid monotonic constraint {value!r} for {where}; "
        "use 1 or 'increasing', -1 or 'decreasing', 0 or 'none'"
    )


def _from_mapping(cst: Mapping, n_inputs: int, feature_names) -> np.ndarray:
    names = list(feature_names) if feature_names is not None else None
    result = np.zeros(n_inputs, dtype=np.int64)
    for key, value in cst.items():
        if isinstance(key, str):
            if names is None:
                raise ConstraintError(
                    f"monotonic_cst names the feature {key!r}, but no feature names are known; "
                    "pass feature_names, fit on a DataFrame, or give constraints by position"
                )
            if key not in names:
                raise ConstraintError(
                    f"monotonic_cst names the feature {key!r}, which is not among the "
                    f"{len(names)} features: {', '.join(map(str, names))}"
                )
            index = names.index(key)
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            index = int(key)
            if not 0 <= index < n_inputs:
                raise ConstraintError(
                    f"monotonic_cst has the position {index}, outside 0..{n_inputs - 1}"
                )
        else:
            raise ConstraintError(
                f"monotonic_cst keys must be feature names or positions, got {key!r}"
            )
        result[index] = parse_direction(value, f"feature {key!r}")
    return result


def _entry_name(index: tuple[int, ...], ndim: int) -> str:
    return f"input {index[0]}, output {index[1]}" if ndim == 2 else f"input {index[0]}"


def parse_monotonic_cst(
    monotonic_cst,
    n_inputs: int,
    n_outputs: int = 1,
    feature_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Return the constraints as an ``(n_inputs, n_outputs)`` tensor of -1, 0 and 1.

    A one-dimensional constraint applies to every output. Raises
    :class:`~lipmono.errors.ConstraintError` naming the bad entry otherwise.

    Examples
    --------
    >>> parse_monotonic_cst([1, 0, -1], 3).flatten().tolist()
    [1.0, 0.0, -1.0]
    >>> parse_monotonic_cst({"b": "decreasing"}, 2, feature_names=["a", "b"]).flatten().tolist()
    [0.0, -1.0]
    """
    if feature_names is not None and len(feature_names) != n_inputs:
        raise ConstraintError(
            f"feature_names has {len(feature_names)} names but the model has {n_inputs} inputs"
        )
    if monotonic_cst is None:
        matrix = np.zeros((n_inputs, 1), dtype=np.int64)
    elif isinstance(monotonic_cst, str):
        direction = parse_direction(monotonic_cst, "every feature")
        matrix = np.full((n_inputs, 1), direction, dtype=np.int64)
    elif isinstance(monotonic_cst, Mapping):
        matrix = _from_mapping(monotonic_cst, n_inputs, feature_names)[:, None]
    else:
        if isinstance(monotonic_cst, torch.Tensor):
            monotonic_cst = monotonic_cst.detach().cpu().numpy()
        array = np.asarray(monotonic_cst, dtype=object)
        if array.ndim not in (1, 2) or array.shape[0] != n_inputs:
            raise ConstraintError(
                f"monotonic_cst must have one entry per input ({n_inputs}), "
                f"got shape {tuple(array.shape)}"
            )
        if array.ndim == 2 and array.shape[1] not in (1, n_outputs):
            raise ConstraintError(
                f"a monotonic_cst matrix must have shape ({n_inputs}, {n_outputs}), "
                f"got {tuple(array.shape)}"
            )
        flat = [
            parse_direction(value, _entry_name(index, array.ndim))
            for index, value in np.ndenumerate(array)
        ]
        matrix = np.array(flat, dtype=np.int64).reshape(array.shape[0], -1)
    if matrix.shape[1] == 1 and n_outputs > 1:
        matrix = np.repeat(matrix, n_outputs, axis=1)
    return torch.as_tensor(matrix, dtype=torch.get_default_dtype())
