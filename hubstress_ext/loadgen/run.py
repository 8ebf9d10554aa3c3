"""BenchRun: ``hubstress bench`` (closed or open loop against one URL) as a run object."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from hubstress_ext.cluster.coordinator import degraded
from hubstress_ext.engine.record import RunRecord
from hubstress_ext.engine.run import Run, verdict_lines
from hubstress_ext.errors import RunError
from hubstress_ext.loadgen import report
from hubstress_ext.loadgen.connection import Target
from hubstress_ext.loadgen.endpoint import (
    AUTH_STATUSES,
    EndpointAuthError,
    EndpointControl,
    auth_hint,
    endpoint_cpu_pct,
)
from hubstress_ext.loadgen.load import (
    BEHIND_LAG_MS,
    BEHIND_RATE,
    STOP_GRACE_S,
    LoadResult,
    Schedule,
    check_reachable,
    run_load,
)
from hubstress_ext.loadgen.loops import ClosedLoop, OpenLoop
from hubstress_ext.loadgen.options import LoadOptions
from hubstress_ext.loadgen.recorder import Recorder
from hubstress_ext.loadgen.summary import bench_stats, timeline
from hubstress_ext.results import charts

PHASE = "requests"
TICK_S = 0.5


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

    @classmethod
    def report_of(cls, record: RunRecord) -> str:
        lines = ["", f"hubstress {record.scenario}: {record.status} against {record.option('url')}"]
        if record.error:
            lines.append(f"error: {record.error}")
        lines += cls.body_lines(record) + report.shard_lines(record.meta)
        return "\n".join(lines + verdict_lines(record))

    @classmethod
    def body_lines(cls, record: RunRecord) -> list[str]:
        """The figures below the report's status line."""
        return []

    def on_stop(self) -> None:
        if self.coordinator is not None:
            self.coordinator.stop()
        if self.load is not None:
            self.load.stop()
            self.load.timeout = STOP_GRACE_S  # answers in flight get this long, then "unfinished"


ENDPOINT_BUSY_CPU_PCT = 90.0  # a hubstress endpoint (one event loop) above this is CPU-bound


class BenchRun(LoadRun):
    """load an HTTP endpoint (closed loop, or open loop with --rate)"""

    scenario = "bench"
    options_type = LoadOptions
    options: LoadOptions
    external_settings = ("batch_size",)  # a hubstress endpoint's, through its config API
    # closed loops whose best is the saturated throughput: few workers keep a batch of one full
    # without a queue's overhead, 128 keep any batch size we serve full
    REFERENCE_WORKERS = (4, 32, 128)
    KEPT_UP = 0.95  # an open loop whose goodput in its window is under this share of what it sent

    @classmethod
    async def set_external(cls, options: LoadOptions, name: str, value: Any) -> Any:
        """The endpoint's batch size through its config API, as the sweep sets it."""
        if name not in cls.external_settings:
            return await super().set_external(options, name, value)
        async with EndpointControl(options.url, options.headers(), options.request_timeout) as control:
            config = await control.probe()
            if config is None:
                raise RunError(
                    f"{options.url} has no hubstress config API ({control.base}/config): its "
                    f"{name} cannot be set between probes"
                )
            await control.set_batch_size(int(value))
            return config.get(name)

    @classmethod
    def reference_load(cls, values: dict[str, Any], knob: str) -> tuple[dict[str, Any], str, str] | None:
        """Searching over the open loop's rate: the endpoint's saturated throughput first (a
        closed loop of many workers), the ceiling no answer may pass."""
        if knob != "rate":
            return None
        loads = [{**values, "rate": None, "workers": n} for n in cls.REFERENCE_WORKERS]
        counts = ", ".join(str(n) for n in cls.REFERENCE_WORKERS)
        return loads, "qps", f"saturated throughput (closed loop, the best of {counts} workers)"

    def fell_behind(self) -> str | None:
        """An open loop's endpoint that answered under 95 % of the rate sent, while it was sent,
        did not keep up, though a short run's p99 may not show the queue it was building."""
        stats = self.stats
        offered, qps = stats.get("offered_rate"), stats.get("qps")
        if not offered or qps is None or stats.get("generator_behind"):
            return None
        if qps < self.KEPT_UP * offered:
            return f"the endpoint fell behind: answered {qps:g}/s of {offered:g}/s sent"
        return None

    @property
    def generator_limited(self) -> bool:
        return bool(self.stats.get("generator_behind"))

    def bottleneck_line(self) -> str | None:
        stats = self.stats
        if not stats:
            return None
        if stats.get("generator_behind"):
            return (
                "the load generator fell behind "
                f"(scheduler lag p99 {stats.get('scheduler_lag_p99_ms', 0):.0f} ms, "
                f"sent {stats.get('offered_rate', 0):g}/s of {stats.get('target_rate', 0):g}/s): "
                "the endpoint's figures are a lower bound"
            )
        errors = stats.get("errors") or {}
        cpu = stats.get("client_cpu_pct")
        ours = f"; the generator kept up (client CPU {cpu:.0f} %)" if isinstance(cpu, int | float) else ""
        server = stats.get("endpoint_cpu_pct")
        theirs = ""
        if isinstance(server, int | float):
            theirs = f", endpoint CPU {server:.0f} %"
            if server >= ENDPOINT_BUSY_CPU_PCT:
                theirs += " (a core's worth: its CPU, not the model's time, is the limit)"
        if errors:
            top = sorted(errors.items(), key=lambda kv: -kv[1])[:3]
            said = ", ".join(f"{n} x {reason}" for reason, n in top)
            return f"the endpoint: {said}{theirs}{ours}"
        p99 = stats.get("p99_ms")
        at = f"p99 {p99:.1f} ms" if isinstance(p99, int | float) else "no latency measured"
        return f"the endpoint: {at} at {stats.get('qps', 0):g} req/s, nothing refused{theirs}{ours}"

    def __init__(self, options: LoadOptions) -> None:
        super().__init__(options)
        self.result: LoadResult | None = None
        self.stats: dict[str, Any] = {}

    async def main(self) -> None:
        opts = self.options
        target = Target(opts.url, opts.method, opts.headers())
        await check_reachable(target, min(opts.request_timeout, 10.0))
        self.meta["url"] = opts.url
        self.meta["mode"] = "open" if opts.open_loop else "closed"
        control = EndpointControl(opts.url, opts.headers(), opts.request_timeout)
        async with self.shard_cluster(), control:
            # a hubstress endpoint tells its own CPU (/stats): beside the client's, it says
            # which side of the wire was the limit; any other endpoint's is not visible
            try:
                watched = await control.probe() is not None
            except EndpointAuthError:  # the load's own answers will say so, with their counts
                watched = False
            if opts.warmup > 0:  # the same load, not recorded: connections and the model warm
                warm = dataclasses.replace(opts, duration=opts.warmup, requests=None)
                await self.execute_load(warm, grace=STOP_GRACE_S)
                self.meta["warmup_s"] = opts.warmup
            before = await control.stats_or_none() if watched else None
            self.progress.begin(PHASE, opts.requests or 0)
            ticker = asyncio.ensure_future(self._tick())
            try:
                result = await self.execute_load(opts)
            finally:
                ticker.cancel()
                self._report_progress()
            after = await control.stats_or_none() if watched else None
        self.result = result
        df = result.frame
        self.stats = bench_stats(df, result.elapsed, result.cpu)
        server_cpu = endpoint_cpu_pct(before, after)
        if server_cpu is not None:
            self.stats["endpoint_cpu_pct"] = round(server_cpu, 1)
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

    @classmethod
    def summary_of(cls, record: RunRecord) -> pd.DataFrame:
        """The headline figures as a one-row table (errors by reason as ``errors`` dict); while
        the load runs, from the records so far."""
        stats = record.meta.get("stats") or bench_stats(record.frame("records"), record.elapsed(time.time()))
        return pd.DataFrame([dict(stats)])

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

    @classmethod
    def body_lines(cls, record: RunRecord) -> list[str]:
        stats = record.meta.get("stats")
        return report.bench_lines(stats) if stats else []

    def frame_sources(self) -> dict[str, Callable[[], pd.DataFrame]]:
        out = {"records": lambda: self.df}
        if self.result is not None and self.result.shards is not None:
            out["shards"] = lambda: self.result.shards
        return out

    def figures(self) -> dict[str, float]:
        """``latency.p50|p90|p99|max`` (seconds; also ``p50``...``max``), ``qps``, ``requests``,
        ``failures`` (a fraction; also ``errors``)."""
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
            out["errors"] = out["failures"]  # as a capacity SLO reads: p99<50ms, errors<0.1%
        for stat in ("p50", "p90", "p99", "max"):  # the short names, the same figures
            if f"latency.{stat}" in out:
                out[stat] = out[f"latency.{stat}"]
        return out

    def report_json(self) -> dict[str, Any]:
        out = {**super().report_json(), **self.stats}
        if self.meta.get("shards"):
            out["shard_table"] = self.meta["shards"]
            out["warnings"] = self.meta.get("warnings", [])
        return out
