"""Helpers shared by the benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from torch import nn

from lipmono.files import atomic_write_bytes

__all__ = ["cpu_name", "relu_mlp", "replace_section", "write_json"]


def cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())


def replace_section(page: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in ``page``.

    Each benchmark owns one such section of the results page, so reruns of one
    benchmark leave the others' numbers alone.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = Path(page).read_text()
    if start not in content or end not in content:
        raise SystemExit(f"{page} has no {start} ... {end} markers; add them first")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_bytes(page, f"{head}{start}\n{text}\n{end}{tail}".encode())


def relu_mlp(sizes: list[int]) -> nn.Sequential:
    """Return the plain baseline: ``nn.Linear`` layers of ``sizes`` with ReLU between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
