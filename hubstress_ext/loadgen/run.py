"""BenchRun: ``hubstress bench`` (closed or open loop against one URL) as a run object."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hubstress_ext.cluster.coordinator import degraded
from hubstress_ext.engine.run import Run
from hubstress_ext.errors import RunError
from hubstress_ext.loadgen import report
from hubstress_ext.loadgen.body import BodyTemplate
from hubstress_ext.loadgen.connection import Target
from hubstress_ext.loadgen.endpoint import AUTH_STATUSES, auth_hint
from hubstress_ext.loadgen.loops import ClosedLoop, OpenLoop
from hubstress_ext.loadgen.options import LoadOptions
from hubstress_ext.loadgen.recorder import Recorder
from hubstress_ext.loadgen.summary import bench_stats, timeline
from hubstress_ext.results import charts

PHASE = "requests"
TICK_S = 0.5
STOP_GRACE_S = 1.0  # after Ctrl-C / stop(): how long answers in flight may still arrive
BEHIND_LAG_MS = 5.0  # open loop: scheduler p99 lateness above this means the generator lagged
BEHIND_RATE = 0.97  # ...or sending below this fraction of the asked rate


async def check_reachable(target: Target, timeout: float) -> None:
    """One TCP connect before the load, so a wrong URL is one clear error, not N failures."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port, ssl=target.scheme == "https" or None), timeout
        )
    except TimeoutError:
        raise RunError(f"cannot connect to {target.url}: no answer within {timeout:g} s") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno == errno.ECONNREFUSED:
            reason += " (is the server running on that port?)"
        raise RunError(f"cannot connect to {target.url}: {reason}") from None
    writer.close()


@dataclass
class Schedule:
    """An open loop's schedule: how much was scheduled in which window, how late the sender was."""

    scheduled: int
    window_s: float
    start: float  # when the schedule began, in the records' time base (s)
    lag_s: np.ndarray  # dispatch time - scheduled time, per request
    waited_for_connection: int


@dataclass
class LoadResult:
    """One load's outcome, from one process or merged from many shards."""

    frame: pd.DataFrame  # one row per request (``loadgen.recorder``; + shard/worker when sharded)
    elapsed: float  # seconds the load was applied
    cpu: float  # the generator's CPU seconds (all shards together)
    schedule: Schedule | None = None  # open loop only
    shards: pd.DataFrame | None = None  # sharded: one row per shard (``cluster``)
    warnings: list[str] = field(default_factory=list)


async def run_load(
    opts: LoadOptions,
    recorder: Recorder,
    *,
    on_loop=None,
    grace: float | None = None,
    headers: dict[str, str] | None = None,
    phase: float = 0.0,
    start: float | None = None,
) -> LoadResult:
    """Drive one load to its end in this process.

    The objects that exist when the load starts are frozen out of the garbage collector
    for its duration (``gc.freeze``): answers parsed as JSON allocate many containers, and
    each collection would otherwise walk the whole process (pandas, the notebook, earlier
    runs). Measured: 2.7x the requests per second on 60 KB JSON answers (README).

    ``headers`` are added to every request, ``phase`` delays an open loop's schedule and
    ``start`` (monotonic) anchors it: a shard's part of a run spread over several processes.
    """
    t0 = time.monotonic() if start is None else start
    target = Target(opts.url, opts.method, {**opts.headers(), **(headers or {})})
    body = BodyTemplate(opts.template if isinstance(opts.template, dict) else None)
    render = body.render if target.method != "GET" else _no_body
    common = dict(requests=opts.requests, deadline=t0 + opts.time_limit, timeout=opts.timeout)
    if opts.open_loop:
        load: ClosedLoop | OpenLoop = OpenLoop(
            target,
            render,
            recorder,
            rate=opts.rate,
            arrival=opts.arrival,
            max_connections=opts.max_connections,
            seed=opts.seed,
            phase=phase,
            start=t0,
            **common,
        )
    else:
        load = ClosedLoop(target, render, recorder, workers=opts.workers, **common)
    if on_loop is not None:
        on_loop(load)
    cpu0 = time.process_time()
    gc.freeze()  # what exists now is never garbage-collected during the load (see below)
    try:
        await load.run(opts.timeout if grace is None else grace)
    finally:
        gc.unfreeze()
    end = time.monotonic()
    if load.stopping and recorder.done:  # rates over the time load was actually applied
        end = min(end, max(recorder.done))
    schedule = None
    if isinstance(load, OpenLoop):
        schedule = Schedule(
            load.scheduled,
            load.window_s,
            load.started - recorder.origin,
            np.asarray(load.scheduler_lag),
            load.waited_for_connection,
        )
    return LoadResult(recorder.to_frame(), max(end - t0, 1e-9), time.process_time() - cpu0, schedule)


def _no_body() -> None:
    return None


def _refused_status(statuses: list[int]) -> int | None:
    """401/403 when every answer so far was that refusal (no request got through)."""
    first = statuses[0] if statuses else None
    if first in AUTH_STATUSES and all(s == first for s in statuses):
        return first
    return None


class LoadRun(Run):
    """What bench and sweep share: where the load runs (here, or shards on Dask) and stopping it."""

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.load: ClosedLoop | OpenLoop | None = None
        self.coordinator: Any = None  # the sharded load going on now
        self.recorder: Recorder | None = None  # the local load going on now
        self.shard_states: list[Any] = []

    async def execute_load(self, opts: LoadOptions, grace: float | None = None) -> LoadResult:
        """One load: in this process, or split over the Dask cluster's workers and merged."""
        if self.cluster is None:
            self.recorder = Recorder()
            return await run_load(opts, self.recorder, on_loop=self._set_load, grace=grace)
        from hubstress_ext.loadgen.sharding import run_sharded

        return await run_sharded(
            self.cluster, opts, grace=grace, on_coordinator=self._set_coordinator, on_progress=self._on_shards
        )

    def _set_load(self, load: ClosedLoop | OpenLoop) -> None:
        self.load = load
        if self._stops:
            load.stop()

    def _set_coordinator(self, coordinator: Any) -> None:
        self.coordinator = coordinator
        for _ in range(self._stops):
            coordinator.stop()

    def _on_shards(self, states: list[Any]) -> None:
        self.shard_states = states

    def live_counts(self) -> tuple[int, int]:
        """(requests, failed) of the load going on now, for progress."""
        if self.cluster is not None:
            return sum(s.requests for s in self.shard_states), sum(s.failed for s in self.shard_states)
        rec = self.recorder
        return (len(rec), rec.failed) if rec is not None else (0, 0)

    def live_frame(self) -> pd.DataFrame:
        """The records of the load going on now (merged from the shards so far when sharded)."""
        if self.cluster is not None and self.coordinator is not None:
            from hubstress_ext.loadgen.sharding import merged_frame

            c = self.coordinator
            return merged_frame(list(self.shard_states), c.start, c.start_local)
        return self.recorder.to_frame() if self.recorder is not None else Recorder().to_frame()

    def report(self) -> str:
        lines = ["", f"hubstress {self.scenario}: {self.status} against {self.options.url}"]
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines + self.report_body() + self.verdict_lines())

    def report_body(self) -> list[str]:
        """The figures below the report's status line."""
        return []

    def on_stop(self) -> None:
        if self.coordinator is not None:
            self.coordinator.stop()
        if self.load is not None:
            self.load.stop()
            self.load.timeout = STOP_GRACE_S  # answers in flight get this long, then "unfinished"


class BenchRun(LoadRun):
    """load an HTTP endpoint (closed loop, or open loop with --rate)"""

    scenario = "bench"
    options_type = LoadOptions
    options: LoadOptions

    def __init__(self, options: LoadOptions) -> None:
        super().__init__(options)
        self.result: LoadResult | None = None
        self.stats: dict[str, Any] = {}

    async def main(self) -> None:
        opts = self.options
        target = Target(opts.url, opts.method, opts.headers())
        await check_reachable(target, min(opts.timeout, 10.0))
        self.meta["url"] = opts.url
        self.meta["mode"] = "open" if opts.open_loop else "closed"
        async with self.shard_cluster():
            self.progress.begin(PHASE, opts.requests or 0)
            ticker = asyncio.ensure_future(self._tick())
            try:
                result = await self.execute_load(opts)
            finally:
                ticker.cancel()
                self._report_progress()
        self.result = result
        df = result.frame
        self.stats = bench_stats(df, result.elapsed, result.cpu)
        if result.schedule is not None:
            self.stats.update(self._open_loop_stats(result.schedule, df))
        self.meta["stats"] = self.stats
        if result.shards is not None:
            self.stats["shards"] = len(result.shards)
            self.meta["shards"] = result.shards.to_dict("records")
        if result.warnings:
            self.meta["warnings"] = result.warnings
        refused = _refused_status(df["status"].tolist() if len(df) else [])
        if refused is not None:  # every answer was 401/403: the figures would only mislead
            raise RunError(auth_hint(refused, bool(opts.token)))
        self.status = "interrupted" if self._stops else "degraded" if degraded(result.shards) else "finished"

    def _open_loop_stats(self, sched: Schedule, df: pd.DataFrame) -> dict[str, Any]:
        """Rates over the schedule's window; what came after it (the drain) apart.

        ``qps`` becomes the goodput *during* the window: answers that succeeded before the
        schedule ended, per second of schedule. Answers that arrive afterwards are counted in
        ``ok_after_window`` and ``drain_s``. The generator is said to be behind only when its
        scheduler was late (lag p99) or dispatched under the asked rate within the window,
        never because the server answered slowly.
        """
        lag = sched.lag_s * 1000.0
        p99_lag = float(np.percentile(lag, 99)) if lag.size else 0.0
        window = sched.window_s
        target = float(self.options.rate or 0)
        offered = sched.scheduled / window if window > 0 else 0.0
        window_end = sched.start + window  # in the records' time base
        ok = (df["outcome"].astype(str) == "ok").to_numpy() if len(df) else np.array([], bool)
        done = df["t_done"].to_numpy() if len(df) else np.array([])
        ok_in_window = int((ok & (done <= window_end)).sum())
        last = float(done.max()) if done.size else window_end
        behind = bool(p99_lag > BEHIND_LAG_MS or (not self._stops and offered < BEHIND_RATE * target))
        return {
            "target_rate": target,
            "arrival": self.options.arrival,
            "scheduled": sched.scheduled,
            "window_s": round(window, 3),
            "offered_rate": round(offered, 1),
            "send_rate": round(offered, 1),  # kept for saved runs and scripts that read it
            "qps": round(ok_in_window / window, 1) if window > 0 else 0.0,
            "ok_in_window": ok_in_window,
            "ok_after_window": int(ok.sum()) - ok_in_window,
            "drain_s": round(max(0.0, last - window_end), 3),
            "scheduler_lag_p99_ms": round(p99_lag, 3),
            "waited_for_connection": sched.waited_for_connection,
            "generator_behind": behind,
        }

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._report_progress()
            rec = self.recorder
            if self.load is not None and rec is not None and _refused_status(rec.status) is not None:
                self.load.stop()  # refused from the first answer on: no point going on

    def _report_progress(self) -> None:
        done, failed = self.live_counts()
        self.progress.update(PHASE, done, failed=failed)

    # -- results ----------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """One row per request (see ``loadgen.recorder``; + ``shard``/``worker`` when sharded)."""
        return self.result.frame if self.result is not None else self.live_frame()

    @property
    def shards(self) -> pd.DataFrame:
        """A --dask run's shards: shard, worker, status, requests, failed, CPU %, start offset."""
        if self.result is not None and self.result.shards is not None:
            return self.result.shards
        return pd.DataFrame([s.row() for s in self.shard_states])

    def summary(self) -> pd.DataFrame:
        """The headline figures as a one-row table (errors by reason as ``errors`` dict)."""
        stats = dict(self.stats or bench_stats(self.df, self._elapsed()))
        return pd.DataFrame([stats])

    def timeline(self, bin_s: float = 1.0) -> pd.DataFrame:
        return timeline(self.df, bin_s)

    def _elapsed(self) -> float:
        end = self.finished_at or time.time()
        return max(end - (self.started_at or end), 1e-9)

    def succeeded(self) -> bool:
        return self.status in ("finished", "degraded") and bool(self.stats.get("ok"))

    def chart_data(self) -> pd.DataFrame:
        return self.timeline()

    figure = staticmethod(charts.bench_figure)

    def report_body(self) -> list[str]:
        lines = report.bench_lines(self.stats) if self.stats else []
        return lines + report.shard_lines(self.meta)

    def frames(self) -> dict[str, pd.DataFrame]:
        out = {"records": self.df}
        if self.result is not None and self.result.shards is not None:
            out["shards"] = self.result.shards
        return out

    def figures(self) -> dict[str, float]:
        """``latency.p50|p90|p99|max`` (seconds), ``qps``, ``requests``, ``failures`` (a fraction)."""
        stats = self.stats
        out: dict[str, float] = {}
        for stat in ("p50", "p90", "p99", "max"):
            if stats.get(f"{stat}_ms") is not None:
                out[f"latency.{stat}"] = stats[f"{stat}_ms"] / 1000.0
        for key in ("qps", "requests"):
            if stats.get(key) is not None:
                out[key] = float(stats[key])
        if stats.get("requests"):
            out["failures"] = stats["failed"] / stats["requests"]
        return out

    def report_json(self) -> dict[str, Any]:
        out = {**super().report_json(), **self.stats}
        if self.meta.get("shards"):
            out["shard_table"] = self.meta["shards"]
            out["warnings"] = self.meta.get("warnings", [])
        return out

    @classmethod
    def saved_summary(cls, saved) -> pd.DataFrame:  # noqa: ANN001 - a SavedRun
        return pd.DataFrame([saved.meta.get("meta", {}).get("stats", {})])

    @classmethod
    def saved_report(cls, saved) -> str:  # noqa: ANN001
        meta = saved.meta.get("meta", {})
        stats = meta.get("stats") or {"requests": 0, "ok": 0, "errors": {}}
        return "\n".join(report.bench_lines(stats) + report.shard_lines(meta))
