"""Export to dependency-free C99: one header and one source file.

The source contains the folded weights as ``static const float`` arrays, printed
with nine significant digits so that each literal reads back as the exact
float32 value, and one batch function

.. code-block:: c

    int <prefix>_predict(const float *x, size_t n_rows, float *out);

that reads ``n_rows`` row-major rows of ``<PREFIX>_N_FEATURES`` floats and writes
``n_rows * <PREFIX>_N_OUTPUTS`` floats. It uses two stack buffers of the widest
layer's size, no heap and nothing beyond ``<math.h>`` (the ``isfinite`` and
``NAN`` macros) and ``<stddef.h>``. It returns 0 on success, -1 when ``x`` or
``out`` is NULL, and otherwise the number of rows that held a NaN or an
infinity; their outputs are set to NaN.

Each dense layer is written out with literal sizes and its weight stored
transposed, so that the inner loop runs over contiguous outputs and a compiler
can vectorize it without reordering any floating-point sum.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from ..errors import ExportError
from ._files import write_bytes_atomic
from .fold import fold
from .metadata import export_metadata, resolve_model
from .plan import Activation, Dense, NetworkPlan, plan_network

__all__ = ["export_c", "render_c", "c_float"]

logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Floats per line in the generated weight arrays.
_PER_LINE = 6


def c_float(value: float) -> str:
    """Return a C float literal that reads back as exactly ``np.float32(value)``."""
    number = np.float32(value)
    if not np.isfinite(number):
        raise ExportError(f"cannot write the non-finite weight {float(number)!r} as a C literal")
    text = f"{float(number):.9g}"
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text + "f"


def _c_string(text: str) -> str:
    """Return ``text`` as a C string literal; non-ASCII bytes become octal escapes."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\' or not 32 <= byte < 127 or char == "?":
            # Octal escapes keep the literal pure ASCII; "?" is escaped to avoid trigraphs.
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _c_comment(text: str) -> str:
    return text.replace("*/", "* /")


def _array(name: str, values: np.ndarray, kind: str = "float") -> str:
    flat = values.reshape(-1)
    if kind == "float":
        items = [c_float(v) for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    lines = [
        "    " + ", ".join(items[i : i + _PER_LINE]) + ","
        for i in range(0, len(items), _PER_LINE)
    ]
    return f"static const {kind} {name}[{len(flat)}] = {{\n" + "\n".join(lines) + "\n};\n"


def _dense_code(index: int, op: Dense, prefix: str, src: str, dst: str) -> list[str]:
    n_in, n_out = op.in_features, op.out_features
    return [
        f"        /* dense layer {index}: {n_in} -> {n_out} */",
        f"        for (k = 0; k < {n_out}; ++k) {dst}[k] = {prefix}_b{index}[k];",
        f"        for (j = 0; j < {n_in}; ++j) {{",
        f"            const float xj = {src}[j];",
        f"            const float *w = {prefix}_w{index} + j * {n_out};",
        f"            for (k = 0; k < {n_out}; ++k) {dst}[k] += w[k] * xj;",
        "        }",
    ]


def _activation_code(op: Activation, width: int, buffer: str) -> list[str]:
    if op.kind == "relu":
        return [
            f"        for (k = 0; k < {width}; ++k) if ({buffer}[k] < 0.0f) {buffer}[k] = 0.0f;"
        ]
    size = op.group_size
    if size == 1:
        return []
    if size == 2:
        half = width // 2
        # MaxMin pairs unit k with unit k + width/2: maxima first, minima second.
        return [
            f"        for (k = 0; k < {half}; ++k) {{",
            f"            const float p = {buffer}[k], q = {buffer}[k + {half}];",
            f"            {buffer}[k] = p > q ? p : q;",
            f"            {buffer}[k + {half}] = p > q ? q : p;",
            "        }",
        ]
    # Larger groups: insertion sort of each group in descending order.
    return [
        f"        for (g = 0; g < {width}; g += {size}) {{",
        f"            for (j = g + 1; j < g + {size}; ++j) {{",
        f"                const float v = {buffer}[j];",
        "                k = j;",
        f"                while (k > g && {buffer}[k - 1] < v) {{",
        f"                    {buffer}[k] = {buffer}[k - 1];",
        "                    --k;",
        "                }",
        f"                {buffer}[k] = v;",
        "            }",
        "        }",
    ]


def _body_code(plan: NetworkPlan, prefix: str) -> list[str]:
    """Return the statements that evaluate one row from ``xr`` into ``yr``."""
    last_dense = max(i for i, op in enumerate(plan.layers) if isinstance(op, Dense))
    lines: list[str] = []
    src, width = "xr", plan.in_features
    buffers = ("a", "b")
    dense_index = 0
    for position, op in enumerate(plan.layers):
        if isinstance(op, Dense):
            # The last dense layer writes the output row; any activation after it runs there.
            dst = "yr" if position == last_dense else buffers[dense_index % 2]
            lines += _dense_code(dense_index, op, prefix, src, dst)
            src, width = dst, op.out_features
            dense_index += 1
        else:
            lines += _activation_code(op, width, src)
    if plan.skip is not None:
        n_out, n_in = plan.skip.shape
        lines += [
            f"        /* skip layer: {n_in} -> {n_out}, added to the output */",
            f"        for (j = 0; j < {n_in}; ++j) {{",
            "            const float xj = xr[j];",
            f"            const float *w = {prefix}_skip + j * {n_out};",
            f"            for (k = 0; k < {n_out}; ++k) yr[k] += w[k] * xj;",
            "        }",
        ]
    return lines


def _header(prefix: str, metadata: dict, guard: str) -> str:
    upper = prefix.upper()
    certificate = metadata["certificate"]
    bound = certificate.get("lipschitz_original")
    cst = np.asarray(metadata["monotonic_cst"]).reshape(-1)
    names = metadata["feature_names"]
    lines = [
        f"/* {_c_comment(prefix)}.h: lipmono model exported as dependency-free C99.",
        f" * lipmono {_c_comment(str(metadata['lipmono_version']))}, "
        f"export format {metadata['format_version']}.",
        f" * Output: {_c_comment(str(metadata['output']))}; "
        f"norm chain {_c_comment(str(metadata['norm']))}; "
        f"lambda {metadata['lipschitz']}.",
        f" * Certificate: {_c_comment(json.dumps(certificate))}",
        " */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stddef.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define {upper}_N_FEATURES {metadata['n_features']}",
        f"#define {upper}_N_OUTPUTS {metadata['n_outputs']}",
        f"#define {upper}_FORMAT_VERSION {metadata['format_version']}",
    ]
    if bound is not None:
        chain = _c_comment(str(metadata["norm"]))
        lines.append(f"/* Certified Lipschitz bound in the input's units ({chain} chain). */")
        lines.append(f"#define {upper}_LIPSCHITZ_BOUND {float(bound)!r}")
    lines += [
        "",
        f"/* Input feature names, in column order ({len(names)}). */",
        f"extern const char *const {prefix}_feature_names[{upper}_N_FEATURES];",
        "",
        "/* Monotonic constraint of each (feature, output) pair, row-major:",
        " * 1 increasing, -1 decreasing, 0 unconstrained. */",
        f"extern const signed char {prefix}_monotonic_cst[{len(cst)}];",
        "",
        f"/* Evaluate n_rows row-major rows of {upper}_N_FEATURES floats from x into",
        f" * out (n_rows * {upper}_N_OUTPUTS floats). Returns 0 on success, -1 if x or",
        " * out is NULL, else the number of rows holding a NaN or an infinity, whose",
        " * outputs are set to NaN. Thread-safe; allocates nothing. */",
        f"int {prefix}_predict(const float *x, size_t n_rows, float *out);",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)


def _source(prefix: str, plan: NetworkPlan, metadata: dict) -> str:
    upper = prefix.upper()
    needs_g = any(
        isinstance(op, Activation) and op.kind == "group_sort" and op.group_size > 2
        for op in plan.layers
    )
    parts = [
        f"/* {_c_comment(prefix)}.c: generated by lipmono "
        f"{_c_comment(str(metadata['lipmono_version']))}; do not edit. */",
        f'#include "{prefix}.h"',
        "",
        "#include <math.h>",
        "#include <stddef.h>",
        "",
        f"#define {upper}_MAX_WIDTH {plan.max_width}",
        "",
        f"const char *const {prefix}_feature_names[{upper}_N_FEATURES] = {{",
        *[f"    {_c_string(name)}," for name in metadata["feature_names"]],
        "};",
        "",
        _array(
            f"{prefix}_monotonic_cst", np.asarray(metadata["monotonic_cst"]), "signed char"
        ).replace("static const", "const", 1),
        "/* Dense weights are stored transposed: w[j * n_out + k] is input j -> output k. */",
    ]
    dense_ops = [op for op in plan.layers if isinstance(op, Dense)]
    for index, op in enumerate(dense_ops):
        parts.append(_array(f"{prefix}_w{index}", op.weight.T.copy()))
        parts.append(_array(f"{prefix}_b{index}", op.bias))
    if plan.skip is not None:
        parts.append(_array(f"{prefix}_skip", plan.skip.T.copy()))
    declarations = "    size_t r, j, k;" + (" size_t g;" if needs_g else "")
    parts += [
        f"int {prefix}_predict(const float *x, size_t n_rows, float *out)",
        "{",
        f"    float a[{upper}_MAX_WIDTH], b[{upper}_MAX_WIDTH];",
        declarations,
        "    size_t n_bad = 0;",
        "    if (n_rows == 0) return 0;",
        "    if (x == NULL || out == NULL) return -1;",
        "    for (r = 0; r < n_rows; ++r) {",
        f"        const float *xr = x + r * {upper}_N_FEATURES;",
        f"        float *yr = out + r * {upper}_N_OUTPUTS;",
        "        int finite = 1;",
        f"        for (j = 0; j < {upper}_N_FEATURES; ++j) if (!isfinite(xr[j])) finite = 0;",
        "        if (!finite) {",
        f"            for (k = 0; k < {upper}_N_OUTPUTS; ++k) yr[k] = NAN;",
        "            ++n_bad;",
        "            continue;",
        "        }",
        *_body_code(plan, prefix),
        "    }",
        "    (void)a;",
        "    (void)b;",
        "    return n_bad > 2147483647u ? 2147483647 : (int)n_bad;",
        "}",
        "",
    ]
    return "\n".join(parts)


def render_c(model, prefix: str = "lipmono_model") -> tuple[str, str]:
    """Return the C header and source text for ``model``; see :func:`export_c`."""
    if not isinstance(prefix, str) or not _IDENTIFIER.match(prefix):
        raise ExportError(
            f"prefix={prefix!r} is not a valid C identifier; use letters, digits and "
            "underscores, starting with a letter or underscore, for example 'lipmono_model'"
        )
    module, estimator = resolve_model(model)
    folded = fold(module)
    metadata = export_metadata(module, estimator, folded)
    plan = plan_network(folded, np.float32)
    guard = f"{prefix.upper()}_H"
    return _header(prefix, metadata, guard), _source(prefix, plan, metadata)


def export_c(
    model, directory: str | os.PathLike, prefix: str = "lipmono_model"
) -> tuple[Path, Path]:
    """Write ``model`` as ``<prefix>.h`` and ``<prefix>.c`` in ``directory``.

    The code is C99 with no dependency beyond the C standard library and computes
    in float32 whatever the model's dtype. The header defines
    ``<PREFIX>_N_FEATURES``, ``<PREFIX>_N_OUTPUTS``, ``<PREFIX>_FORMAT_VERSION``
    and ``<PREFIX>_LIPSCHITZ_BOUND`` (the certified bound in the input's units),
    and declares ``<prefix>_feature_names``, ``<prefix>_monotonic_cst`` and
    ``int <prefix>_predict(const float *x, size_t n_rows, float *out)``.

    Parameters
    ----------
    model : nn.Module, estimator or path-like
        A module :func:`~lipmono.export.fold` accepts, a fitted estimator with
        ``to_torch()``, or the path of a model file.
    directory : path-like
        An existing folder. Both files are written atomically.
    prefix : str, default="lipmono_model"
        File name stem and prefix of every exported C name; a C identifier.

    Returns
    -------
    (Path, Path)
        The header and the source file.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ExportError(
            f"directory {str(folder)!r} does not exist or is not a folder; create it first"
        )
    header, source = render_c(model, prefix)
    header_path = write_bytes_atomic(folder / f"{prefix}.h", header.encode("ascii"))
    source_path = write_bytes_atomic(folder / f"{prefix}.c", source.encode("ascii"))
    logger.info("wrote C export %s and %s", header_path, source_path)
    return header_path, source_path
