"""The two load models, driven entirely by connection callbacks (no task per request).

* ``ClosedLoop``: N workers, each with its own connection, send the next request as soon as
  the previous answer arrives (the seed client's model; throughput is what the server allows).
* ``OpenLoop``: requests are *scheduled* at a rate (constant or Poisson) whatever the answers;
  a request waits for a free connection if all are busy, and its latency counts from the
  moment it was scheduled, so a stalling server cannot hide its tail (coordinated omission).
  How late the scheduler itself was is kept apart, to tell when the generator fell behind.

Both are bounded by a request count and a deadline. ``stop()`` ends sending at once; requests
still in flight (a connection still being opened for one included) get ``grace`` seconds, then
are recorded as "unfinished", so every request begun is in the records exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from hubstress_ext.loadgen.connection import CONNECTION, Connection, Target
from hubstress_ext.loadgen.recorder import Recorder, outcome_of

log = logging.getLogger("hubstress.loadgen")

UNFINISHED = "unfinished"
MAX_BACKOFF = 1.0


class _Loop:
    def __init__(
        self,
        target: Target,
        body: Callable[[], bytes | None],
        recorder: Recorder,
        *,
        requests: int | None,
        deadline: float,
        timeout: float,
    ) -> None:
        self.target = target
        self.body = body
        self.recorder = recorder
        self.remaining = requests if requests is not None else 1 << 62
        self.deadline = deadline  # monotonic time after which nothing new is sent
        self.timeout = timeout
        self.stopping = False
        self.connections: set[Connection] = set()
        self._loop = asyncio.get_running_loop()
        self._drained: asyncio.Future | None = None
        self._wake: asyncio.Future = self._loop.create_future()
        self._sleeper: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()
        # connections being opened, each for a request already begun: key -> its intended time
        self.opening: dict[int, float] = {}
        self._keys = itertools.count()

    def stop(self) -> None:
        """Send nothing more; what is in flight gets the caller's grace period."""
        self.stopping = True
        self._wake_up()
        self._check_drained()

    def _wake_up(self) -> None:
        if not self._wake.done():
            self._wake.set_result(None)
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.set_result(None)

    async def _sleep(self, delay: float) -> None:
        """Sleep that ``stop()`` cuts short (one future and one timer, no task)."""
        self._sleeper = fut = self._loop.create_future()
        handle = self._loop.call_later(delay, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()

    def _may_send(self) -> bool:
        return not self.stopping and self.remaining > 0 and time.monotonic() < self.deadline

    def _in_flight(self) -> int:
        return sum(1 for c in self.connections if c.busy)

    def _check_drained(self) -> None:
        if self._drained is not None and not self._drained.done() and self._is_drained():
            self._drained.set_result(None)

    def _is_drained(self) -> bool:
        raise NotImplementedError

    def _spawn(self, coro) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _begin_connect(self, intended: float) -> int:
        """Count a connection as opening from the moment it is decided (not when its task first
        runs): the connection limit holds within one dispatch round, and ``finish`` records
        a request whose connection never opened in time as "unfinished" instead of losing it."""
        key = next(self._keys)
        self.opening[key] = intended
        return key

    async def _open(self, on_done, key: int) -> Connection | None:
        """The connection begun as ``key``, or None (the caller records a connection error)."""
        try:
            conn = await Connection.open(self.target, on_done, self.timeout)
        except (OSError, TimeoutError) as exc:
            log.debug("connect to %s:%s failed: %s", self.target.host, self.target.port, exc)
            conn = None
        del self.opening[key]  # (a cancelled connect keeps its key: ``finish`` records it)
        if conn is not None:
            self.connections.add(conn)
        return conn

    def _send(self, conn: Connection, intended: float) -> None:
        conn.user = (intended, time.monotonic())
        conn.send(self.target.request_bytes(self.body()))

    def _record(self, conn: Connection, status: int, body: bytes, error: str | None) -> None:
        intended, sent = conn.user  # type: ignore[misc]
        now = time.monotonic()
        if error is not None:
            self.recorder.add(intended, sent, now, 0, error)
        else:
            outcome, ts_diff, size = outcome_of(status, body)
            self.recorder.add(intended, sent, now, status, outcome, ts_diff, size)

    async def finish(self, grace: float) -> None:
        """Wait up to ``grace`` s for requests in flight, then close everything."""
        self._drained = self._loop.create_future()
        self._check_drained()
        try:
            await asyncio.wait_for(asyncio.shield(self._drained), grace)
        except TimeoutError:
            pass
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        now = time.monotonic()
        for intended in self.opening.values():  # begun, but its connection never opened
            self.recorder.add(intended, now, now, 0, UNFINISHED)
        self.opening.clear()
        for conn in list(self.connections):
            if conn.busy and conn.user is not None:
                intended, sent = conn.user  # type: ignore[misc]
                conn.busy = False
                self.recorder.add(intended, sent, now, 0, UNFINISHED)
            conn.on_done = _ignore
            conn.close()
        self._after_close(now)

    def _after_close(self, now: float) -> None:
        pass


def _ignore(*_args) -> None:
    pass


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class ClosedLoop(_Loop):
    """``workers`` connections, each sending its next request when the last one is answered."""

    def __init__(self, *args, workers: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.workers = workers
        self._active = 0

    async def run(self, grace: float) -> None:
        self._active = self.workers
        for _ in range(self.workers):
            self._spawn(self._worker_start(0))
        stop_timer = self._loop.call_later(max(0.0, self.deadline - time.monotonic()), self.stop)
        try:
            await self._wake  # every worker done (request budget spent), or stop()/deadline
        finally:
            stop_timer.cancel()
        await self.finish(grace)

    def _is_drained(self) -> bool:
        return self._active == 0 or (self.stopping and self._in_flight() == 0 and not self.opening)

    async def _worker_start(self, failures: int) -> None:
        if failures:
            await asyncio.sleep(min(0.01 * 2**failures, MAX_BACKOFF))
        if not self._may_send():
            self._worker_done()
            return
        self.remaining -= 1
        intended = time.monotonic()
        conn = await self._open(self._on_done, self._begin_connect(intended))
        if conn is None:
            self.recorder.add(intended, intended, time.monotonic(), 0, CONNECTION)
            self._spawn(self._worker_start(failures + 1))
            return
        self._send(conn, intended)

    def _on_done(self, conn: Connection, status: int, body: bytes, error: str | None) -> None:
        self._record(conn, status, body, error)
        if not self._may_send():
            self.connections.discard(conn)
            conn.close()
            self._worker_done()
            return
        if conn.closed:  # timed out, reset or server closed: this worker reconnects
            self.connections.discard(conn)
            self._spawn(self._worker_start(1 if error == CONNECTION else 0))
            return
        self.remaining -= 1
        self._send(conn, time.monotonic())

    def _worker_done(self) -> None:
        self._active -= 1
        if self._active == 0:
            self._wake_up()
        self._check_drained()


class OpenLoop(_Loop):
    """Requests scheduled at ``rate`` per second; at most ``max_connections`` in flight."""

    def __init__(
        self,
        *args,
        rate: float,
        arrival: str = "constant",
        max_connections: int = 1000,
        seed: int = 0,
        phase: float = 0.0,
        start: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.rate = rate
        self.phase = phase  # the schedule starts this late (one shard's place in an even merged schedule)
        self.arrival = arrival
        self.max_connections = max_connections
        self.seed = seed
        self.idle: list[Connection] = []
        self.backlog: deque[float] = deque()
        self.scheduler_lag: list[float] = []  # dispatch time - scheduled time, per request
        self.waited_for_connection = 0
        self.scheduled = 0
        self._start = start  # monotonic time the schedule begins (default: when run() is called)
        self.started = 0.0  # monotonic time the schedule began
        # the schedule's own span: what rates are divided by (the drain after it is reported
        # apart, so a server that answers late does not look like a generator that sent slowly)
        self.window_s = 0.0

    def offsets(self, span: float) -> np.ndarray:
        """Send times (s from the start) within ``span`` and the request budget.

        Poisson: a Poisson process *given its count* -- rate x span arrival times drawn
        uniformly over the span and sorted. The gaps are exponential as in any Poisson
        process, but the run sends the number of requests asked for (a free count would vary
        by 1/sqrt(N): +-3 % at 1,200), and shards' streams still merge into one Poisson stream.
        """
        expected = span * self.rate
        if self.arrival == "poisson":
            rng = np.random.default_rng(self.seed)
            times = np.sort(rng.uniform(0.0, span, int(round(expected))))
        else:
            times = np.arange(int(np.ceil(expected)) + 1, dtype=float) / self.rate
        return times[times < span][: self.remaining]

    async def run(self, grace: float) -> None:
        start = self.started = time.monotonic() if self._start is None else self._start
        span = max(0.0, self.deadline - start)
        budget = self.remaining
        offsets = self.offsets(max(0.0, span - self.phase)) + self.phase
        cut_by_budget = 0 < len(offsets) == budget and offsets[-1] + 1.0 / self.rate < span
        self.window_s = float(offsets[-1] + 1.0 / self.rate) if cut_by_budget else span
        times = (start + offsets).tolist()
        count = len(times)
        i = 0
        while i < count and not self.stopping:
            now = time.monotonic()
            while i < count and times[i] <= now:
                self._dispatch(times[i], now)
                i += 1
            if i < count:
                await self._sleep(max(0.0, times[i] - time.monotonic()))
        if i < count:  # stopped: the schedule ended here
            self.window_s = min(self.window_s, time.monotonic() - start)
        self.scheduled = i
        self.stopping = True
        await self.finish(grace)

    def _dispatch(self, intended: float, now: float) -> None:
        self.scheduler_lag.append(now - intended)
        self.remaining -= 1
        if self.idle:
            self._send(self.idle.pop(), intended)
        elif len(self.connections) + len(self.opening) < self.max_connections:
            self._spawn(self._connect_and_send(self._begin_connect(intended), intended))
        else:
            self.waited_for_connection += 1
            self.backlog.append(intended)

    async def _connect_and_send(self, key: int, intended: float) -> None:
        conn = await self._open(self._on_done, key)
        if conn is None:
            now = time.monotonic()
            self.recorder.add(intended, now, now, 0, CONNECTION)
            self._check_drained()
            return
        self._send(conn, intended)

    def _on_done(self, conn: Connection, status: int, body: bytes, error: str | None) -> None:
        self._record(conn, status, body, error)
        if conn.closed:
            self.connections.discard(conn)
            if self.backlog:  # replace it, so the backlog is not stranded
                intended = self.backlog.popleft()
                self._spawn(self._connect_and_send(self._begin_connect(intended), intended))
        elif self.backlog:
            self._send(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)
        self._check_drained()

    def _is_drained(self) -> bool:
        return self.stopping and not self.backlog and not self.opening and self._in_flight() == 0

    def _after_close(self, now: float) -> None:
        while self.backlog:  # scheduled, never sent: still part of what the server owed us
            intended = self.backlog.popleft()
            self.recorder.add(intended, now, now, 0, UNFINISHED)
