"""Export a saved model as ONNX, dependency-free C99 or a NumPy archive.

Every format computes the model's raw output (the logit of a classifier, the
prediction of a regressor) from the encoded, unscaled features listed by
lipmono info, and stores the features, constraints, lambda, norm chain and
certified bound beside the weights.

  onnx   --out model.onnx          ONNX graph with a dynamic batch axis
  c      --out build/model.c       model.c and model.h; prefix from the file name
  c      --out build/              lipmono_model.c and lipmono_model.h (or --prefix)
  numpy  --out model.npz           weights for lipmono.numpy_inference (no torch)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ExportError
from ._io import load_model

__all__ = ["add_arguments", "run", "c_target"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file written by lipmono train")
    parser.add_argument(
        "--format", required=True, choices=["onnx", "c", "numpy"], help="export format"
    )
    parser.add_argument(
        "--out", required=True,
        help="file to write (.onnx, .npz or .c), or for --format c an existing folder",
    )
    parser.add_argument(
        "--prefix",
        help="C only: file stem and prefix of the C names (default: the --out file's stem, "
        "or lipmono_model for a folder)",
    )
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32",
        help="ONNX and NumPy only: type of weights and inputs (default: %(default)s; "
        "C always uses float32)",
    )
    parser.add_argument(
        "--legacy-onnx", action="store_true",
        help="use torch's TorchScript-based ONNX exporter instead of the dynamo exporter",
    )


def c_target(out: str, prefix: str | None) -> tuple[Path, str]:
    """Return the folder and prefix of a C export for ``--out`` and ``--prefix``."""
    path = Path(out)
    if path.suffix == ".c":
        return path.parent, prefix or path.stem
    if path.is_dir():
        return path, prefix or "lipmono_model"
    raise ExportError(
        f"--out {out!r} is neither a .c file nor an existing folder; give build/model.c "
        "or a folder to write lipmono_model.c and lipmono_model.h into"
    )


def run(args) -> int:
    import numpy as np
    import torch

    from ..export import export_c, export_numpy, export_onnx

    estimator = load_model(args.model)
    if args.format == "onnx":
        dtype = torch.float32 if args.dtype == "float32" else torch.float64
        written = [export_onnx(estimator, args.out, dtype=dtype, dynamo=not args.legacy_onnx)]
    elif args.format == "numpy":
        dtype = np.float32 if args.dtype == "float32" else np.float64
        written = [export_numpy(estimator, args.out, dtype=dtype)]
    else:
        folder, prefix = c_target(args.out, args.prefix)
        written = list(export_c(estimator, folder, prefix=prefix))
    for path in written:
        print(f"wrote {path}")
    return 0
