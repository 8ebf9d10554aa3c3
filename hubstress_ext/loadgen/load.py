"""One load, driven to its end in this process: what a bench, a sweep's cell and each Dask
shard run (``loadgen.run`` and ``loadgen.sharding`` both import it; neither imports the
other back)."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hubstress_ext.errors import RunError
from hubstress_ext.loadgen.body import BodyTemplate
from hubstress_ext.loadgen.connection import Target
from hubstress_ext.loadgen.loops import ClosedLoop, OpenLoop
from hubstress_ext.loadgen.options import LoadOptions
from hubstress_ext.loadgen.recorder import Recorder

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
    common = dict(requests=opts.requests, deadline=t0 + opts.time_limit, timeout=opts.request_timeout)
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
        await load.run(opts.request_timeout if grace is None else grace)
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
