"""The hub's own account of a run, from its Prometheus metrics scraped before and after.

Counters and histograms are cumulative since the hub started, so the run's share is the last
scrape minus the first. Percentiles are estimated from histogram buckets the way Prometheus's
``histogram_quantile`` does: linear within the bucket the rank falls in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

PREFIX = "jupyterhub_"


@dataclass
class HubFigures:
    spawns: dict[str, int] = field(default_factory=dict)  # "success", "failure/throttled", ...
    spawn_buckets: list[tuple[float, float]] = field(default_factory=list)  # successful spawns
    spawn_p50_s: float = math.nan
    spawn_p90_s: float = math.nan
    refused_429: dict[str, int] = field(default_factory=dict)  # handler -> 429s answered
    proxy_add_p99_s: float = math.nan
    event_loop_p99_s: float = math.nan
    event_loop_max_s: float = math.nan  # the upper bound of the highest bucket that was hit
    running_servers_max: float = math.nan

    @property
    def throttled(self) -> int:
        return self.spawns.get("failure/throttled", 0)

    @property
    def hub_full(self) -> int:
        return self.spawns.get("failure/too-many-users", 0)


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of a cumulative histogram [(upper bound, count)], Prometheus-style."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _labels(text: str) -> dict[str, str]:
    return json.loads(text) if isinstance(text, str) and text else {}


def _delta(metrics: pd.DataFrame, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, last - first) of one metric's samples."""
    rows = metrics[metrics["metric"] == name]
    if rows.empty:
        return []
    first_t, last_t = rows["time"].min(), rows["time"].max()
    first = dict(
        zip(rows[rows["time"] == first_t]["labels"], rows[rows["time"] == first_t]["value"], strict=True)
    )
    last = rows[rows["time"] == last_t]
    if first_t == last_t:
        first = {}
    return [
        (_labels(lab), val - first.get(lab, 0.0))
        for lab, val in zip(last["labels"], last["value"], strict=True)
    ]


def _buckets(metrics: pd.DataFrame, name: str, **match: str) -> list[tuple[float, float]]:
    out: dict[float, float] = {}
    for labels, value in _delta(metrics, PREFIX + name + "_bucket"):
        if all(labels.get(k) == v for k, v in match.items()):
            bound = float(labels["le"])
            out[bound] = out.get(bound, 0.0) + value
    return sorted(out.items())


def hub_figures(metrics: pd.DataFrame) -> HubFigures | None:
    """The hub's figures for the run, or None when nothing was scraped."""
    if metrics is None or metrics.empty:
        return None
    figures = HubFigures()
    for labels, value in _delta(metrics, PREFIX + "server_spawn_duration_seconds_count"):
        if value > 0:
            key = labels.get("status", "?") + (f"/{labels['reason']}" if labels.get("reason") else "")
            figures.spawns[key] = figures.spawns.get(key, 0) + round(value)
    figures.spawn_buckets = _buckets(metrics, "server_spawn_duration_seconds", status="success")
    figures.spawn_p50_s = quantile(figures.spawn_buckets, 0.5)
    figures.spawn_p90_s = quantile(figures.spawn_buckets, 0.9)
    for labels, value in _delta(metrics, PREFIX + "request_duration_seconds_count"):
        if labels.get("code") == "429" and value > 0:
            handler = labels.get("handler", "?")
            figures.refused_429[handler] = figures.refused_429.get(handler, 0) + round(value)
    figures.proxy_add_p99_s = quantile(_buckets(metrics, "proxy_add_duration_seconds"), 0.99)
    loop = _buckets(metrics, "event_loop_interval_seconds")
    figures.event_loop_p99_s = quantile(loop, 0.99)
    hit = [
        bound for (bound, count), (_, before) in zip(loop, [(0, 0.0), *loop], strict=False) if count > before
    ]
    figures.event_loop_max_s = hit[-1] if hit else math.nan
    running = metrics[metrics["metric"] == PREFIX + "running_servers"]["value"]
    figures.running_servers_max = float(running.max()) if not running.empty else math.nan
    return figures


def accepted_spawn_seconds(records: pd.DataFrame, users: pd.DataFrame) -> pd.Series:
    """Per ready user: from the spawn request the hub accepted (the last attempt) to ready.

    What the hub's own spawn duration measures (a 429'd attempt is not a spawn to the hub).
    """
    if records.empty or users.empty or "ready" not in users:
        return pd.Series(dtype=float)
    spawns = records[records["op"] == "spawn"]
    last_attempt = spawns.sort_values("start").groupby("user")["start"].last()
    ready = users.set_index("user")["ready"].dropna()
    both = ready.index.intersection(last_attempt.index)
    return (ready[both] - last_attempt[both]).clip(lower=0)


def client_429s(records: pd.DataFrame, op: str = "spawn") -> int:
    if records.empty:
        return 0
    return int(((records["op"] == op) & (records["status"] == 429)).sum())


def comparison_table(figures: HubFigures, records: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """The hub's figures and ours side by side, one row per figure both can speak to."""
    measured = accepted_spawn_seconds(records, users)
    seen_429 = client_429s(records)
    rows = {
        "spawns (hub: by status)": (
            ", ".join(f"{k} {v}" for k, v in sorted(figures.spawns.items())) or "0",
            f"{int(users['spawn_requested'].notna().sum()) if 'spawn_requested' in users else 0} users",
        ),
        "spawn p50 (s)": (_s(figures.spawn_p50_s), _s(measured.quantile(0.5) if len(measured) else math.nan)),
        "spawn p90 (s)": (_s(figures.spawn_p90_s), _s(measured.quantile(0.9) if len(measured) else math.nan)),
        "spawns refused with 429": (
            f"{figures.throttled + figures.hub_full} "
            f"({figures.throttled} throttled, {figures.hub_full} hub full)",
            str(seen_429),
        ),
        "429s by handler": (", ".join(f"{k} {v}" for k, v in sorted(figures.refused_429.items())) or "0", ""),
        "proxy_add p99 (s)": (_s(figures.proxy_add_p99_s), ""),
        "event loop p99 / max (s)": (
            f"{_s(figures.event_loop_p99_s)} / <= {_s(figures.event_loop_max_s)}",
            "",
        ),
        "running servers, max": (_s(figures.running_servers_max, 0), ""),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["hub", "hubstress"]).rename_axis("figure")


def _s(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
