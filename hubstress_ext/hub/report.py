"""The text report of a hub scenario: its table, then what that scenario adds."""

from __future__ import annotations

import pandas as pd

from hubstress_ext.results.phases import failures_by_reason, spawn_latency_ms
from hubstress_ext.results.summary import format_table


def tables(summary: pd.DataFrame) -> list[str]:
    if summary.empty:
        return ["(no requests recorded)"]
    return ["", format_table(summary)]


def spawn_lines(users: pd.DataFrame) -> list[str]:
    """Spawn latency percentiles and failures by reason (a spawn storm's addition)."""
    if users.empty:
        return []
    lat = spawn_latency_ms(users)
    ready = int(users["ready"].notna().sum())
    lines = [
        "",
        f"spawn latency (request -> ready), {ready}/{len(users)} ready: "
        + "  ".join(f"{k.removesuffix('_ms')}={v / 1000:.2f}s" for k, v in lat.items() if pd.notna(v)),
    ]
    failures = failures_by_reason(users)
    if not failures.empty:
        lines += ["", "failures by reason:", format_table(failures)]
    return lines


def saved_options_line(meta: dict) -> list[str]:
    opts = meta.get("options", {})
    shown = {k: opts[k] for k in ("count", "batch_size", "workers", "profile") if opts.get(k)}
    return ["options: " + ", ".join(f"{k}={v}" for k, v in shown.items())] if shown else []
