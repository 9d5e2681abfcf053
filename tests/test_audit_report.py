"""The audit report's HTML conversion and file handling."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from lipmono.audit.html import markdown_to_html


def test_html_converts_report_blocks():
    markdown = "\n".join([
        "# Audit of a Model",
        "",
        "## Verdict",
        "",
        "- Monotonicity: **PASS** for `age`.",
        "- Overall: PASS.",
        "",
        "| feature | value |",
        "|---|---|",
        "| age | 0.5 |",
        "",
        "![ICE curves](dependence.png)",
        "",
        "A line",
        "continues here.",
    ])
    page = markdown_to_html(markdown, "Audit")
    assert "<h1>Audit of a Model</h1>" in page
    assert "<h2>Verdict</h2>" in page
    assert "<li>Monotonicity: <strong>PASS</strong> for <code>age</code>.</li>" in page
    assert "<thead><tr><th>feature</th><th>value</th></tr></thead>" in page
    assert "<tr><td>age</td><td>0.5</td></tr>" in page
    assert '<img src="dependence.png" alt="ICE curves">' in page
    assert "<p>A line continues here.</p>" in page
    assert "<title>Audit</title>" in page


def test_html_escapes_text():
    page = markdown_to_html("Feature <script>alert('x')</script> & |f(x)| <= L", "a<b")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; |f(x)| &lt;= L" in page
    assert "<title>a&lt;b</title>" in page


@pytest.mark.parametrize(
    "module_name",
    [
        "lipmono.audit",
        "lipmono.audit.core",
        "lipmono.audit.html",
        "lipmono.audit.plots",
        "lipmono.audit.probes",
        "lipmono.audit.radius",
        "lipmono.audit.report",
        "lipmono.audit.result",
        "lipmono.audit.verdict",
        "lipmono.cli.audit",
    ],
)
def test_audit_names_importable(module_name):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"


def test_top_level_audit_callable():
    import lipmono

    assert "audit" in lipmono.__all__
    assert callable(lipmono.audit)
    assert callable(importlib.import_module("lipmono.audit"))


def test_import_leaves_matplotlib_unloaded():
    # Plots import matplotlib on first use; importing lipmono and its audit must not.
    code = (
        "import sys, lipmono, lipmono.audit; "
        "print('matplotlib' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "False"
