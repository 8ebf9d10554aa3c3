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
    summary = summary.drop(columns=["errors_by_reason"], errors="ignore")  # a dict per row
    if "errors" in summary:  # a load's errors are counted by reason
        summary["errors"] = summary["errors"].map(_errors_text)
    if summary.index.name is not None:  # e.g. the phase table: its index is the phase
        summary = summary.reset_index()
    return summary.to_html(index=False, float_format=_number, na_rep="-", classes="hubstress-table")


def _errors_text(value: Any) -> Any:
    if isinstance(value, dict):
        return ", ".join(f"{reason} {n}" for reason, n in value.items()) or "0"
    return value


def status_line(run: Any) -> str:
    line = f"<b>hubstress {html.escape(run.scenario)}</b>: {html.escape(str(run.status))}"
    if run.error:
        line += f' — <span style="color:#c00">{html.escape(str(run.error))}</span>'
    return line


def report_details(run: Any) -> str:
    """What the text report says after its summary table (spawn latency, failures, the hub's
    account, the bottleneck line, the verdict): the same lines the CLI prints, so a notebook
    and the panel show what the terminal shows."""
    from hubstress_ext.results.summary import format_table

    try:
        text = run.report()
    except Exception:
        return ""
    try:  # a hub run's report opens with its summary table; a load's report has its own lines
        table = format_table(run.summary())
    except Exception:
        table = ""
    at = text.find(table) if table else -1
    details = text[at + len(table) :] if at >= 0 else text
    return details.strip("\n")


def details_html(run: Any) -> str:
    details = report_details(run)
    return f"<pre class='hubstress-report'>{html.escape(details)}</pre>" if details else ""


def run_html(run: Any, chart: bool = True) -> str:
    parts = [f"<div class='hubstress-run'><p>{status_line(run)}</p>", summary_html(run), details_html(run)]
    try:
        png = charts.png_of(run) if chart else None
    except Exception:
        png = None
    if png:
        data = base64.b64encode(png).decode()
        parts.append(f"<img class='hubstress-chart' src='data:image/png;base64,{data}'/>")
    parts.append("</div>")
    return "".join(parts)


def saved_run_html(saved: Any) -> str:
    head = f"{status_line(saved)} (saved run {html.escape(str(saved.path))})"
    return f"<div class='hubstress-run'><p>{head}</p>{summary_html(saved)}{details_html(saved)}</div>"
