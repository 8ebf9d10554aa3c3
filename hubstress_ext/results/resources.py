"""What the sandbox's processes used during a run (rows from ``sandbox.resources``)."""

from __future__ import annotations

import pandas as pd


def demand_pct(rows: pd.DataFrame) -> pd.Series:
    """CPU % plus % of the time waiting for a core: what a process asked for. Runs saved
    before the wait was sampled have CPU % alone."""
    return rows["cpu_pct"] + rows["wait_pct"] if "wait_pct" in rows else rows["cpu_pct"]


def resource_summary(resources: pd.DataFrame) -> pd.DataFrame:
    """Per role: CPU seconds used during the run, mean and peak CPU %, mean % of the time
    waiting for a core (when sampled), peak RSS."""
    columns = ["cpu_s", "cpu_mean_pct", "cpu_peak_pct", "rss_peak_mb"]
    if resources is None or resources.empty:
        return pd.DataFrame(columns=columns)
    rows = {}
    for role, group in resources.groupby("role", sort=False):
        group = group.sort_values("time")
        span = group["time"].iloc[-1] - group["time"].iloc[0]
        used = group["cpu_s"].iloc[-1] - group["cpu_s"].iloc[0]
        row = {
            "cpu_s": used,
            "cpu_mean_pct": 100.0 * used / span if span > 0 else float("nan"),
            "cpu_peak_pct": group["cpu_pct"].iloc[1:].max() if len(group) > 1 else float("nan"),
        }
        if "wait_s" in group:
            waited = group["wait_s"].iloc[-1] - group["wait_s"].iloc[0]
            row["wait_mean_pct"] = 100.0 * waited / span if span > 0 else float("nan")
        row["rss_peak_mb"] = group["rss_mb"].max()
        rows[role] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("process")


def seconds_at_or_above(demand: pd.Series, threshold: float) -> float:
    """Sum of the sampling intervals that ended with ``demand`` (indexed by sample time, sorted)
    at or above ``threshold``: each sample's % is over the interval before it."""
    if len(demand) < 2:
        return 0.0
    intervals = demand.index.to_series().diff().iloc[1:]
    return float(intervals[(demand.iloc[1:] >= threshold).to_numpy()].sum())


def busy_seconds(resources: pd.DataFrame, role: str, threshold: float = 90.0) -> float:
    """How long ``role`` asked for at least ``threshold`` % of one core (running or waiting
    for a core; sum of its intervals)."""
    if resources is None or resources.empty:
        return 0.0
    group = resources[resources["role"] == role].sort_values("time")
    return seconds_at_or_above(demand_pct(group).set_axis(group["time"]), threshold)
