"""HTML version of the audit report, for readers who open it in a browser.

:func:`markdown_to_html` converts the small subset of Markdown that
:func:`lipmono.audit.render_markdown` writes: headings, paragraphs, bullet lists,
pipe tables, images on their own line, inline code and bold text. It is not a
general Markdown converter. Every piece of text is HTML-escaped.
"""

from __future__ import annotations

import html
import re

__all__ = ["markdown_to_html"]

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")

_STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #bbb; padding: 0.2rem 0.6rem; text-align: left; }
th { background: #eee; }
img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=True)
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
    return _LINK.sub(r'<a href="\2">\1</a>', escaped)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    header = "".join(f"<th>{_inline(cell)}</th>" for cell in _cells(lines[0]))
    body = [
        "<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in _cells(line)) + "</tr>"
        for line in lines[2:]
    ]
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _block(lines: list[str]) -> str:
    first = lines[0]
    if first.startswith("# "):
        return f"<h1>{_inline(first[2:])}</h1>"
    if first.startswith("## "):
        return f"<h2>{_inline(first[3:])}</h2>"
    if all(line.startswith("- ") for line in lines):
        items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
        return f"<ul>{items}</ul>"
    if first.startswith("|") and len(lines) >= 2:
        return _table(lines)
    image = _IMAGE.match(first) if len(lines) == 1 else None
    if image:
        alt = html.escape(image["alt"], quote=True)
        src = html.escape(image["src"], quote=True)
        return f'<p><img src="{src}" alt="{alt}"></p>'
    return f"<p>{_inline(' '.join(lines))}</p>"


def markdown_to_html(markdown: str, title: str) -> str:
    """Return a standalone HTML page for the report Markdown ``markdown``.

    Blocks are separated by blank lines. Images keep their relative paths, so the
    page shows the PNGs that lie beside it.
    """
    blocks = []
    for chunk in markdown.split("\n\n"):
        lines = [line for line in chunk.splitlines() if line.strip()]
        if lines:
            blocks.append(_block(lines))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(blocks)
        + "\n</body>\n</html>\n"
    )
