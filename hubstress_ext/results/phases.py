"""The spawn-storm report's phase table, computed from records + lifecycles (live or saved)."""

from __future__ import annotations

import pandas as pd

from hubstress_ext.results.summary import latency_stats, summarize, summary_frame, summary_row


def phase_table(
    records: pd.DataFrame, users: pd.DataFrame, by_op: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Rows: create, spawn, ready, stop, delete.

    ``ready`` is per-user spawn latency (request -> ready), what a student waits for; ``stop``
    is request -> stopped. ``create``, ``spawn`` and ``delete`` time the HTTP requests.
    """
    by_op = summarize(records) if by_op is None else by_op  # the caller may have it already
    rows: dict[str, dict] = {}
    for op in ("create", "spawn"):
        if op in by_op.index:
            rows[op] = by_op.loc[op].to_dict()
    if not users.empty and users["spawn_requested"].notna().any():
        spawned = users[users["spawn_requested"].notna()]
        ends = pd.concat([spawned["ready"], spawned["failed"]]).dropna()
        rows["ready"] = summary_row(
            (spawned["ready"] - spawned["spawn_requested"]).dropna() * 1000.0,
            count=len(spawned),
            errors=int(spawned["ready"].isna().sum()),
            retries=int((spawned["spawn_attempts"] - 1).clip(lower=0).sum()),
            start=float(spawned["spawn_requested"].min()),
            end=float(ends.max()) if not ends.empty else float(spawned["spawn_requested"].max()),
        )
    if not users.empty and users["stop_requested"].notna().any():
        stopped = users[users["stop_requested"].notna()]
        ends = stopped["stopped"].dropna()
        rows["stop"] = summary_row(
            (stopped["stopped"] - stopped["stop_requested"]).dropna() * 1000.0,
            count=len(stopped),
            errors=int(stopped["stopped"].isna().sum()),
            retries=int(by_op.loc["stop", "retries"]) if "stop" in by_op.index else 0,
            start=float(stopped["stop_requested"].min()),
            end=float(ends.max()) if not ends.empty else float(stopped["stop_requested"].max()),
        )
    if "delete" in by_op.index:
        rows["delete"] = by_op.loc["delete"].to_dict()
    return summary_frame(rows, "phase")


def failures_by_reason(users: pd.DataFrame) -> pd.DataFrame:
    """Failed users by cause (throttled, hub full, ...; when known) and reason."""
    if users.empty or "reason" not in users:
        return pd.DataFrame(columns=["users"])
    failed = users[users["reason"].notna()].copy()
    if "cause" not in failed:  # a run saved before causes were named
        return failed.groupby("reason").size().rename("users").to_frame()
    failed["cause"] = failed["cause"].fillna("-")
    return failed.groupby(["cause", "reason"]).size().rename("users").to_frame()


def spawn_latency_ms(users: pd.DataFrame) -> dict[str, float]:
    if users.empty:
        return latency_stats([])
    return latency_stats((users["ready"] - users["spawn_requested"]).dropna() * 1000.0)
