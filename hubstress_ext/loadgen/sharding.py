"""bench and sweep over Dask: one load split into shards (one per worker), merged back.

Closed loop: workers and the request budget are split evenly. Open loop: each shard schedules
R/N per second; Poisson shards use different seeds (independent Poisson streams at R/N sum to
a Poisson stream at R), constant shards are offset by 1/R each so the merged schedule stays
evenly spaced. Every request carries ``X-Hubstress-Shard`` so a target can tell shards apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hubstress_ext.cluster.coordinator import NOT_WHOLE, Coordinator, ShardState
from hubstress_ext.cluster.merge import concat_chunks, merge
from hubstress_ext.cluster.shard import share
from hubstress_ext.cluster.target import Cluster
from hubstress_ext.engine.shard_job import OptionsShardJob
from hubstress_ext.errors import OptionError
from hubstress_ext.loadgen.connection import Target
from hubstress_ext.loadgen.load import (
    BEHIND_LAG_MS,
    STOP_GRACE_S,
    LoadResult,
    Schedule,
    check_reachable,
    run_load,
)
from hubstress_ext.loadgen.loops import ClosedLoop, OpenLoop
from hubstress_ext.loadgen.options import LoadOptions
from hubstress_ext.loadgen.recorder import Recorder

SHARD_HEADER = "X-Hubstress-Shard"
BUSY_CPU_PCT = 90.0  # a shard above this was itself the limit, not the target
LATE_WARN_MS = 50.0  # a shard that got going later than this after the common start is named
SLOW_FIRST_MS = 250.0  # ...or that sent its first request later than this (its connects hung)
TIME_COLUMNS = ("t_intended", "t_sent", "t_done")


def split(opts: LoadOptions, n: int) -> list[tuple[LoadOptions, float]]:
    """(options, schedule phase) per shard."""
    if not opts.open_loop and opts.workers < n:
        raise OptionError(f"--workers {opts.workers} is fewer than the {n} shards: give at least {n}")
    if opts.requests is not None and opts.requests < n:
        raise OptionError(f"--requests {opts.requests} is fewer than the {n} shards: give at least {n}")
    parts = []
    for i in range(n):
        part = opts.for_shard()
        phase = 0.0
        if opts.open_loop:
            assert opts.rate is not None
            part.rate = opts.rate / n
            part.seed = opts.seed * 1000 + i  # shard 0 of any run draws what a 1-shard run draws
            if opts.arrival == "constant":
                phase = i / opts.rate
        else:
            part.workers = share(opts.workers, n, i)
        if opts.requests is not None:
            part.requests = share(opts.requests, n, i)
        parts.append((part, phase))
    return parts


@dataclass
class BenchShard(OptionsShardJob):
    """One shard of a bench (or of one sweep cell), run on its worker."""

    options: LoadOptions
    shard: int = 0
    phase: float = 0.0
    grace: float | None = None
    _recorder: Recorder | None = field(default=None, repr=False)
    _load: Any = field(default=None, repr=False)
    _stopping: bool = False
    _sent: int = 0
    _result: LoadResult | None = field(default=None, repr=False)

    async def prepare(self) -> None:
        await check_reachable(Target(self.options.url), min(self.options.request_timeout, 10.0))

    async def run(self, t0: float) -> None:
        self._recorder = Recorder(origin=t0)
        self._result = await run_load(
            self.options,
            self._recorder,
            on_loop=self._set_load,
            grace=self.grace,
            headers={SHARD_HEADER: str(self.shard)},
            phase=self.phase,
            start=t0,
        )

    def _set_load(self, load: ClosedLoop | OpenLoop) -> None:
        self._load = load
        if self._stopping:
            self.stop()

    def stop(self) -> None:
        self._stopping = True
        if self._load is not None:
            self._load.stop()
            self._load.timeout = STOP_GRACE_S

    def chunk(self) -> pd.DataFrame | None:
        if self._recorder is None:
            return None
        n = len(self._recorder)
        if n == self._sent:
            return None
        frame = self._recorder.to_frame(self._sent, n)
        self._sent = n
        return frame

    def counts(self) -> tuple[int, int]:
        rec = self._recorder
        return (len(rec), rec.failed) if rec is not None else (0, 0)

    def final(self) -> dict[str, Any]:
        res = self._result
        if res is None:
            return {}
        out: dict[str, Any] = {"load_elapsed_s": res.elapsed, "load_cpu_s": res.cpu}
        rec = self._recorder
        if rec is not None and rec.sent:  # how long the shard took to get its first request out
            out["first_sent_ms"] = round((min(rec.sent) - rec.origin - self.phase) * 1000.0, 2)
        if res.schedule is not None:
            sched = res.schedule
            out["schedule"] = {
                "scheduled": sched.scheduled,
                "window_s": sched.window_s,
                "lag_s": sched.lag_s.astype(np.float32),
                "waited_for_connection": sched.waited_for_connection,
            }
        return out


async def run_sharded(
    cluster: Cluster,
    opts: LoadOptions,
    *,
    grace: float | None = None,
    on_coordinator: Callable[[Coordinator], None] | None = None,
    on_progress: Callable[[list[ShardState]], None] | None = None,
) -> LoadResult:
    """One load over every worker of ``cluster``, merged into one :class:`LoadResult`."""
    parts = split(opts, len(cluster.workers))
    jobs = [BenchShard(o, i, phase, grace) for i, (o, phase) in enumerate(parts)]
    max_seconds = opts.time_limit + (opts.request_timeout if grace is None else grace) + 5.0
    coordinator = Coordinator(cluster, jobs, max_seconds=max_seconds, on_progress=on_progress)
    if on_coordinator is not None:
        on_coordinator(coordinator)
    states = await coordinator.run()
    return sharded_result(states, coordinator.start, coordinator.start_local, opts.open_loop)


def merged_frame(states: list[ShardState], start: float | None, start_local: float | None) -> pd.DataFrame:
    """Every shard's records so far, on one time base: seconds since the common start."""
    parts = []
    for s in states:
        frame = concat_chunks(s.records())
        if frame is None:
            continue
        delta = (s.started - start) if s.started is not None and start is not None else 0.0
        parts.append((s.shard, s.worker, frame, delta))
    df = merge(parts, TIME_COLUMNS, sort_by="t_done", empty=lambda: Recorder().to_frame())
    if start_local is not None and len(df):
        df["time"] = pd.to_datetime(start_local + df["t_done"].to_numpy(), unit="s", utc=True)
    return df


def sharded_result(
    states: list[ShardState], start: float | None, start_local: float | None, open_loop: bool
) -> LoadResult:
    frame = merged_frame(states, start, start_local)
    results = [s.result or {} for s in states]
    elapsed = max([r.get("load_elapsed_s", 0.0) for r in results] + [1e-9])
    if not any("load_elapsed_s" in r for r in results) and len(frame):
        elapsed = max(float(frame["t_done"].max()), 1e-9)
    cpu = float(sum(r.get("load_cpu_s", 0.0) for r in results))
    schedule = _merged_schedule(states, frame) if open_loop else None
    table = shard_table(states, frame)
    return LoadResult(frame, elapsed, cpu, schedule, table, shard_warnings(table))


def _merged_schedule(states: list[ShardState], frame: pd.DataFrame) -> Schedule:
    scheduled, window, waited, lags = 0, 0.0, 0, []
    for s in states:
        sched = (s.result or {}).get("schedule")
        if sched is None:  # lost: what it had sent is what it scheduled
            scheduled += int((frame["shard"] == s.shard).sum()) if len(frame) else 0
            continue
        scheduled += sched["scheduled"]
        window = max(window, sched["window_s"])
        waited += sched["waited_for_connection"]
        lags.append(np.asarray(sched["lag_s"], dtype=float))
    if not window and len(frame):
        window = float(frame["t_intended"].max())
    lag = np.concatenate(lags) if lags else np.array([])
    return Schedule(scheduled, window, 0.0, lag, waited)


def shard_table(states: list[ShardState], frame: pd.DataFrame) -> pd.DataFrame:
    """``run.shards``: shard, worker, status, requests (from the records), CPU %, start offset."""
    rows = []
    for s in states:
        row = s.row()
        if len(frame):
            mine = frame[frame["shard"] == s.shard]
            row["requests"] = len(mine)
            row["failed"] = int((mine["outcome"].astype(str) != "ok").sum())
        sched = (s.result or {}).get("schedule")
        lag = np.asarray(sched["lag_s"]) if sched else np.array([])
        row["lag_p99_ms"] = round(float(np.percentile(lag, 99)) * 1000.0, 3) if lag.size else None
        rows.append(row)
    return pd.DataFrame(rows)


def shard_warnings(table: pd.DataFrame) -> list[str]:
    """Lost shards, and shards that were themselves the bottleneck (CPU, late scheduler)."""
    out = []
    for row in table.to_dict("records"):
        where = f"shard {row['shard']} ({row['worker']})"
        if row["status"] in NOT_WHOLE:
            out.append(f"{where} {row['status']}: {row['error']}; its {row['requests']} request(s) are kept")
            continue
        if not row["requests"]:
            out.append(f"{where} sent no request: its share of the load is missing from the result")
        first = row.get("first_sent_ms")
        if first is not None and first == first and first > SLOW_FIRST_MS:
            out.append(
                f"{where} sent its first request {first:,.0f} ms after the start (connecting to "
                "the target took that long): the start of its share was lost"
            )
        late = row.get("start_offset_ms")
        if late is not None and late > LATE_WARN_MS:
            out.append(
                f"{where} got going {late:,.0f} ms after the common start: the start of its share "
                "was lost (a busy worker or scheduler)"
            )
        if row["cpu_pct"] == row["cpu_pct"] and row["cpu_pct"] > BUSY_CPU_PCT:
            out.append(
                f"{where} used {row['cpu_pct']:.0f}% of a CPU: the generator, not the target, "
                "may have limited the result"
            )
        if row.get("lag_p99_ms") is not None and row["lag_p99_ms"] > BEHIND_LAG_MS:
            out.append(
                f"{where}'s scheduler fell behind (lag p99 {row['lag_p99_ms']:.1f} ms): "
                "the shard, not the target, limited the result"
            )
    return out
