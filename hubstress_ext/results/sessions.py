"""A class of simulated students: one row per session, the step table, activity over time."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hubstress_ext.results.phases import phase_table
from hubstress_ext.results.summary import SUMMARY_COLUMNS, summarize, typed_summary

# the session's steps in the order a student goes through them (the report's rows)
SESSION_STEPS = ("token", "login", "oauth", "kernel_start", "ws_connect", "execute", "poll", "kernel_stop")


@dataclass(slots=True)
class SessionRow:
    user: str
    planned_arrival: float  # seconds after the class started, from the plan
    planned_session: float  # seconds the student stays once their server is ready
    arrived: float | None = None
    started: float | None = None  # the server ready: the session begins
    kernel_started: float | None = None
    connected: float | None = None
    executes: int = 0
    execute_failures: int = 0
    ended: float | None = None  # the student left (kernel shut down, server asked to stop)
    reason: str | None = None  # the first failure of this session


SESSION_COLUMNS = [f.name for f in dataclasses.fields(SessionRow)]


class SessionTable:
    def __init__(self) -> None:
        self._rows: dict[str, SessionRow] = {}
        self._lock = threading.Lock()

    def add(self, row: SessionRow) -> SessionRow:
        with self._lock:
            self._rows[row.user] = row
        return row

    def __getitem__(self, name: str) -> SessionRow:
        return self._rows[name]

    def rows(self) -> list[SessionRow]:
        with self._lock:
            return list(self._rows.values())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([dataclasses.astuple(r) for r in self.rows()], columns=SESSION_COLUMNS)


def step_table(records: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """One row per step: the server's (create, spawn, ready), the session's, then stop, delete."""
    by_op = summarize(records)
    servers = phase_table(records, users, by_op)
    rows = [servers.loc[[p]] for p in ("create", "spawn", "ready") if p in servers.index]
    rows += [by_op.loc[[op]] for op in SESSION_STEPS if op in by_op.index]
    rows += [servers.loc[[p]] for p in ("stop", "delete") if p in servers.index]
    if not rows:
        return pd.DataFrame(columns=SUMMARY_COLUMNS).rename_axis("step")
    return typed_summary(pd.concat(rows).rename_axis("step"))


def failures_by_reason(sessions: pd.DataFrame) -> pd.DataFrame:
    if sessions.empty:
        return pd.DataFrame(columns=["sessions"])
    failed = sessions[sessions["reason"].notna()]
    return (
        failed.groupby("reason").size().rename("sessions").to_frame().sort_values("sessions", ascending=False)
    )


def _spans(sessions: pd.DataFrame, users: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(sessions with their end, sorted starts, sorted ends) of the sessions that started.

    A session is active from its server's ready until the server stopped (or, kept, until the
    student left); one still going has no end yet.
    """
    merged = sessions.merge(users[["user", "stopped"]], on="user", how="left")
    merged["end"] = merged["stopped"].fillna(merged["ended"])
    started = merged[merged["started"].notna()]
    return merged, np.sort(started["started"].to_numpy()), np.sort(started["end"].fillna(np.inf).to_numpy())


def _active_at(starts: np.ndarray, ends: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sessions active at each time in ``t`` (started at or before it, not ended by it)."""
    return np.searchsorted(starts, t, side="right") - np.searchsorted(ends, t, side="right")


def active_over_time(sessions: pd.DataFrame, users: pd.DataFrame, step: float = 1.0) -> pd.DataFrame:
    """Active sessions per ``step`` seconds since the first arrival."""
    if sessions.empty or sessions["started"].isna().all():
        return pd.DataFrame(columns=["t", "active"])
    merged, starts, ends = _spans(sessions, users)
    t0 = float(merged["arrived"].min())
    last = float(np.nanmax([merged["end"].max(), merged["started"].max()]))
    grid = np.arange(0.0, max(last - t0, 0.0) + step, step)
    return pd.DataFrame({"t": grid, "active": _active_at(starts, ends, grid + t0)})


def peak_active(sessions: pd.DataFrame, users: pd.DataFrame) -> int:
    """The most sessions active at one instant (exact: the count just after some session starts)."""
    if sessions.empty or sessions["started"].isna().all():
        return 0
    _, starts, ends = _spans(sessions, users)
    return int(_active_at(starts, ends, starts).max())


def execute_over_time(records: pd.DataFrame, step: float = 5.0) -> pd.DataFrame:
    """Execute latency p50/p99 per ``step`` seconds (what students felt as the class went on)."""
    ex = records[records["op"] == "execute"] if not records.empty else records
    if ex.empty:
        return pd.DataFrame(columns=["t", "p50_ms", "p99_ms", "count"])
    t0 = float(ex["start"].min())
    bins = ((ex["start"] - t0) // step).astype(int)
    grouped = ex.groupby(bins)["latency_ms"]
    out = pd.DataFrame(
        {"p50_ms": grouped.quantile(0.5), "p99_ms": grouped.quantile(0.99), "count": grouped.size()}
    )
    out.index = out.index * step
    return out.rename_axis("t").reset_index()
