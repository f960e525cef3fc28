"""Self-contained HTML for explanations and comparisons (issue 25, first part): figures
inline as PNG data URIs with alt text, tables as HTML, no script and no network request,
so that a page opens anywhere and can be mailed or attached as it is."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from typing import Any

STYLE = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}"
    "table{border-collapse:collapse;margin:0.6em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "th{background:#f2f2f2}.best{font-weight:bold;background:#e8f3e8}"
    "img{max-width:100%;height:auto}"
)


def figure_image(fig: Any, alt: str) -> str:
    """An <img> holding `fig` as an inline PNG (the figure is closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def table(header: Iterable[str], rows: Iterable[Iterable[Any]], best: Any = None) -> str:
    """An HTML table; `best(row, column)` marks cells (class "best") where true."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            marked = best is not None and best(i, j)
            mark = ' class="best"' if marked else ""
            cells.append(f"<td{mark}>{html.escape(str(value))}{' ★' if marked else ''}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def mapping_table(values: Mapping[str, Any]) -> str:
    return table(["name", "value"], [(k, short_value(v)) for k, v in values.items()])


def page(title: str, parts: Iterable[str]) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>"
    )


def short_value(value: Any) -> str:
    """An option's value as text: arrays by shape, not by their numbers."""
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        return f"array of shape {tuple(shape)}"
    return repr(value)
