"""Admission on time: predict a request's wait before queueing it, and refuse it at once if late.

A count (``max_queue``) cannot see why a queue is long: 100 items ahead is nothing for a model
that serves them in 2 ms and ten seconds for one that needs 200 ms per batch. So the batcher
predicts each arrival's wait from what it knows when the request comes in:

    delay      = age (since the server read its headers) + rest of the running batch
                 + (items queued ahead // batch size) x model time per batch
    completion = delay + model time of its own batch

and refuses (``Refused``, answered 503 or 429 with ``Retry-After``) before queueing when

- ``delay > max_delay_ms`` (reason ``queue_delay``; 0 turns this rule off),
- ``completion > its deadline`` (``deadline``: it would only be answered 504 later),
- ``completion > ADMIT_SHARE x latency_slo_ms`` in the adaptive mode (``latency_slo``).

The model time per batch is the median of the last few measured batches (:class:`ServiceTime`),
so the prediction follows a model that slows down within a few batches, and one batch that
stalled (the process descheduled on a busy machine, a cold first call) does not make the next
arrivals look late. :class:`BatchCap` is the adaptive mode: additive
increase / multiplicative decrease of the batch size (Clipper's AIMD), so that one batch's
model time stays within ``MODEL_SHARE`` of the latency SLO.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

from hubstress_ext.errors import HubstressError

# Adaptive mode: a batch's model time may use this share of the SLO (a request can arrive just
# as a batch starts, wait for it and then run in the next one: about two model times), and an
# arrival is admitted while its predicted completion is within this share (the rest is HTTP).
MODEL_SHARE = 0.4
ADMIT_SHARE = 0.9
DECREASE = 0.75  # multiplicative decrease of the batch size when a batch ran over budget
SERVICE_WINDOW = 7  # batches in the median: a slowdown shows after 4, an isolated stall never

REASONS = ("queue_full", "queue_delay", "deadline", "latency_slo", "shutting_down")


class Refused(HubstressError):
    """Refused before enqueueing: why, the predicted wait, and when the queue will have drained."""

    def __init__(
        self, reason: str, message: str, retry_after_s: float, expected_ms: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.expected_ms = expected_ms

    @property
    def retry_after_header(self) -> str:
        """Retry-After takes whole seconds: the drain estimate rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


class ServiceTime:
    """The model's time per batch: the median of recent full batches, and of any batch.

    Under load batches are full, and that is when predictions matter; until a full batch has
    been seen the median over any batch stands in. A median, not a moving average: one batch
    that stalled for 100 ms among 3 ms ones lifted an average (alpha 0.2) to 22 ms, and a light
    load behind a 20 ms ``max_delay`` was refused for the next several batches (seen once, on
    a machine with both cores busy). The medians are computed per batch, not per arrival.
    """

    __slots__ = ("_full", "_any", "full", "any")

    def __init__(self) -> None:
        self._full: deque[float] = deque(maxlen=SERVICE_WINDOW)
        self._any: deque[float] = deque(maxlen=SERVICE_WINDOW)
        self.full: float | None = None
        self.any: float | None = None

    def observe(self, seconds: float, size: int, cap: int) -> None:
        self._any.append(seconds)
        self.any = statistics.median(self._any)
        if size >= cap:
            self._full.append(seconds)
            self.full = statistics.median(self._full)

    @property
    def per_batch(self) -> float:
        return self.full if self.full is not None else (self.any or 0.0)


class BatchCap:
    """AIMD on the batch size (adaptive mode): +1 after a full batch within budget, x0.75 after
    any batch over it. The cap never exceeds the configured ``batch_size``."""

    __slots__ = ("value", "limit", "slo_ms", "budget_s")

    def __init__(self, limit: int, slo_ms: float) -> None:
        self.limit = limit
        self.slo_ms = slo_ms
        self.budget_s = slo_ms / 1000.0 * MODEL_SHARE
        self.value = 1

    def observe(self, seconds: float, size: int) -> None:
        if seconds > self.budget_s:
            self.value = max(1, min(self.value, math.floor(self.value * DECREASE)))
        elif size >= self.value and self.value < self.limit:
            self.value += 1


@dataclass(frozen=True, slots=True)
class Prediction:
    delay_s: float  # until its batch starts
    completion_s: float  # until its batch is done
    drain_s: float  # until everything queued now is done (or the server has caught up)


def start_delay(age_s: float, busy_left_s: float, ahead: int, cap: int, per_batch_s: float) -> float:
    """Until an arrival's batch starts: its age, the running batch, the full batches ahead."""
    return age_s + busy_left_s + (ahead // cap) * per_batch_s


def predict(age_s: float, busy_left_s: float, ahead: int, cap: int, per_batch_s: float) -> Prediction:
    delay = start_delay(age_s, busy_left_s, ahead, cap, per_batch_s)
    # A request that waited before the batcher saw it (socket backlog, a busy event loop) says
    # the server runs that far behind even when the model is idle: retrying sooner is futile.
    drain = max(age_s, busy_left_s + math.ceil(ahead / cap) * per_batch_s)
    return Prediction(delay, delay + per_batch_s, drain)
