"""Per-user lifecycle rows: when each user was created, asked to spawn, ready, stopped, deleted."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import pandas as pd


@dataclass(slots=True)
class UserLifecycle:
    user: str
    created: float | None = None
    spawn_requested: float | None = None
    ready: float | None = None
    failed: float | None = None
    reason: str | None = None
    cause: str | None = None  # the reason in an operator's words: throttled, hub full, ...
    spawn_attempts: int = 0
    stop_requested: float | None = None
    stopped: float | None = None
    deleted: float | None = None

    @property
    def spawn_latency_s(self) -> float | None:
        if self.ready is None or self.spawn_requested is None:
            return None
        return self.ready - self.spawn_requested


LIFECYCLE_COLUMNS = [f.name for f in dataclasses.fields(UserLifecycle)]


class LifecycleTable:
    def __init__(self) -> None:
        self._rows: dict[str, UserLifecycle] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> UserLifecycle:
        with self._lock:
            row = self._rows.get(name)
            if row is None:
                row = self._rows[name] = UserLifecycle(name)
            return row

    def __contains__(self, name: str) -> bool:
        return name in self._rows

    def rows(self) -> list[UserLifecycle]:
        with self._lock:
            return list(self._rows.values())

    def to_frame(self) -> pd.DataFrame:
        return lifecycle_frame(self.rows())


def lifecycle_frame(rows: list[UserLifecycle]) -> pd.DataFrame:
    df = pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=LIFECYCLE_COLUMNS)
    df["spawn_latency_s"] = df["ready"] - df["spawn_requested"]
    df["stop_latency_s"] = df["stopped"] - df["stop_requested"]
    return df
