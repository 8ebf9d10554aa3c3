"""Columnar per-request records: cheap to append on the hot path, a DataFrame at the end.

One row per request: when it was meant to go out (open loop; = sent for closed loop), when it
was written, when the answer (or failure) arrived, its HTTP status, an outcome ("ok", "busy",
"http 500", "timeout", "connection error", ...), and the server-reported ``ts_diff`` and
``batch_size`` when the endpoint sends them. Times are seconds on the monotonic clock;
``to_frame`` turns them into seconds since the start of the run plus wall-clock stamps.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd

OK = "ok"
BUSY = "busy"

COLUMNS = ("intended", "sent", "done", "status", "outcome", "ts_diff_ms", "batch_size")


def outcome_of(status: int, body: bytes) -> tuple[str, float, int]:
    """(outcome, ts_diff_ms, batch_size) of one answer; NaN/-1 when the body does not say."""
    ts_diff, batch_size = math.nan, -1
    if body[:1] == b"{":
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            value = doc.get("ts_diff")
            if isinstance(value, int | float):
                ts_diff = float(value)
            size = doc.get("batch_size")
            if isinstance(size, int):
                batch_size = size
            if status in (503, 429) and doc.get("error") == "busy":
                return BUSY, ts_diff, batch_size
    if 200 <= status < 300:
        return OK, ts_diff, batch_size
    return f"http {status}", ts_diff, batch_size


class Recorder:
    """Append-only columns; ``mark`` lets a live display read only what is new."""

    def __init__(self, origin: float | None = None) -> None:
        self.intended: list[float] = []
        self.sent: list[float] = []
        self.done: list[float] = []
        self.status: list[int] = []
        self.outcome: list[str] = []
        self.ts_diff: list[float] = []
        self.batch_size: list[int] = []
        self.failed = 0  # outcomes other than "ok", kept as they come (live progress reads it)
        now = time.monotonic()
        self.origin = now if origin is None else origin  # monotonic time of the run's start...
        self.origin_wall = time.time() - (now - self.origin)  # ...and the wall clock at that moment

    def __len__(self) -> int:
        return len(self.done)

    def add(
        self,
        intended: float,
        sent: float,
        done: float,
        status: int,
        outcome: str,
        ts_diff: float = math.nan,
        batch_size: int = -1,
    ) -> None:
        self.intended.append(intended)
        self.sent.append(sent)
        self.done.append(done)
        self.status.append(status)
        self.outcome.append(outcome)
        if outcome != OK:
            self.failed += 1
        self.ts_diff.append(ts_diff)
        self.batch_size.append(batch_size)

    def to_frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        n = len(self.done) if stop is None else stop
        origin = self.origin
        intended = np.asarray(self.intended[start:n]) - origin
        sent = np.asarray(self.sent[start:n]) - origin
        done = np.asarray(self.done[start:n]) - origin
        return pd.DataFrame(
            {
                "t_intended": intended,
                "t_sent": sent,
                "t_done": done,
                "latency_ms": (done - intended) * 1000.0,
                "service_ms": (done - sent) * 1000.0,
                "status": np.asarray(self.status[start:n], dtype=np.int16),
                "outcome": pd.Categorical(self.outcome[start:n]),
                "ts_diff_ms": np.asarray(self.ts_diff[start:n], dtype=float),
                "batch_size": np.asarray(self.batch_size[start:n], dtype=np.int32),
                "time": pd.to_datetime(self.origin_wall + done, unit="s", utc=True),
            }
        )
