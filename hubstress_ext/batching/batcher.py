"""Batcher: an event-driven micro-batching queue in front of a model.

A batch is dispatched the moment ``batch_size`` items are queued, or when the oldest queued
item has waited ``max_wait_ms`` (a partial batch is served, never turned into an error);
``max_wait_ms=0`` is greedy: whatever is queued runs whenever the model is free. Nothing
polls: dispatch happens on submit, on a single timer for the oldest item, and on model
completion, so an idle batcher costs no CPU.

Admission control happens before enqueueing (``QueueFull``); an item can be withdrawn while
queued (deadline expired, client gone) and then never reaches the model. Every accepted item
is resolved exactly once: served, error, timed out or cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hubstress_ext.batching.metrics import BatchHistograms

log = logging.getLogger("hubstress.batching")

Model = Callable[[list[Any]], Any]


class QueueFull(Exception):
    """Refused before enqueueing: the queue holds ``max_queue`` items (or is shutting down)."""


class DeadlineExpired(Exception):
    """The item's deadline passed while it was still queued; it never reached the model."""


class ModelError(Exception):
    """The model failed for this item (or its whole batch); ``error_id`` ties it to the log."""

    def __init__(self, message: str, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


@dataclass
class BatchSettings:
    batch_size: int = 5
    max_wait_ms: float = 20.0
    max_queue: int = 1000
    deadline_ms: float = 30_000.0  # default per-request deadline; a client may only shorten it

    def validate(self) -> None:
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (got {self.batch_size!r})")
        if not finite_number(self.max_wait_ms) or self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be a finite number >= 0 (got {self.max_wait_ms!r})")
        if not isinstance(self.max_queue, int) or isinstance(self.max_queue, bool) or self.max_queue < 1:
            raise ValueError(f"max_queue must be an integer >= 1 (got {self.max_queue!r})")
        if not finite_number(self.deadline_ms) or self.deadline_ms <= 0:
            raise ValueError(f"deadline_ms must be a finite number > 0 (got {self.deadline_ms!r})")


def finite_number(v: object) -> bool:
    """A real, finite number: NaN would switch a comparison-based limit off, inf means none."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(slots=True)
class Result:
    """What a served item gets back, besides its model output."""

    output: Any
    batch_id: int
    batch_size: int
    queue_ms: float
    model_ms: float


@dataclass(eq=False, slots=True)
class Pending:
    item: Any
    future: asyncio.Future
    enqueued: float  # loop.time()
    key: int = 0
    expiry: asyncio.TimerHandle | None = None


@dataclass
class Stats:
    accepted: int = 0
    served: int = 0
    rejected: int = 0
    timed_out: int = 0
    cancelled: int = 0
    errors: int = 0
    batches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    queue_wait_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))
    model_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))


def is_inline(model: Model) -> bool:
    """A model marked ``inline = True`` is trusted to be near-instant and runs on the loop.

    Thread hand-offs cost more than such a model's work (the built-in ``echo`` does none);
    anything that computes must stay unmarked and run in the executor.
    """
    return bool(getattr(model, "inline", False))


class Batcher:
    def __init__(
        self,
        model: Model,
        settings: BatchSettings | None = None,
        *,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.model = model
        self.settings = settings or BatchSettings()
        self.settings.validate()
        self._is_async = inspect.iscoroutinefunction(model) or inspect.iscoroutinefunction(
            type(model).__call__
        )
        self._inline = not self._is_async and is_inline(model)
        self._executor = executor
        self._queue: OrderedDict[int, Pending] = OrderedDict()
        self._keys = itertools.count()
        self._batch_ids = itertools.count(1)
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = Stats()
        self.histograms = BatchHistograms()  # exported by metrics.BatchCollector on scrape

    # -- intake ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, item: Any, deadline_s: float | None = None) -> Pending:
        """Enqueue, or raise QueueFull. Await ``pending.future`` for a Result.

        The future fails with ModelError or DeadlineExpired, or is cancelled if the item is
        withdrawn; ``deadline_s`` (default: the settings' deadline) counts from now.
        """
        if self._closed or len(self._queue) >= self.settings.max_queue:
            self.stats.rejected += 1
            raise QueueFull(
                "shutting down" if self._closed else f"queue full ({self.settings.max_queue} waiting)"
            )
        loop = asyncio.get_running_loop()
        pending = Pending(item, loop.create_future(), loop.time(), next(self._keys))
        self.stats.accepted += 1
        if self._inline and not self._queue and not self._busy:
            # Nothing queued and a near-instant model: this item is a whole batch by itself
            # right now (a batch is due when full, or at once when greedy); skip the queue.
            s = self.settings
            if s.batch_size == 1 or not s.max_wait_ms:
                self._serve_inline([pending], loop)
                return pending
        self._queue[pending.key] = pending
        self._idle.clear()
        self._maybe_dispatch()
        if pending.key in self._queue:  # still waiting: arm its deadline
            if deadline_s is None:
                deadline_s = self.settings.deadline_ms / 1000.0
            pending.expiry = loop.call_at(pending.enqueued + deadline_s, self._expire, pending)
        return pending

    def _expire(self, pending: Pending) -> None:
        pending.expiry = None
        if self._remove(pending, "timed_out") and not pending.future.done():
            pending.future.set_exception(DeadlineExpired("deadline expired while queued"))
            pending.future.exception()  # retrieved: the handler may be gone

    def withdraw(self, pending: Pending, reason: str = "cancelled") -> bool:
        """Remove a still-queued item ('cancelled' or 'timed_out'); False if already dispatched."""
        if not self._remove(pending, reason):
            return False
        if not pending.future.done():
            pending.future.cancel()
        return True

    def _remove(self, pending: Pending, reason: str) -> bool:
        if self._queue.pop(pending.key, None) is None:
            return False
        if pending.expiry is not None:
            pending.expiry.cancel()
            pending.expiry = None
        if reason == "timed_out":
            self.stats.timed_out += 1
        else:
            self.stats.cancelled += 1
        self._maybe_dispatch()  # the oldest item may have changed: re-arm the timer
        return True

    # -- dispatch --------------------------------------------------------------------------

    def _maybe_dispatch(self) -> None:
        """Dispatch every batch that is due now; otherwise arm one timer for the oldest item."""
        loop = asyncio.get_running_loop()
        while True:
            if self._busy or not self._queue:
                self._cancel_timer()
                if not self._busy:
                    self._idle.set()  # every state change ends here: the one place idleness is known
                return
            s = self.settings
            if len(self._queue) < s.batch_size and s.max_wait_ms and not self._closed:
                due = next(iter(self._queue.values())).enqueued + s.max_wait_ms / 1000.0
                if loop.time() < due:  # not due yet: one timer, for the oldest item
                    if self._timer is None or self._timer.when() != due:
                        self._cancel_timer()
                        self._timer = loop.call_at(due, self._on_timer)
                    return
            self._cancel_timer()
            batch = [self._take() for _ in range(min(s.batch_size, len(self._queue)))]
            if self._inline:
                self._serve_inline(batch, loop)
                continue
            self._busy = True
            loop.create_task(self._run_batch(batch))
            return

    def _take(self) -> Pending:
        pending = self._queue.popitem(last=False)[1]
        if pending.expiry is not None:
            pending.expiry.cancel()
            pending.expiry = None
        return pending

    def _on_timer(self) -> None:
        self._timer = None
        self._maybe_dispatch()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _serve_inline(self, batch: list[Pending], loop: asyncio.AbstractEventLoop) -> None:
        start = loop.time()
        try:
            outputs, failure = _checked(self.model([p.item for p in batch]), len(batch)), None
        except Exception as exc:  # the batch fails, the batcher does not
            outputs, failure = None, exc
        self._complete(batch, outputs, failure, start, loop.time())

    async def _run_batch(self, batch: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        items = [p.item for p in batch]
        try:
            if self._is_async:
                raw = await self.model(items)
            else:
                raw = await loop.run_in_executor(self._executor, self.model, items)
            outputs, failure = _checked(raw, len(batch)), None
        except Exception as exc:  # the batch fails, the batcher does not
            outputs, failure = None, exc
        self._complete(batch, outputs, failure, start, loop.time())
        self._busy = False
        self._maybe_dispatch()

    def _complete(
        self, batch: list[Pending], outputs: list | None, failure: Exception | None, start: float, end: float
    ) -> None:
        """Answer every member of a finished batch exactly once."""
        size = len(batch)
        batch_id = next(self._batch_ids)
        model_ms = (end - start) * 1000.0
        self._record_batch(size, model_ms)
        error_id = ""
        if failure is not None:
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "model failed on batch %d (%d items), error id %s", batch_id, size, error_id, exc_info=failure
            )
        waits = self.stats.queue_wait_ms
        observe_wait = self.histograms.queue_wait.observe
        for i, pending in enumerate(batch):
            queue_ms = (start - pending.enqueued) * 1000.0
            waits.append(queue_ms)
            observe_wait(queue_ms / 1000.0)
            output = outputs[i] if outputs is not None else None
            if failure is not None or isinstance(output, BaseException):
                if not error_id:
                    error_id = uuid.uuid4().hex[:12]
                message = (
                    f"model failed: {failure}"
                    if failure is not None
                    else f"model failed for this item: {output}"
                )
                self.stats.errors += 1
                if not pending.future.done():
                    pending.future.set_exception(ModelError(message, error_id))
                    pending.future.exception()  # retrieved: the handler may be gone
            else:
                self.stats.served += 1
                if not pending.future.done():
                    pending.future.set_result(Result(output, batch_id, size, queue_ms, model_ms))

    # -- configuration, shutdown, stats ------------------------------------------------------

    def reconfigure(self, **changes: Any) -> BatchSettings:
        """Validate and apply new settings atomically; queued items are re-evaluated."""
        unknown = set(changes) - set(BatchSettings.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        candidate = BatchSettings(**{**self.settings.__dict__, **changes})
        candidate.validate()
        self.settings = candidate
        self._maybe_dispatch()
        return candidate

    async def close(self, grace: float = 10.0) -> int:
        """Stop intake; serve what is queued within ``grace`` seconds, then refuse the rest.

        Returns how many queued items were refused (their futures are cancelled).
        """
        self._closed = True
        self._maybe_dispatch()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            return 0
        except TimeoutError:
            return sum(self.withdraw(p, "cancelled") for p in list(self._queue.values()))

    def _record_batch(self, size: int, model_ms: float) -> None:
        st = self.stats
        st.batches += 1
        st.batch_sizes[size] = st.batch_sizes.get(size, 0) + 1
        st.model_ms.append(model_ms)
        self.histograms.batch_size.observe(size)
        self.histograms.model_time.observe(model_ms / 1000.0)

    def snapshot(self) -> dict[str, Any]:
        st = self.stats
        return {
            "accepted": st.accepted,
            "served": st.served,
            "rejected": st.rejected,
            "timed_out": st.timed_out,
            "cancelled": st.cancelled,
            "errors": st.errors,
            "in_flight": st.accepted - st.served - st.timed_out - st.cancelled - st.errors,
            "queue_depth": len(self._queue),
            "batches": st.batches,
            "batch_size_histogram": {str(k): v for k, v in sorted(st.batch_sizes.items())},
            "queue_wait_ms": _percentiles(st.queue_wait_ms),
            "model_ms": _percentiles(st.model_ms),
            "settings": dict(self.settings.__dict__),
        }


def _checked(outputs: Any, size: int) -> list:
    results = list(outputs) if outputs is not None else None
    if results is None or len(results) != size:
        got = "None" if results is None else len(results)
        raise RuntimeError(f"model returned {got} results for a batch of {size}")
    return results


def _percentiles(samples: deque) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    arr = np.fromiter(samples, dtype=float)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"p50": round(p50, 3), "p90": round(p90, 3), "p99": round(p99, 3), "max": round(arr.max(), 3)}


def now_ms() -> int:
    return int(time.time() * 1000)
