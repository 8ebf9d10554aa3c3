"""Charts of a run, as matplotlib figures or PNG bytes (plain images: they read well in a
shared notebook file, a widget, or a report). One drawing function per kind of chart; each
scenario's Run class names its own (``figure``), so nothing here dispatches on a name.

Figures are built with matplotlib's object API (``Figure``, no pyplot): nothing touches the
global backend, so a notebook's inline plotting is left alone, and the figures render to PNG
anywhere. Matplotlib is imported lazily: the engine and the CLI never need it.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    # fixed margins: tight_layout would draw the figure an extra time on every refresh
    fig.subplots_adjust(left=0.08, right=0.92, bottom=0.18, top=0.88, wspace=0.3)
    return fig


def png_of(run: Any) -> bytes | None:
    """The run's chart as PNG bytes (its scenario's ``figure`` of its ``chart_data``), or None."""
    fig = type(run).figure(run.chart_data())
    return None if fig is None else to_png(fig)


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def spawn_storm_figure(data: pd.DataFrame | dict[str, pd.DataFrame]):
    """Servers ready over time, the distribution of spawn latency, and (a sandbox run) the CPU
    of the hub, proxy and servers. ``data``: the users table, or {"users": ..., "resources": ...}."""
    users = data["users"] if isinstance(data, dict) else data
    resources = data.get("resources") if isinstance(data, dict) else None
    if users.empty or users["spawn_requested"].isna().all():
        return None
    if users["ready"].isna().all() and users["failed"].isna().all():
        return None  # nothing has happened yet: empty axes would only show a meaningless scale
    fig, left, right = _two_panels_and_cpu(resources)
    t0 = users["spawn_requested"].min()
    ready = np.sort(users["ready"].dropna().to_numpy() - t0)
    failed = np.sort(users["failed"].dropna().to_numpy() - t0)
    left.step(np.r_[0, ready], np.arange(len(ready) + 1), where="post", label="ready")
    if len(failed):
        left.step(np.r_[0, failed], np.arange(len(failed) + 1), where="post", label="failed", color="C3")
    left.set(xlabel="seconds since first spawn request", ylabel="servers", title="servers ready over time")
    left.set_ylim(0, max(len(users), 1))
    left.legend(loc="lower right")
    lat = users["spawn_latency_s"].dropna()
    if len(lat):
        right.hist(lat, bins=min(30, max(5, len(lat) // 3)), color="C0")
        for q, style in ((0.5, "--"), (0.99, ":")):
            right.axvline(lat.quantile(q), color="k", linestyle=style, label=f"p{int(q * 100)}")
        right.legend()
    right.set(xlabel="spawn latency (s)", ylabel="users", title="spawn latency")
    return fig


def activity_figure(df: pd.DataFrame):
    """API latency over time: the probe's and the activity posts'."""
    if df.empty or len(df) < 2:
        return None
    fig = _figure(9, 3)
    ax = fig.subplots()
    t0 = df["start"].min()
    activity = df[df["op"] == "activity"]
    probe = df[df["op"] == "probe"].sort_values("start")
    # the activity posts are many and only the background; the probe (what a user would feel)
    # is drawn on top, as a line of clear markers
    ax.plot(
        activity["start"] - t0,
        activity["latency_ms"],
        ".",
        markersize=2,
        alpha=0.25,
        color="C0",
        label=f"activity posts ({len(activity)})",
    )
    ax.plot(
        probe["start"] - t0,
        probe["latency_ms"],
        "o-",
        markersize=4,
        linewidth=1,
        color="C3",
        label=f"probe: GET /users/NAME ({len(probe)})",
        zorder=3,
    )
    ax.set(xlabel="seconds", ylabel="latency (ms)")
    ax.set_title("hub API latency under load", loc="left")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False, fontsize=8)
    return fig


def _two_panels_and_cpu(resources: pd.DataFrame | None):
    """(figure, left axes, right axes), with a third panel of the sandbox's CPU when sampled."""
    if resources is None or resources.empty:
        fig = _figure(9, 3)
        return (fig, *fig.subplots(1, 2))
    fig = _figure(13.5, 3)
    left, right, cpu = fig.subplots(1, 3)
    cpu_axes(cpu, resources)
    return fig, left, right


def cpu_axes(ax, resources: pd.DataFrame) -> None:
    """CPU % of one core over time, one line per sandbox process role."""
    t0 = resources["time"].min()
    for role, group in resources.groupby("role", sort=False):
        group = group.sort_values("time").iloc[1:]  # the first sample has no interval yet
        ax.plot(group["time"] - t0, group["cpu_pct"], label=role)
    ax.set(xlabel="seconds", ylabel="% of one core", title="sandbox CPU")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", frameon=False, fontsize=8)


def sessions_figure(data: dict[str, pd.DataFrame]):
    """Active sessions over the class, execute latency (p50, p99) as it went on, and (a
    sandbox run) the CPU of the hub, proxy and servers."""
    active, execute, resources = data.get("active"), data.get("execute"), data.get("resources")
    if active is None or active.empty:
        return None
    fig, left, right = _two_panels_and_cpu(resources)
    left.step(active["t"], active["active"], where="post", color="C0")
    left.set(xlabel="seconds since the first arrival", ylabel="sessions", title="active sessions")
    left.set_ylim(bottom=0)
    if execute is not None and not execute.empty:
        right.plot(execute["t"], execute["p50_ms"], "-o", markersize=3, color="C1", label="p50")
        right.plot(execute["t"], execute["p99_ms"], "-o", markersize=3, color="C3", label="p99")
        right.legend(loc="upper right", frameon=False, fontsize=8)
    right.set(xlabel="seconds since the first execute", ylabel="ms", title="execute latency")
    right.set_ylim(bottom=0)
    return fig


def bench_figure(timeline: pd.DataFrame):
    """QPS and latency per second."""
    if timeline.empty:
        return None
    fig = _figure(9, 3)
    ax = fig.subplots()
    ax.plot(timeline["t"], timeline["qps"], "-o", markersize=3, label="QPS (ok)")
    ax.set(xlabel="seconds", ylabel="requests/s")
    ax.set_title("throughput and latency over time", loc="left")
    ax.set_ylim(bottom=0)
    lat = ax.twinx()
    lat.plot(timeline["t"], timeline["p50_ms"], color="C1", label="p50 ms")
    lat.plot(timeline["t"], timeline["p99_ms"], color="C3", label="p99 ms")
    lat.set_ylabel("latency (ms)")
    lat.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + lat.get_legend_handles_labels()[0]
    # above the plot, right of the title: never over the lines
    ax.legend(
        handles,
        [h.get_label() for h in handles],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    return fig


def sweep_figure(cells: pd.DataFrame):
    """QPS and p99 over workers x batch size (heatmaps), or per workers when batch size is unknown."""
    if cells.empty:
        return None
    fig = _figure(9, 3.2)
    axes = fig.subplots(1, 2)
    if cells["batch_size"].isna().all():  # not our endpoint: workers only
        for ax, value, title in ((axes[0], "qps", "QPS"), (axes[1], "p99_ms", "p99 latency (ms)")):
            ax.plot(cells["workers"], cells[value], "-o")
            ax.set(xlabel="workers", title=title, xscale="log")
            ax.set_ylim(bottom=0)
    else:
        for ax, value, title in ((axes[0], "qps", "QPS"), (axes[1], "p99_ms", "p99 latency (ms)")):
            grid = cells.pivot_table(index="workers", columns="batch_size", values=value, dropna=False)
            heatmap(ax, grid, title)
    return fig


def heatmap(ax, grid: pd.DataFrame, title: str) -> None:
    """A labelled heatmap of a workers x batch size table (used by the notebooks too)."""
    values = grid.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    ax.set(xlabel="batch size", ylabel="workers", title=title)
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            # viridis runs from dark blue to bright yellow: dark text on the bright cells
            color = "black" if image.norm(v) > 0.6 else "white"
            ax.text(
                j, i, f"{v:.0f}" if v >= 10 else f"{v:.1f}", ha="center", va="center", color=color, fontsize=8
            )
    ax.figure.colorbar(image, ax=ax)


def capacity_figure(
    probes: pd.DataFrame, meta: dict[str, Any], answers: list[dict[str, Any]], rules: list[dict[str, Any]]
):
    """Each SLO rule's figure against the knob (one panel per rule; one series per grid value),
    passes as dots and failures as crosses, the rule's limit as a dashed line, and the bracket
    the search found shaded: the boundary, while it is being searched and after. ``rules`` are
    the parsed rules as plain dicts (figure, value, text, factor: from the figure's unit to the
    rule's), so results need not know the SLO grammar."""
    if probes.empty or "value" not in probes:
        return None
    knob = meta.get("knob", {})
    per = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
    scale = per.get(knob.get("unit") or "", 1.0) if not knob.get("integer") else 1.0
    label = knob.get("name", "load") + (f" (/{knob['unit']})" if knob.get("unit") and scale != 1.0 else "")
    if not rules:
        return None
    fig = _figure(4.2 * len(rules) + 0.6, 3.3)
    axes = fig.subplots(1, len(rules), squeeze=False)[0]
    counted = probes[probes["counted"].astype(bool)] if "counted" in probes else probes
    groups = list(counted.groupby("grid", dropna=False)) if "grid" in counted else [(None, counted)]
    for ax, rule in zip(axes, rules, strict=True):
        figure, limit, text, factor = rule["figure"], rule["value"], rule["text"], rule["factor"]
        for grid, rows in groups:
            if figure not in rows:
                continue
            rows = rows.sort_values("value")
            x = rows["value"].astype(float) * scale
            y = pd.to_numeric(rows[figure], errors="coerce") * factor
            name = "" if grid is None or (isinstance(grid, float) and np.isnan(grid)) else f"{grid}"
            (line,) = ax.plot(x, y, "-", alpha=0.5, label=name or None)
            ok = rows["passed"].astype(bool).to_numpy()
            ax.plot(x[ok], y[ok], "o", color=line.get_color())
            ax.plot(x[~ok], y[~ok], "x", color=line.get_color(), markersize=8)
        ax.axhline(limit * factor, color="red", linestyle="--", linewidth=1)
        for a in answers:
            lo, hi = a.get("feasible"), a.get("infeasible")
            if lo is not None and hi is not None:
                ax.axvspan(lo * scale, hi * scale, color="orange", alpha=0.2)
        ax.set(xlabel=label, title=text, xscale="log")
        ax.set_ylim(bottom=0)
        if len(groups) > 1:
            ax.legend(title=meta.get("grid", {}).get("name"), fontsize=7)
    return fig
