"""Batcher: an event-driven micro-batching queue in front of a model.

A batch is dispatched the moment ``batch_size`` items are queued, or when the oldest queued
item has waited ``max_wait_ms`` (a partial batch is served, never turned into an error);
``max_wait_ms=0`` is greedy: whatever is queued runs whenever the model is free. Nothing
polls: dispatch happens on submit, on a single timer for the oldest item, and on model
completion, so an idle batcher costs no CPU.

Admission is decided before enqueueing, on time as well as on a count (``admission``): an
arrival whose predicted wait is too long is refused at once (``Refused``). An item can be
withdrawn while queued (deadline expired, client gone) and then never reaches the model. Every
accepted item is resolved exactly once: served, error, timed out or cancelled.

With ``latency_slo_ms`` set the batcher is adaptive: it dispatches greedily and moves its
batch size (AIMD, ``admission.BatchCap``) to the largest whose model time fits the SLO.
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

from hubstress_ext.batching.admission import (
    ADMIT_SHARE,
    BatchCap,
    Refused,
    ServiceTime,
    predict,
    start_delay,
)
from hubstress_ext.batching.metrics import BatchHistograms
from hubstress_ext.errors import HubstressError
from hubstress_ext.results.summary import percentiles

log = logging.getLogger("hubstress.batching")

Model = Callable[[list[Any]], Any]


class DeadlineExpired(HubstressError):
    """The item's deadline passed while it was still queued; it never reached the model."""


class ModelError(HubstressError):
    """The model failed for this item (or its whole batch); ``error_id`` ties it to the log."""

    def __init__(self, message: str, error_id: str) -> None:
        super().__init__(message)
        self.error_id = error_id


def setting(default: Any, help: str, choices: tuple[Any, ...] = ()) -> Any:  # noqa: A002
    """A batching setting: its default and its help, declared here once; the Jupyter config
    (traitlets), ``hubstress serve``'s flags and the config API are made from it."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class BatchSettings:
    batch_size: int = setting(5, "Dispatch a batch when this many items are queued.")
    max_wait_ms: float = setting(20.0, "...or when the oldest item has waited this long; 0 = greedy.")
    max_queue: int = setting(1000, "Refuse beyond this many queued items.")
    # a client may only shorten it
    deadline_ms: float = setting(
        30_000.0, "Per-request deadline (clients may shorten it); 504 when it expires queued."
    )
    max_delay_ms: float = setting(
        1000.0, "Refuse an arrival whose predicted wait for its batch is longer; 0 = off."
    )
    latency_slo_ms: float = setting(
        0.0, "Adaptive mode: batch size chosen for throughput with p99 under this; 0 = off."
    )
    refuse_status: int = setting(503, "Status of a refusal, with Retry-After.", choices=(503, 429))

    def validate(self) -> None:
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (got {self.batch_size!r})")
        if not finite_number(self.max_wait_ms) or self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be a finite number >= 0 (got {self.max_wait_ms!r})")
        if not isinstance(self.max_queue, int) or isinstance(self.max_queue, bool) or self.max_queue < 1:
            raise ValueError(f"max_queue must be an integer >= 1 (got {self.max_queue!r})")
        if not finite_number(self.deadline_ms) or self.deadline_ms <= 0:
            raise ValueError(f"deadline_ms must be a finite number > 0 (got {self.deadline_ms!r})")
        if not finite_number(self.max_delay_ms) or self.max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be a finite number >= 0 (got {self.max_delay_ms!r})")
        if not finite_number(self.latency_slo_ms) or self.latency_slo_ms < 0:
            raise ValueError(f"latency_slo_ms must be a finite number >= 0 (got {self.latency_slo_ms!r})")
        if self.refuse_status not in (429, 503) or isinstance(self.refuse_status, bool):
            raise ValueError(f"refuse_status must be 503 or 429 (got {self.refuse_status!r})")


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
    refused: dict[str, int] = field(default_factory=dict)  # rejected, by reason
    refusal_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))  # arrival to answer
    refused_at_headers: int = 0  # of ``rejected``: decided before the application saw it
    unread_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))  # in the socket, per request
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
        self._batch_started = 0.0
        self._service = ServiceTime()
        self._cap: BatchCap | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.stats = Stats()
        self.histograms = BatchHistograms()  # exported by metrics.BatchCollector on scrape
        self._apply(self.settings)

    # -- intake ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def batch_cap(self) -> int:
        """The batch size in force: the setting, or the adaptive mode's current choice."""
        return self._cap.value if self._cap is not None else self.settings.batch_size

    @property
    def max_wait_s(self) -> float:
        """The adaptive mode is greedy: batching comes from items that queue while the model runs."""
        return 0.0 if self._cap is not None else self.settings.max_wait_ms / 1000.0

    def _apply(self, settings: BatchSettings) -> None:
        self.settings = settings
        # an inline model serves an arriving item at once when a batch of one is due at once:
        # batch size 1, greedy (no max wait), or the adaptive mode (greedy too)
        self._one_is_a_batch = self._inline and (
            settings.batch_size == 1 or not settings.max_wait_ms or bool(settings.latency_slo_ms)
        )
        self._max_delay_s = settings.max_delay_ms / 1000.0 if settings.max_delay_ms else math.inf
        slo = settings.latency_slo_ms
        self._slo_admit_s = slo / 1000.0 * ADMIT_SHARE if slo else math.inf
        if not slo:
            self._cap = None
        elif self._cap is None or self._cap.slo_ms != slo:
            self._cap = BatchCap(settings.batch_size, slo)
        else:
            self._cap.limit = settings.batch_size
            self._cap.value = min(self._cap.value, settings.batch_size)

    def submit(
        self,
        item: Any,
        deadline_s: float | None = None,
        age_s: float = 0.0,
        admitted: bool = False,
        unread_s: float = 0.0,
    ) -> Pending:
        """Enqueue, or raise Refused. Await ``pending.future`` for a Result.

        ``age_s``: how long ago the server read the request's headers (its wait so far counts);
        ``unread_s``: how long it waited unread in its socket before that (``arrival``): it
        counts toward the deadline only. The deadline (``deadline_s``, default: the settings')
        counts from the request's arrival. ``admitted``: :meth:`admit` passed it at its
        headers (its wait since then still counts toward the deadline, not toward the delay
        rules). The future fails with ModelError or DeadlineExpired, or is cancelled if the
        item is withdrawn.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        if deadline_s is None:
            deadline_s = self.settings.deadline_ms / 1000.0
        depth = len(self._queue)
        if admitted:
            # Judged at its headers against the queue then; not judged again on its wait for the
            # event loop since, but on the queue now: the requests whose headers were read in the
            # same turn were all admitted against the same queue, none of them in it yet (a burst
            # of 300 once queued 73 deep behind a 15 ms max_delay).
            refused = self._admit(now, depth, 0.0, deadline_s - age_s, unread_s)
        else:
            refused = self._admit(now, depth, age_s, deadline_s, unread_s)
        if refused is not None:
            raise refused
        pending = Pending(item, loop.create_future(), now, next(self._keys))
        self.stats.accepted += 1
        if self._can_serve_now():
            self._serve_inline([pending], loop)
            return pending
        self._queue[pending.key] = pending
        self._idle.clear()
        self._maybe_dispatch()
        if pending.key in self._queue:  # still waiting: arm its deadline
            pending.expiry = loop.call_at(now - age_s - unread_s + deadline_s, self._expire, pending)
        return pending

    def _can_serve_now(self) -> bool:
        """Nothing queued and a near-instant model: an item is a whole batch by itself right
        now (a batch is due when full, or at once when greedy), so it can skip the queue."""
        return self._one_is_a_batch and not self._queue and not self._busy and not self._closed

    def serve_now(
        self, item: Any, deadline_s: float, age_s: float = 0.0, unread_s: float = 0.0
    ) -> Result | None:
        """The fast path of an inline model: serve ``item`` at once and return its Result, with
        no future and no queue; None when it cannot be served at once (then ``submit``).

        Admitted on the same rules as ``submit`` (an arrival it would refuse gets None, so that
        ``submit`` words the refusal). Raises ModelError if the model fails for the item.
        """
        if not self._can_serve_now() or self._too_late(age_s, self._service.per_batch, deadline_s - unread_s):
            return None
        st = self.stats
        st.accepted += 1
        start = time.monotonic()
        try:
            outputs = self.model([item])
            if outputs is None or len(outputs) != 1:
                _checked(outputs, 1)  # raises, worded
            output, failure = outputs[0], None
        except Exception as exc:  # the item fails, the batcher does not
            output, failure = None, exc
        batch_id, model_ms = self._batch_done(1, start, time.monotonic())
        st.queue_wait_ms.append(0.0)
        self.histograms.queue_wait.counts[0] += 1  # a zero wait: the first bucket, sum unchanged
        if failure is not None or isinstance(output, BaseException):
            st.errors += 1
            raise self._model_error(batch_id, 1, failure, output)
        st.served += 1
        return Result(output, batch_id, 1, 0.0, model_ms)

    def admit(
        self, deadline_s: float | None = None, unread_s: float = 0.0, incoming: int = 0
    ) -> Refused | None:
        """The admission decision alone (counted if it refuses), for a server that decides as
        soon as it has read a request's headers (``unread_s``: how long it waited unread;
        ``incoming``: requests admitted so but not submitted yet, counted as queued ahead)."""
        if deadline_s is None:
            deadline_s = self.settings.deadline_ms / 1000.0
        now = asyncio.get_running_loop().time()
        return self._admit(now, len(self._queue) + incoming, 0.0, deadline_s, unread_s)

    def _admit(
        self, now: float, depth: int, age_s: float, deadline_s: float, unread_s: float = 0.0
    ) -> Refused | None:
        if self._closed or depth >= self.settings.max_queue:
            return self._refused(now, age_s, deadline_s, depth, check=False)
        per_batch = self._service.per_batch
        delay = start_delay(age_s, self._busy_left(now, per_batch), depth, self.batch_cap, per_batch)
        if self._too_late(delay, per_batch, deadline_s - unread_s):
            return self._refused(now, age_s, deadline_s, depth, unread_s=unread_s)
        return None

    def _busy_left(self, now: float, per_batch: float) -> float:
        """How much longer the running batch should take (0 when the model is free)."""
        return max(0.0, self._batch_started + per_batch - now) if self._busy else 0.0

    def _too_late(self, delay_s: float, per_batch_s: float, deadline_s: float) -> bool:
        """The time rules: the batch would start after max_delay, or finish after the deadline
        (what is left of it after the time unread), or, adaptive, after the SLO's admission
        share.

        Time unread in the socket counts toward the deadline only: it grows when the server's
        CPU is the limit (reading requests, not the model), and refusing a request costs a good
        part of serving it, so refusing on it for delay or the SLO would refuse nearly all
        (measured: echo at 2x capacity, goodput 0.72 of capacity -> 0.01). Past its deadline, a
        request would only be answered 504 later: refusing it costs less."""
        return delay_s > self._max_delay_s or delay_s + per_batch_s > min(deadline_s, self._slo_admit_s)

    @property
    def pressed(self) -> bool:
        """Anything queued or running: only then can an arrival be refused on time."""
        return self._busy or bool(self._queue) or self._closed

    def _refused(
        self,
        now: float,
        age_s: float,
        deadline_s: float,
        depth: int,
        check: bool = True,
        unread_s: float = 0.0,
    ) -> Refused:
        """Count a refusal and word it: the first rule broken, the prediction, the drain time."""
        per_batch = self._service.per_batch
        p = predict(age_s, self._busy_left(now, per_batch), depth, self.batch_cap, per_batch)
        s = self.settings
        if self._closed:
            reason, message = "shutting_down", "shutting down"
        elif not check:
            reason, message = "queue_full", f"queue full ({s.max_queue} waiting)"
        elif p.delay_s > self._max_delay_s:
            reason = "queue_delay"
            message = f"expected wait {p.delay_s * 1000:.0f} ms is over max_delay_ms={s.max_delay_ms:g}"
        elif p.completion_s + unread_s > deadline_s:
            reason = "deadline"
            unread = f" ({unread_s * 1000:.0f} ms of it unread in its socket)" if unread_s >= 0.0005 else ""
            message = (
                f"expected completion {(p.completion_s + unread_s) * 1000:.0f} ms{unread} is past "
                f"the deadline ({deadline_s * 1000:g} ms)"
            )
        else:
            reason = "latency_slo"
            message = (
                f"expected completion {p.completion_s * 1000:.0f} ms would break "
                f"latency_slo_ms={s.latency_slo_ms:g}"
            )
        st = self.stats
        st.rejected += 1
        st.refused[reason] = st.refused.get(reason, 0) + 1
        # the server is at least as far behind as the request's whole wait
        drain = max(p.drain_s, age_s + unread_s)
        return Refused(reason, message, drain, round((p.completion_s + unread_s) * 1000.0, 3))

    def note_unread(self, seconds: float) -> None:
        """How long a request waited unread in its socket (kernel stamp to headers read): the
        server's own backlog, which no queue count shows."""
        self.stats.unread_ms.append(seconds * 1000.0)

    def note_refusal(self, seconds: float, at_headers: bool = False) -> None:
        """The server side of a refusal (arrival to answer), measured by the HTTP layer."""
        self.stats.refusal_ms.append(seconds * 1000.0)
        if at_headers:
            self.stats.refused_at_headers += 1
        self.histograms.refusal_time.observe(seconds)

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
            batch = self._due_batch(loop)
            if batch is None:
                return
            if not batch:
                continue  # every item taken had passed its deadline
            if self._inline:
                self._serve_inline(batch, loop)
                continue
            self._busy = True
            self._batch_started = loop.time()
            loop.create_task(self._run_batch(batch))
            return

    def _due_batch(self, loop: asyncio.AbstractEventLoop) -> list[Pending] | None:
        """The batch due now (empty if every item taken had expired), or None: not due yet,
        and one timer armed for the oldest item."""
        cap, wait = self.batch_cap, self.max_wait_s
        if len(self._queue) < cap and wait and not self._closed:
            due = next(iter(self._queue.values())).enqueued + wait
            if loop.time() < due:
                if self._timer is None or self._timer.when() != due:
                    self._cancel_timer()
                    self._timer = loop.call_at(due, self._on_timer)
                return None
        self._cancel_timer()
        return self._take_batch(cap, loop.time())

    def _next_in_turn(self, loop: asyncio.AbstractEventLoop) -> list[Pending] | None:
        """The next batch, if one is due now, for the task that just finished one.

        Only for an async model (an accelerator: the CPU is free while it runs). A model in the
        executor computes on this machine's CPU and under the GIL: the turn of the loop between
        two of its batches is when the loop reads what arrived meanwhile, so the next batch is
        fuller and admission sees arrivals' real wait (measured: back to back, the adaptive
        mode's open-loop p99 rose from 26 to 110 ms, over its 50 ms SLO)."""
        if not self._is_async:
            return None
        while self._queue:
            batch = self._due_batch(loop)
            if batch is None or batch:
                return batch
        return None

    def _take_batch(self, cap: int, now: float) -> list[Pending]:
        """Up to ``cap`` of the oldest items; one whose deadline has passed (its timer not run
        yet, the loop being late) is answered 504 here: nothing reaches the model late."""
        batch: list[Pending] = []
        queue = self._queue
        while queue and len(batch) < cap:
            pending = queue.popitem(last=False)[1]
            expiry = pending.expiry
            if expiry is not None:
                pending.expiry = None
                expiry.cancel()
                if expiry.when() <= now:
                    self.stats.timed_out += 1
                    if not pending.future.done():
                        pending.future.set_exception(DeadlineExpired("deadline expired while queued"))
                        pending.future.exception()  # retrieved: the handler may be gone
                    continue
            batch.append(pending)
        return batch

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

    async def _run_batch(self, batch: list[Pending] | None) -> None:
        """Run batches back to back while one is due (async models): the next starts in the same
        turn of the event loop as the last one ended. A new task per batch would start a turn
        later, and under load a turn of a busy loop is milliseconds of the device standing idle."""
        loop = asyncio.get_running_loop()
        while batch:
            start = self._batch_started = loop.time()
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
            batch = self._next_in_turn(loop)
        self._busy = False
        self._maybe_dispatch()

    def _batch_done(self, size: int, start: float, end: float) -> tuple[int, float]:
        """Book a finished batch (stats, histograms, the service-time estimate, the adaptive
        batch size); returns its id and model time in ms."""
        seconds = end - start
        model_ms = seconds * 1000.0
        st = self.stats
        st.batches += 1
        st.batch_sizes[size] = st.batch_sizes.get(size, 0) + 1
        st.model_ms.append(model_ms)
        self.histograms.batch_size.observe(size)
        self.histograms.model_time.observe(seconds)
        self._service.observe(seconds, size, self.batch_cap)
        if self._cap is not None:
            self._cap.observe(seconds, size)
        return next(self._batch_ids), model_ms

    def _model_error(self, batch_id: int, size: int, failure: Exception | None, output: Any) -> ModelError:
        error_id = uuid.uuid4().hex[:12]
        if failure is not None:
            log.error(
                "model failed on batch %d (%d items), error id %s", batch_id, size, error_id, exc_info=failure
            )
            return ModelError(f"model failed: {failure}", error_id)
        return ModelError(f"model failed for this item: {output}", error_id)

    def _complete(
        self, batch: list[Pending], outputs: list | None, failure: Exception | None, start: float, end: float
    ) -> None:
        """Answer every member of a finished batch exactly once."""
        size = len(batch)
        batch_id, model_ms = self._batch_done(size, start, end)
        batch_error = self._model_error(batch_id, size, failure, None) if failure is not None else None
        waits = self.stats.queue_wait_ms
        observe_wait = self.histograms.queue_wait.observe
        for i, pending in enumerate(batch):
            queue_ms = (start - pending.enqueued) * 1000.0
            waits.append(queue_ms)
            observe_wait(queue_ms / 1000.0)
            output = outputs[i] if outputs is not None else None
            if batch_error is not None or isinstance(output, BaseException):
                self.stats.errors += 1
                if not pending.future.done():
                    pending.future.set_exception(
                        batch_error or self._model_error(batch_id, size, None, output)
                    )
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
        self._apply(candidate)
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

    def snapshot(self) -> dict[str, Any]:
        st = self.stats
        return {
            "accepted": st.accepted,
            "served": st.served,
            "rejected": st.rejected,
            "refused_by_reason": dict(st.refused),
            "refused_at_headers": st.refused_at_headers,
            "timed_out": st.timed_out,
            "cancelled": st.cancelled,
            "errors": st.errors,
            "in_flight": st.accepted - st.served - st.timed_out - st.cancelled - st.errors,
            "queue_depth": len(self._queue),
            "batches": st.batches,
            "batch_size_histogram": {str(k): v for k, v in sorted(st.batch_sizes.items())},
            "queue_wait_ms": _percentiles(st.queue_wait_ms),
            "model_ms": _percentiles(st.model_ms),
            "refusal_ms": _percentiles(st.refusal_ms),
            "unread_ms": _percentiles(st.unread_ms),
            "effective": {
                "batch_size": self.batch_cap,
                "max_wait_ms": self.max_wait_s * 1000.0,
                "model_ms_per_batch": round(self._service.per_batch * 1000.0, 3),
            },
            "settings": dict(self.settings.__dict__),
        }


def _checked(outputs: Any, size: int) -> list:
    results = list(outputs) if outputs is not None else None
    if results is None or len(results) != size:
        got = "None" if results is None else len(results)
        raise RuntimeError(f"model returned {got} results for a batch of {size}")
    return results


def _percentiles(samples: deque) -> dict[str, float | None]:
    """The shared helper's figures, None where there are no samples (JSON has no NaN)."""
    if not samples:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    return percentiles(np.fromiter(samples, dtype=float), digits=3)


def now_ms() -> int:
    return int(time.time() * 1000)
