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
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("hubstress.batching")

Model = Callable[[list[Any]], Any]


class QueueFull(Exception):
    """Refused before enqueueing: the queue holds ``max_queue`` items."""


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
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (got {self.batch_size!r})")
        if not _number(self.max_wait_ms) or self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be a number >= 0 (got {self.max_wait_ms!r})")
        if not isinstance(self.max_queue, int) or self.max_queue < 1:
            raise ValueError(f"max_queue must be an integer >= 1 (got {self.max_queue!r})")
        if not _number(self.deadline_ms) or self.deadline_ms <= 0:
            raise ValueError(f"deadline_ms must be a number > 0 (got {self.deadline_ms!r})")


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(slots=True)
class Result:
    """What a served item gets back, besides its model output."""

    output: Any
    batch_id: int
    batch_size: int
    queue_ms: float
    model_ms: float


@dataclass(eq=False)
class Pending:
    item: Any
    future: asyncio.Future
    enqueued: float  # loop.time()
    key: int = 0


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


class Batcher:
    def __init__(
        self,
        model: Model,
        settings: BatchSettings | None = None,
        *,
        executor: concurrent.futures.Executor | None = None,
        metrics: Any = None,
    ) -> None:
        self.model = model
        self.settings = settings or BatchSettings()
        self.settings.validate()
        self._is_async = inspect.iscoroutinefunction(model) or inspect.iscoroutinefunction(
            type(model).__call__
        )
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
        self.metrics = metrics

    # -- intake ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, item: Any) -> Pending:
        """Enqueue (or raise QueueFull / RuntimeError when closed). Await ``pending.future``."""
        if self._closed or len(self._queue) >= self.settings.max_queue:
            self.stats.rejected += 1
            self._observe_outcome("rejected")
            if self._closed:
                raise QueueFull("shutting down")
            raise QueueFull(f"queue full ({self.settings.max_queue} waiting)")
        loop = asyncio.get_running_loop()
        pending = Pending(item, loop.create_future(), loop.time(), next(self._keys))
        self._queue[pending.key] = pending
        self.stats.accepted += 1
        self._idle.clear()
        self._set_depth()
        self._maybe_dispatch()
        return pending

    def withdraw(self, pending: Pending, reason: str) -> bool:
        """Remove a still-queued item ('timed_out' or 'cancelled'); False if already dispatched."""
        if self._queue.pop(pending.key, None) is None:
            return False
        if reason == "timed_out":
            self.stats.timed_out += 1
        else:
            self.stats.cancelled += 1
        self._observe_outcome(reason)
        if not pending.future.done():
            pending.future.cancel()
        self._set_depth()
        self._check_idle()
        self._maybe_dispatch()  # the oldest item may have changed: re-arm the timer
        return True

    # -- dispatch --------------------------------------------------------------------------

    def _maybe_dispatch(self) -> None:
        if self._busy or not self._queue:
            self._cancel_timer()
            return
        s = self.settings
        loop = asyncio.get_running_loop()
        oldest = next(iter(self._queue.values()))
        due = oldest.enqueued + s.max_wait_ms / 1000.0
        if len(self._queue) >= s.batch_size or s.max_wait_ms == 0 or loop.time() >= due or self._closed:
            self._cancel_timer()
            self._busy = True
            batch = [self._queue.popitem(last=False)[1] for _ in range(min(s.batch_size, len(self._queue)))]
            self._set_depth()
            loop.create_task(self._run_batch(batch))
        elif self._timer is None or self._timer.when() != due:
            self._cancel_timer()
            self._timer = loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._maybe_dispatch()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _run_batch(self, batch: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        batch_id = next(self._batch_ids)
        size = len(batch)
        start = loop.time()
        items = [p.item for p in batch]
        try:
            if self._is_async:
                outputs = await self.model(items)
            else:
                outputs = await loop.run_in_executor(self._executor, self.model, items)
            outputs = list(outputs) if outputs is not None else None
            if outputs is None or len(outputs) != size:
                got = "None" if outputs is None else len(outputs)
                raise RuntimeError(f"model returned {got} results for a batch of {size}")
            failure = None
        except Exception as exc:  # the batch fails, the batcher does not
            failure = exc
        model_ms = (loop.time() - start) * 1000.0
        self._record_batch(size, model_ms)
        error_id = uuid.uuid4().hex[:12]
        if failure is not None:
            log.error(
                "model failed on batch %d (%d items), error id %s", batch_id, size, error_id, exc_info=failure
            )
        for i, pending in enumerate(batch):
            queue_ms = (start - pending.enqueued) * 1000.0
            self.stats.queue_wait_ms.append(queue_ms)
            if self.metrics is not None:
                self.metrics.queue_wait.observe(queue_ms / 1000.0)
            if failure is not None:
                self._resolve_error(pending, ModelError(f"model failed: {failure}", error_id))
            elif isinstance(outputs[i], BaseException):
                self._resolve_error(
                    pending, ModelError(f"model failed for this item: {outputs[i]}", error_id)
                )
            else:
                self.stats.served += 1
                self._observe_outcome("served")
                if not pending.future.done():
                    pending.future.set_result(Result(outputs[i], batch_id, size, queue_ms, model_ms))
        self._busy = False
        self._check_idle()
        self._maybe_dispatch()

    def _resolve_error(self, pending: Pending, error: ModelError) -> None:
        self.stats.errors += 1
        self._observe_outcome("error")
        if not pending.future.done():
            pending.future.set_exception(error)
            pending.future.exception()  # mark retrieved: the handler may be gone

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

        Returns how many queued items were refused (answered as 'shutting down').
        """
        self._closed = True
        self._maybe_dispatch()
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            return 0
        except TimeoutError:
            refused = 0
            for pending in list(self._queue.values()):
                if self.withdraw(pending, "cancelled"):
                    refused += 1
            return refused

    def _check_idle(self) -> None:
        if not self._queue and not self._busy:
            self._idle.set()

    def _record_batch(self, size: int, model_ms: float) -> None:
        st = self.stats
        st.batches += 1
        st.batch_sizes[size] = st.batch_sizes.get(size, 0) + 1
        st.model_ms.append(model_ms)
        if self.metrics is not None:
            self.metrics.batch_size.observe(size)
            self.metrics.model_time.observe(model_ms / 1000.0)

    def _observe_outcome(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(outcome=outcome).inc()

    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._queue))

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


def _percentiles(samples: deque) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    arr = np.fromiter(samples, dtype=float)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"p50": round(p50, 3), "p90": round(p90, 3), "p99": round(p99, 3), "max": round(arr.max(), 3)}


def now_ms() -> int:
    return int(time.time() * 1000)
