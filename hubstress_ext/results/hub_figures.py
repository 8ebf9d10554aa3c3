"""The hub's own account of a run, from its Prometheus metrics scraped before and after.

Counters and histograms are cumulative since the hub started, so the run's share is the last
scrape minus the first. A percentile from a histogram is the bucket its rank falls in, reported
as a bound ("<= 25 s"); interpolating within the bucket (Prometheus's ``histogram_quantile``)
would print a figure that looks measured and is not.
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
    # the upper bounds of the buckets the spawn p50/p90 fall in (a histogram gives no more; an
    # upper bound is what a rule "hub.spawn.p90<30s" can trust)
    spawn_p50_s: float = math.nan
    spawn_p90_s: float = math.nan
    spawn_p50_bucket: tuple[float, float] = (math.nan, math.nan)
    spawn_p90_bucket: tuple[float, float] = (math.nan, math.nan)
    refused_429: dict[str, int] = field(default_factory=dict)  # handler -> 429s answered
    proxy_add_p99_s: float = math.nan  # upper bounds of buckets, like the spawn figures
    proxy_add_p99_bucket: tuple[float, float] = (math.nan, math.nan)
    event_loop_p99_s: float = math.nan
    event_loop_p99_bucket: tuple[float, float] = (math.nan, math.nan)
    event_loop_max_s: float = math.nan  # the upper bound of the highest bucket that was hit
    running_servers_max: float = math.nan  # the hub's gauge at its highest in the scrapes
    running_servers_scrapes: int = 0  # how many scrapes that maximum is over

    @property
    def throttled(self) -> int:
        return self.spawns.get("failure/throttled", 0)

    @property
    def hub_full(self) -> int:
        return self.spawns.get("failure/too-many-users", 0)


def quantile_bucket(buckets: list[tuple[float, float]], q: float) -> tuple[float, float]:
    """The bucket (lower, upper] the q-quantile falls in: all that a histogram really says.
    (nan, nan) when it holds nothing; upper is inf when the rank is in the +Inf bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return math.nan, math.nan
    rank = q * buckets[-1][1]
    lower = 0.0
    for bound, count in buckets:
        if count >= rank and count > 0:
            return lower, bound
        lower = bound
    return lower, math.inf


def bucket_text(bucket: tuple[float, float], unit: str = "s") -> str:
    """'<= 25 s (its bucket 15-25)': a bound from the hub's buckets, said as one."""
    lower, upper = bucket
    if math.isnan(upper):
        return "-"
    if math.isinf(upper):
        return f"> {lower:g} {unit} (its last bucket)"
    return f"<= {upper:g} {unit} (its bucket {lower:g}-{upper:g})"


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
    figures.spawn_p50_bucket = quantile_bucket(figures.spawn_buckets, 0.5)
    figures.spawn_p90_bucket = quantile_bucket(figures.spawn_buckets, 0.9)
    figures.spawn_p50_s = figures.spawn_p50_bucket[1]
    figures.spawn_p90_s = figures.spawn_p90_bucket[1]
    for labels, value in _delta(metrics, PREFIX + "request_duration_seconds_count"):
        if labels.get("code") == "429" and value > 0:
            handler = labels.get("handler", "?")
            figures.refused_429[handler] = figures.refused_429.get(handler, 0) + round(value)
    figures.proxy_add_p99_bucket = quantile_bucket(_buckets(metrics, "proxy_add_duration_seconds"), 0.99)
    figures.proxy_add_p99_s = figures.proxy_add_p99_bucket[1]
    loop = _buckets(metrics, "event_loop_interval_seconds")
    figures.event_loop_p99_bucket = quantile_bucket(loop, 0.99)
    figures.event_loop_p99_s = figures.event_loop_p99_bucket[1]
    hit = [
        bound for (bound, count), (_, before) in zip(loop, [(0, 0.0), *loop], strict=False) if count > before
    ]
    figures.event_loop_max_s = hit[-1] if hit else math.nan
    running = metrics[metrics["metric"] == PREFIX + "running_servers"]
    figures.running_servers_max = float(running["value"].max()) if not running.empty else math.nan
    figures.running_servers_scrapes = int(running["time"].nunique())
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
        "spawn p50": (
            bucket_text(figures.spawn_p50_bucket),
            _seconds(measured.quantile(0.5) if len(measured) else math.nan),
        ),
        "spawn p90": (
            bucket_text(figures.spawn_p90_bucket),
            _seconds(measured.quantile(0.9) if len(measured) else math.nan),
        ),
        "spawns refused with 429": (
            f"{figures.throttled + figures.hub_full} "
            f"({figures.throttled} throttled, {figures.hub_full} hub full)",
            str(seen_429),
        ),
        "429s by handler": (", ".join(f"{k} {v}" for k, v in sorted(figures.refused_429.items())) or "0", ""),
        "proxy_add p99": (bucket_text(figures.proxy_add_p99_bucket), ""),
        "event loop p99": (bucket_text(figures.event_loop_p99_bucket), ""),
        "event loop max": (f"<= {_s(figures.event_loop_max_s)} s (its highest bucket hit)", ""),
        "running servers, max": (
            _gauge_text(figures.running_servers_max, figures.running_servers_scrapes),
            f"{running_servers_max(users)} (from ready to stopped)",
        ),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["hub", "hubstress"]).rename_axis("figure")


def running_servers_max(users: pd.DataFrame) -> int:
    """The most servers of this run running at one instant, by the client's own clock: each
    from its ready event until its stop was answered (or asked for, or the end if kept)."""
    if users.empty or "ready" not in users or users["ready"].isna().all():
        return 0
    ready = users["ready"].dropna()
    rows = users.loc[ready.index]
    end = rows["stopped"].fillna(rows["stop_requested"]).fillna(math.inf).to_numpy()
    starts = ready.to_numpy()
    # just after each start: how many started by then and have not ended
    return int(max(((starts <= t) & (end > t)).sum() for t in starts))


def _gauge_text(value: float, scrapes: int) -> str:
    if math.isnan(value):
        return "-"
    how = (
        f"{scrapes} scrapes" if scrapes > 2 else "scraped only before and after: --scrape-metrics samples it"
    )
    return f"{value:.0f} (its gauge, {how})"


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f} s (measured)"


def _s(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
