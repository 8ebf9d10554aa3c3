"""HTML of a run or a saved run: status line, summary table, chart (a plain PNG)."""

from __future__ import annotations

import base64
import html
from typing import Any

from hubstress_ext.results import charts


def _number(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def summary_html(run: Any) -> str:
    """The run's summary table (works for live and saved runs)."""
    try:
        summary = run.summary()
    except Exception:
        return ""
    if summary is None or summary.empty:
        return "<i>(no requests recorded)</i>"
    summary = summary.drop(columns=["errors", "errors_by_reason"], errors="ignore")
    if summary.index.name is not None:  # e.g. the phase table: its index is the phase
        summary = summary.reset_index()
    return summary.to_html(index=False, float_format=_number, na_rep="-", classes="hubstress-table")


def status_line(run: Any) -> str:
    line = f"<b>hubstress {html.escape(run.scenario)}</b>: {html.escape(str(run.status))}"
    if run.error:
        line += f' — <span style="color:#c00">{html.escape(str(run.error))}</span>'
    return line


def run_html(run: Any) -> str:
    parts = [f"<div class='hubstress-run'><p>{status_line(run)}</p>", summary_html(run)]
    try:
        png = charts.png_of(run)
    except Exception:
        png = None
    if png:
        data = base64.b64encode(png).decode()
        parts.append(f"<img class='hubstress-chart' src='data:image/png;base64,{data}'/>")
    parts.append("</div>")
    return "".join(parts)


def saved_run_html(saved: Any) -> str:
    head = f"{status_line(saved)} (saved run {html.escape(str(saved.path))})"
    return f"<div class='hubstress-run'><p>{head}</p>{summary_html(saved)}</div>"
