"""One shard on its worker: pre-flight, ready, start on the common clock, load, report, end.

``run_shard`` is the Dask task (a plain function: it runs its own event loop with
``asyncio.run``, so the worker's loop and the shard's never share a thread). What the shard
does is a :class:`ShardJob` given by its scenario; how it talks to the coordinator is a
:class:`ShardLink` (Dask's Queue, Variable and Event on the scheduler, or a fake in tests).

The shard ends on its own ``max_seconds`` after the common start even if the coordinator is
gone, so no load outlives a lost coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from hubstress_ext.cluster.clock import measure_offset, to_local, to_remote

log = logging.getLogger("hubstress.cluster")

LATE_S = 1.0  # a shard that finds the start this far behind it sends nothing
REPORT_EVERY_S = 1.0
STOP_POLL_S = 0.25  # how often a shard asks whether the coordinator said stop
GRACE_S = 5.0  # past max_seconds, the shard's load is cancelled outright

_STASH: dict[str, dict[str, Any]] = {}  # secrets per run, on each worker (never in task arguments)


def share(total: int, n: int, i: int) -> int:
    """Shard ``i``'s part of ``total`` split over ``n`` shards as evenly as whole numbers allow."""
    return total // n + (1 if i < total % n else 0)


def stash_secrets(ref: str, secrets: dict[int, dict[str, Any]]) -> int:
    """Run on every worker by the coordinator (``client.run``) before the shards are submitted."""
    _STASH[ref] = secrets
    return len(secrets)


def drop_secrets(ref: str) -> None:
    _STASH.pop(ref, None)


class ShardJob:
    """What one shard does. Subclasses live beside their scenario (``loadgen``, ``hub``).

    A job is pickled into the task, so it holds plain data; what ``take_secrets`` takes out
    before it is sent is put back on the worker (``put_secrets``) from the stash.
    """

    shard: int = 0

    def take_secrets(self) -> dict[str, Any]:
        return {}

    def put_secrets(self, secrets: dict[str, Any]) -> None:
        """Back on the worker (and on the coordinator once the run is over)."""

    async def prepare(self) -> None:
        """Pre-flight (the target answers, ...); an exception fails the run before any load."""

    async def run(self, t0: float) -> None:
        """The load, until it is done or ``stop()`` is called; ``t0`` is the common start on
        this process's monotonic clock (schedules and record times count from it)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Send nothing more (called on the shard's loop)."""

    def chunk(self) -> Any:
        """The records made since the last call (picklable; the coordinator concatenates them)."""
        return None

    def counts(self) -> tuple[int, int]:
        """(requests or units of work so far, failed) for live progress."""
        return 0, 0

    def final(self) -> dict[str, Any]:
        """Figures only known at the end (schedule lag, ...)."""
        return {}


class ShardLink:
    """The shard's side of the conversation with the coordinator."""

    def scheduler_time(self) -> float:
        raise NotImplementedError

    def send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def wait_start(self, timeout: float) -> float | None:
        """The common start (scheduler clock); None if the coordinator called the run off."""
        raise NotImplementedError

    def stop_requested(self, timeout: float) -> bool:
        raise NotImplementedError


class DaskLink(ShardLink):
    def __init__(self, run_id: str) -> None:
        from distributed import Event, Queue, Variable, get_client

        client = get_client()
        self._client = client
        self._events = Queue(channel_names(run_id)["events"], client=client)
        self._start = Variable(channel_names(run_id)["start"], client=client)
        self._stop = Event(channel_names(run_id)["stop"], client=client)

    def scheduler_time(self) -> float:
        return self._client.run_on_scheduler(time.time)

    def send(self, message: dict[str, Any]) -> None:
        self._events.put(message)

    def wait_start(self, timeout: float) -> float | None:
        value = self._start.get(timeout=timeout)
        return float(value) if isinstance(value, int | float) and value > 0 else None

    def stop_requested(self, timeout: float) -> bool:
        return self._stop.wait(timeout)


def channel_names(run_id: str) -> dict[str, str]:
    return {k: f"hubstress-{run_id}-{k}" for k in ("events", "start", "stop")}


def run_shard(job: ShardJob, run_id: str, max_seconds: float, ready_timeout: float) -> dict[str, Any]:
    """The Dask task: one shard of a run, on the worker it was pinned to."""
    from distributed import get_worker

    worker = get_worker().address
    job.put_secrets(_STASH.get(run_id, {}).get(job.shard, {}))
    result = asyncio.run(drive(job, DaskLink(run_id), max_seconds, ready_timeout))
    result["worker"] = worker
    return result


async def drive(
    job: ShardJob,
    link: ShardLink,
    max_seconds: float,
    ready_timeout: float,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Pre-flight, ready, wait for the common start, run, report every second, end.

    The shard ends by itself ``max_seconds`` after the start (whatever the coordinator does).
    """
    offset = await asyncio.to_thread(measure_offset, link.scheduler_time, clock)
    base = {"shard": job.shard, "offset": offset}
    try:
        await job.prepare()
    except Exception as exc:
        return {**base, "status": "failed", "error": _message(exc)}
    await asyncio.to_thread(link.send, {"kind": "ready", "shard": job.shard, "offset": offset})
    start = await asyncio.to_thread(link.wait_start, ready_timeout)
    if start is None:
        return {**base, "status": "cancelled"}
    local_start = to_local(start, offset)
    late = clock() - local_start
    if late > LATE_S:  # the others started long ago: joining now would change the load's shape
        return {**base, "status": "late", "error": f"started {late:.1f} s after the others: sent nothing"}
    await _sleep_until(local_start, clock)
    # the shard's time zero is the common start itself, not the moment this thread woke up
    # (a wake-up late by a GIL switch shows as scheduler lag, not as a shifted schedule)
    now_mono, now_wall, cpu0 = time.monotonic(), clock(), time.process_time()
    mono0, started_local = now_mono - (now_wall - local_start), local_start
    woke = to_remote(now_wall, offset)  # when it really got going (late: its window was cut)
    started = to_remote(started_local, offset)  # on the scheduler's clock
    hard_end = mono0 + max_seconds
    loop = asyncio.get_running_loop()
    done = threading.Event()
    stopped = []

    def on_stop() -> None:
        stopped.append(time.monotonic())
        job.stop()

    def watch_stop() -> None:
        while not done.is_set():
            if link.stop_requested(STOP_POLL_S):
                if not done.is_set():
                    loop.call_soon_threadsafe(on_stop)
                return

    watcher = loop.run_in_executor(None, watch_stop)
    end_timer = loop.call_at(loop.time() + (hard_end - time.monotonic()), on_stop)
    reporter = asyncio.ensure_future(_report(job, link, started, mono0, cpu0))
    status = "finished"
    error = None
    try:
        await asyncio.wait_for(job.run(mono0), timeout=max(0.0, hard_end - time.monotonic()) + GRACE_S)
    except TimeoutError:
        status, error = "failed", "did not end by its deadline"
    except Exception as exc:
        log.debug("shard %s failed", job.shard, exc_info=True)
        status, error = "failed", _message(exc)
    finally:
        done.set()
        end_timer.cancel()
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        with contextlib.suppress(Exception):
            await watcher
    elapsed = max(time.monotonic() - mono0, 1e-9)
    requests, failed = job.counts()
    if status == "finished" and stopped:
        status = "stopped"
    return {
        **base,
        "status": status,
        "error": error,
        "started": started,
        "woke": woke,
        "elapsed_s": elapsed,
        "cpu_s": time.process_time() - cpu0,
        "cpu_pct": 100.0 * (time.process_time() - cpu0) / elapsed,
        "requests": requests,
        "failed": failed,
        "chunk": job.chunk(),
        **job.final(),
    }


async def _report(job: ShardJob, link: ShardLink, started: float, mono0: float, cpu0: float) -> None:
    """Every second: the new records and the counts (a lost worker's records so far survive)."""
    seq = 0
    while True:
        await asyncio.sleep(REPORT_EVERY_S)
        seq += 1
        requests, failed = job.counts()
        elapsed = max(time.monotonic() - mono0, 1e-9)
        message = {
            "kind": "progress",
            "shard": job.shard,
            "seq": seq,
            "started": started,
            "requests": requests,
            "failed": failed,
            "cpu_pct": 100.0 * (time.process_time() - cpu0) / elapsed,
            "chunk": job.chunk(),
        }
        await asyncio.to_thread(link.send, message)


async def _sleep_until(when: float, clock: Callable[[], float]) -> None:
    """Sleep to ``when`` on ``clock``, the last 2 ms without the timer's granularity."""
    while (left := when - clock()) > 0.002:  # noqa: ASYNC110 - a deadline, not an event
        await asyncio.sleep(left - 0.002)
    while clock() < when:
        pass


def _message(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
