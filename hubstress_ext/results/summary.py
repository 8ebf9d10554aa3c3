"""Summaries: per-operation (or per-phase) latency percentiles, errors and throughput."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = [
    "count",
    "errors",
    "retries",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "wall_s",
    "per_s",
]


def percentiles(values: Iterable[float], suffix: str = "", digits: int | None = None) -> dict[str, float]:
    """p50, p90, p99 and max of ``values`` (NaN ignored; NaN each when there are none).

    The one percentile helper: run summaries, the load generator's stats and the batching
    endpoint's ``/stats`` all report through it, so the same data gives the same figures.
    """
    arr = np.asarray(values if isinstance(values, np.ndarray | pd.Series) else list(values), dtype=float)
    arr = arr[~np.isnan(arr)]
    keys = [f"{k}{suffix}" for k in ("p50", "p90", "p99", "max")]
    if arr.size == 0:
        return dict.fromkeys(keys, math.nan)
    figures = [*np.percentile(arr, [50, 90, 99]), arr.max()]
    return {k: float(v if digits is None else round(v, digits)) for k, v in zip(keys, figures, strict=True)}


def latency_stats(latencies_ms: pd.Series | np.ndarray) -> dict[str, float]:
    return percentiles(latencies_ms, "_ms")


def summary_row(
    latencies_ms, *, count: int, errors: int, retries: int, start: float, end: float
) -> dict[str, float]:
    wall = max(end - start, 0.0) if count else 0.0
    row = {"count": count, "errors": errors, "retries": retries}
    row.update(latency_stats(latencies_ms))
    row["wall_s"] = wall
    row["per_s"] = (count / wall) if wall > 0 else np.nan
    return row


COUNT_COLUMNS = ("count", "errors", "retries")
# latencies come from a monotonic clock read to the nanosecond, but an HTTP request's time means
# nothing below a microsecond; wall time from epoch stamps (microseconds)
ROUNDING = {"p50_ms": 3, "p90_ms": 3, "p99_ms": 3, "max_ms": 3, "wall_s": 6, "per_s": 3}


def summary_frame(rows: dict, index_name: str) -> pd.DataFrame:
    """A summary table: counts as integers, times rounded to what the clock resolves."""
    df = pd.DataFrame.from_dict(rows, orient="index", columns=SUMMARY_COLUMNS).rename_axis(index_name)
    return typed_summary(df)


def typed_summary(df: pd.DataFrame) -> pd.DataFrame:
    counts = [c for c in COUNT_COLUMNS if c in df]
    if not df.empty:
        df[counts] = df[counts].fillna(0).astype(int)
    return df.round({k: v for k, v in ROUNDING.items() if k in df})


def summarize(records: pd.DataFrame, by: str = "op") -> pd.DataFrame:
    """One row per operation over *final* attempts; retried attempts are counted, not timed.

    A request that was retried twice and then succeeded is one request, two retries and the
    latency of its last attempt, so percentiles describe what callers experienced per attempt
    while ``retries`` shows the pressure.
    """
    if records.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS).rename_axis(by)
    rows = {}
    for key, group in records.groupby(by, sort=False):
        final = group[~group["will_retry"]]
        failed = final["error"].notna() | (final["status"].fillna(599) >= 400)
        if "expected" in final:  # older saved runs have no such column
            failed &= ~final["expected"].fillna(False).astype(bool)
        rows[key] = summary_row(
            final["latency_ms"],
            count=len(final),
            errors=int(failed.sum()),
            retries=int(group["will_retry"].sum()),
            start=float(group["start"].min()),
            end=float(group["end"].max()),
        )
    return summary_frame(rows, by)


def format_table(df: pd.DataFrame) -> str:
    """Plain-text table for terminals and logs."""
    from tabulate import tabulate

    shown = df.copy()
    for col in shown.columns:
        if col in ("count", "errors", "retries", "users"):
            shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else f"{int(v):,}")
        elif shown[col].dtype.kind == "f":
            shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else f"{v:,.1f}")
    return tabulate(shown, headers="keys", tablefmt="simple", disable_numparse=True)


def shard_lines(cluster: str, shards: pd.DataFrame | None, warnings: list[str]) -> list[str]:
    """A --dask run's report lines: where it ran, one row per shard, then each warning."""
    has_rows = shards is not None and not shards.empty
    lines = ["", f"shards on {cluster}" + (":" if has_rows else "")]
    if has_rows:
        lines.append(format_table(shards.drop(columns=["error"], errors="ignore").set_index("shard")))
    return lines + [f"warning: {w}" for w in warnings]
