"""Request records: what the HTTP client writes for every attempt, and every summary, chart and
saved run is built from."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd


@dataclass(slots=True)
class Record:
    """One HTTP request attempt (a retry is its own record, with ``attempt`` > 1).

    ``start``/``end`` are wall-clock epoch seconds so records from several processes line up;
    ``latency_ms`` comes from a monotonic clock so it is immune to clock steps.
    """

    op: str
    method: str
    path: str
    start: float
    end: float
    latency_ms: float
    status: int | None = None
    error: str | None = None
    attempt: int = 1
    user: str | None = None
    will_retry: bool = False
    # an answer the caller asked for, such as the 404 of a marker group that does not exist
    # yet: recorded like any answer, but not an error in the report
    expected: bool = False

    @property
    def ok(self) -> bool:
        return self.expected or (self.error is None and self.status is not None and self.status < 400)


RECORD_COLUMNS = [f.name for f in dataclasses.fields(Record)]


def timed_record(
    op: str,
    method: str,
    path: str,
    user: str | None,
    wall: float,
    elapsed: float,
    status: int | None,
    error: str | None,
) -> Record:
    """A record of one step that began at ``wall`` (epoch) and took ``elapsed`` (monotonic) seconds."""
    return Record(
        op=op,
        method=method,
        path=path,
        start=wall,
        end=wall + elapsed,
        latency_ms=elapsed * 1000.0,
        status=status,
        error=error,
        user=user,
    )


class RecordSink:
    """Thread-safe append-only store of records.

    Appends come from the event loop; readers (a notebook display refreshing from another
    thread) take snapshots, so a lock keeps the list consistent for both.
    """

    def __init__(self) -> None:
        self._records: list[Record] = []
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def to_frame(self) -> pd.DataFrame:
        return records_to_frame(self.snapshot())


def records_to_frame(records: Iterable[Record]) -> pd.DataFrame:
    rows = [dataclasses.astuple(r) for r in records]
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    if not df.empty:
        df["status"] = df["status"].astype("Int64")
    return df
