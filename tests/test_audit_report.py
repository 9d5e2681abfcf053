"""The audit report's HTML conversion and file handling."""

from __future__ import annotations

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
