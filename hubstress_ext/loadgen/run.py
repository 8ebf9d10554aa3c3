"""BenchRun: ``hubstress bench`` (closed or open loop against one URL) as a run object."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from typing import Any

import pandas as pd

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


async def run_load(
    opts: LoadOptions, recorder: Recorder, *, on_loop=None, grace: float | None = None
) -> tuple[Any, float, float]:
    """Drive one load to its end; returns (the loop object, elapsed s, client CPU s)."""
    target = Target(opts.url, opts.method, opts.headers())
    body = BodyTemplate(opts.template if isinstance(opts.template, dict) else None)
    render = body.render if target.method != "GET" else _no_body
    common = dict(requests=opts.requests, deadline=time.monotonic() + opts.time_limit, timeout=opts.timeout)
    if opts.open_loop:
        load: ClosedLoop | OpenLoop = OpenLoop(
            target,
            render,
            recorder,
            rate=opts.rate,
            arrival=opts.arrival,
            max_connections=opts.max_connections,
            seed=opts.seed,
            **common,
        )
    else:
        load = ClosedLoop(target, render, recorder, workers=opts.workers, **common)
    if on_loop is not None:
        on_loop(load)
    cpu0, t0 = time.process_time(), time.monotonic()
    await load.run(opts.timeout if grace is None else grace)
    end = time.monotonic()
    if load.stopping and recorder.done:  # rates over the time load was actually applied
        end = min(end, max(recorder.done))
    return load, max(end - t0, 1e-9), time.process_time() - cpu0


def _no_body() -> None:
    return None


class LoadRun(Run):
    """What bench and sweep share: stopping the load that is running now."""

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.load: ClosedLoop | OpenLoop | None = None

    def _set_load(self, load: ClosedLoop | OpenLoop) -> None:
        self.load = load
        if self._stops:
            load.stop()

    def report(self) -> str:
        lines = ["", f"hubstress {self.scenario}: {self.status} against {self.options.url}"]
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines + self.report_body() + self.verdict_lines())

    def report_body(self) -> list[str]:
        """The figures below the report's status line."""
        return []

    def on_stop(self) -> None:
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
        self.recorder = Recorder()
        self.stats: dict[str, Any] = {}

    async def main(self) -> None:
        opts = self.options
        target = Target(opts.url, opts.method, opts.headers())
        await check_reachable(target, min(opts.timeout, 10.0))
        self.meta["url"] = opts.url
        self.meta["mode"] = "open" if opts.open_loop else "closed"
        self.progress.begin(PHASE, opts.requests or 0)
        ticker = asyncio.ensure_future(self._tick())
        self.recorder = Recorder()
        try:
            load, elapsed, cpu = await run_load(opts, self.recorder, on_loop=self._set_load)
        finally:
            ticker.cancel()
            self._report_progress()
        df = self.df
        self.stats = bench_stats(df, elapsed, cpu)
        if isinstance(load, OpenLoop):
            self.stats.update(self._open_loop_stats(load, df))
        self.meta["stats"] = self.stats
        refused = self._refused_status()
        if refused is not None:  # every answer was 401/403: the figures would only mislead
            raise RunError(auth_hint(refused, bool(opts.token)))
        self.status = "interrupted" if self._stops else "finished"

    def _refused_status(self) -> int | None:
        """401/403 when every answer so far was that refusal (no request got through)."""
        statuses = self.recorder.status
        first = statuses[0] if statuses else None
        if first in AUTH_STATUSES and all(s == first for s in statuses):
            return first
        return None

    def _open_loop_stats(self, load: OpenLoop, df: pd.DataFrame) -> dict[str, Any]:
        """Rates over the schedule's window; what came after it (the drain) apart.

        ``qps`` becomes the goodput *during* the window: answers that succeeded before the
        schedule ended, per second of schedule. Answers that arrive afterwards are counted in
        ``ok_after_window`` and ``drain_s``. The generator is said to be behind only when its
        scheduler was late (lag p99) or dispatched under the asked rate within the window,
        never because the server answered slowly.
        """
        import numpy as np

        lag = np.asarray(load.scheduler_lag) * 1000.0
        p99_lag = float(np.percentile(lag, 99)) if lag.size else 0.0
        window = load.window_s
        target = float(self.options.rate or 0)
        offered = load.scheduled / window if window > 0 else 0.0
        window_end = load.started + window - self.recorder.origin  # in the records' time base
        ok = (df["outcome"].astype(str) == "ok").to_numpy() if len(df) else np.array([], bool)
        done = df["t_done"].to_numpy() if len(df) else np.array([])
        ok_in_window = int((ok & (done <= window_end)).sum())
        last = float(done.max()) if done.size else window_end
        behind = bool(p99_lag > BEHIND_LAG_MS or (not self._stops and offered < BEHIND_RATE * target))
        return {
            "target_rate": target,
            "arrival": self.options.arrival,
            "scheduled": load.scheduled,
            "window_s": round(window, 3),
            "offered_rate": round(offered, 1),
            "send_rate": round(offered, 1),  # kept for saved runs and scripts that read it
            "qps": round(ok_in_window / window, 1) if window > 0 else 0.0,
            "ok_in_window": ok_in_window,
            "ok_after_window": int(ok.sum()) - ok_in_window,
            "drain_s": round(max(0.0, last - window_end), 3),
            "scheduler_lag_p99_ms": round(p99_lag, 3),
            "waited_for_connection": load.waited_for_connection,
            "generator_behind": behind,
        }

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._report_progress()
            if self.load is not None and self._refused_status() is not None:
                self.load.stop()  # refused from the first answer on: no point going on

    def _report_progress(self) -> None:
        self.progress.update(PHASE, len(self.recorder), failed=self.recorder.failed)

    # -- results ----------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """One row per request (see ``loadgen.recorder``)."""
        return self.recorder.to_frame()

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
        return self.status == "finished" and bool(self.stats.get("ok"))

    def chart_data(self) -> pd.DataFrame:
        return self.timeline()

    figure = staticmethod(charts.bench_figure)

    def report_body(self) -> list[str]:
        return report.bench_lines(self.stats) if self.stats else []

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
        return {**super().report_json(), **self.stats}

    @classmethod
    def saved_summary(cls, saved) -> pd.DataFrame:  # noqa: ANN001 - a SavedRun
        return pd.DataFrame([saved.meta.get("meta", {}).get("stats", {})])

    @classmethod
    def saved_report(cls, saved) -> str:  # noqa: ANN001
        stats = saved.meta.get("meta", {}).get("stats") or {"requests": 0, "ok": 0, "errors": {}}
        return "\n".join(report.bench_lines(stats))
