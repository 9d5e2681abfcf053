"""Throughput of the compact four-input trigger model, as C and as folded torch, on one core.

The C code comes from :func:`lipmono.export.export_c` and is compiled with the
system C compiler. A small harness times ``predict`` over a block of
candidates already in memory, so the figure excludes reading input and is an
upper bound for a trigger that also has to build the features.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

__all__ = ["c_throughput", "torch_throughput"]

logger = logging.getLogger(__name__)

_HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "{prefix}.h"

/* Usage: harness INPUT OUTPUT N_ROWS REPEATS. INPUT holds N_ROWS rows of
 * float32 features; OUTPUT receives the scores of the first pass. Prints the
 * seconds of the fastest of REPEATS passes. */
int main(int argc, char **argv)
{{
    size_t n = (size_t)strtoull(argv[3], NULL, 10);
    int repeats = atoi(argv[4]), r;
    float *x = malloc(n * {upper}_N_FEATURES * sizeof(float));
    float *y = malloc(n * {upper}_N_OUTPUTS * sizeof(float));
    double best = 1e30;
    FILE *f = fopen(argv[1], "rb");
    if (!x || !y || !f || fread(x, sizeof(float), n * {upper}_N_FEATURES, f)
            != n * {upper}_N_FEATURES) return 1;
    fclose(f);
    for (r = 0; r < repeats; ++r) {{
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if ({prefix}_predict(x, n, y) != 0) return 2;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (s < best) best = s;
    }}
    f = fopen(argv[2], "wb");
    if (!f || fwrite(y, sizeof(float), n * {upper}_N_OUTPUTS, f) != n * {upper}_N_OUTPUTS) return 3;
    fclose(f);
    printf("%.9f\n", best);
    return 0;
}}
"""

# Portable and host-tuned builds. Neither uses -ffast-math, because the exported
# code checks isfinite, which fast-math may remove.
C_FLAG_SETS = (("-O2", "-std=c99"), ("-O3", "-march=native", "-std=c99"))


def c_throughput(estimator, X: pd.DataFrame, folder: Path, *, repeats: int = 5) -> list[dict]:
    """Export ``estimator`` to C, compile it and time it on the ``(N, 4)`` table ``X``.

    Returns one entry per compiler flag set in :data:`C_FLAG_SETS`: candidates
    per second on one core, the compiler command and the largest absolute
    difference between the C scores and the estimator's.
    """
    from lipmono.export import export_c

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError(
            "no C compiler found on PATH (cc or gcc); install one to time the C export"
        )
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "trigger_model"
    export_c(estimator, folder, prefix)
    harness = folder / "harness.c"
    harness.write_text(_HARNESS.format(prefix=prefix, upper=prefix.upper()))
    rows = np.ascontiguousarray(X, dtype=np.float32)
    (folder / "input.bin").write_bytes(rows.tobytes())
    reference = np.asarray(estimator.decision_function(X), dtype=np.float64)

    results = []
    for flags in C_FLAG_SETS:
        binary = folder / "harness"
        command = [compiler, *flags, "-o", str(binary), str(harness),
                   str(folder / f"{prefix}.c"), "-lm"]
        subprocess.run(command, check=True, capture_output=True, text=True)
        completed = subprocess.run(
            [str(binary), str(folder / "input.bin"), str(folder / "output.bin"), str(len(rows)),
             str(repeats)],
            check=True, capture_output=True, text=True,
        )
        seconds = float(completed.stdout.strip())
        c_scores = np.frombuffer((folder / "output.bin").read_bytes(), dtype=np.float32)
        results.append({
            "candidates_per_second": len(rows) / seconds,
            "compiler": " ".join([Path(compiler).name, *flags]),
            "max_abs_difference": float(np.max(np.abs(c_scores - reference))),
            "n_candidates": len(rows),
        })
    return results


def torch_throughput(module: torch.nn.Module, X: np.ndarray, *, repeats: int = 5) -> dict:
    """Time ``module`` on the ``(N, 4)`` rows ``X`` in float32 with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        inputs = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))
        module = module.float().eval()
        best = np.inf
        with torch.inference_mode():
            module(inputs[:1000])
            for _ in range(repeats):
                start = time.perf_counter()
                module(inputs)
                best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return {"candidates_per_second": len(inputs) / best, "n_candidates": len(inputs)}
