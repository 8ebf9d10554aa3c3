"""A run's rich display in a notebook: status line, summary table and chart (a plain PNG)."""

from __future__ import annotations

import base64
import html
from typing import Any

from hubstress_ext.notebook.live import summary_html
from hubstress_ext.results import charts


def run_html(run: Any) -> str:
    line = f"<b>hubstress {html.escape(run.scenario)}</b>: {html.escape(run.status)}"
    if run.error:
        line += f' — <span style="color:#c00">{html.escape(run.error)}</span>'
    parts = [f"<div class='hubstress-run'><p>{line}</p>", summary_html(run)]
    try:
        png = charts.png_for(run)
    except Exception:
        png = None
    if png:
        data = base64.b64encode(png).decode()
        parts.append(f"<img class='hubstress-chart' src='data:image/png;base64,{data}'/>")
    parts.append("</div>")
    return "".join(parts)
