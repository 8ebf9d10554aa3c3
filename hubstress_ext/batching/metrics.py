"""Prometheus metrics of the batching endpoint (served on the Jupyter server's ``/metrics``).

The batcher keeps plain counters and bucket arrays (it lives on one event loop, so no locks);
a custom collector turns them into Prometheus families only when ``/metrics`` is scraped.
prometheus_client's own Histogram takes a lock per observation, which measurably cut the
endpoint's throughput (about 7% at batch size 1).
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections.abc import Iterator
from functools import cache
from typing import Any, Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from hubstress_ext.batching.admission import REASONS

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
REFUSAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1)
MODEL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class Buckets:
    """A histogram as Prometheus sees it: counts per upper bound (inclusive) and a sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class BatchHistograms:
    def __init__(self) -> None:
        self.batch_size = Buckets(BATCH_SIZE_BUCKETS)
        self.queue_wait = Buckets(WAIT_BUCKETS)
        self.model_time = Buckets(MODEL_BUCKETS)
        self.refusal_time = Buckets(REFUSAL_BUCKETS)


OUTCOME_FIELDS = {
    "served": "served",
    "error": "errors",
    "rejected": "rejected",
    "timed_out": "timed_out",
    "cancelled": "cancelled",
}


class Counted(Protocol):
    """What the collector reads of a batcher (``batching.batcher.Batcher``): declared here so
    that the batcher imports its metrics and not the other way round."""

    stats: Any  # served, errors, rejected, timed_out, cancelled, refused (by reason)
    histograms: BatchHistograms
    depth: int
    batch_cap: int


class BatchCollector(Collector):
    def __init__(self) -> None:
        self.batchers: weakref.WeakSet[Counted] = weakref.WeakSet()

    def collect(self) -> Iterator:
        batchers = list(self.batchers)
        requests = CounterMetricFamily(
            "hubstress_batch_requests", "Batching endpoint requests by outcome", labels=["outcome"]
        )
        for outcome, attr in OUTCOME_FIELDS.items():
            requests.add_metric([outcome], sum(getattr(b.stats, attr) for b in batchers))
        yield requests
        refusals = CounterMetricFamily(
            "hubstress_batch_refusals", "Requests refused before queueing, by reason", labels=["reason"]
        )
        for reason in REASONS:
            refusals.add_metric([reason], sum(b.stats.refused.get(reason, 0) for b in batchers))
        yield refusals
        yield GaugeMetricFamily(
            "hubstress_batch_queue_depth", "Items waiting for a batch", value=sum(b.depth for b in batchers)
        )
        yield GaugeMetricFamily(
            "hubstress_batch_effective_size",
            "Batch size in force (the adaptive mode's choice when latency_slo_ms is set)",
            value=max((b.batch_cap for b in batchers), default=0),
        )
        for name, doc, attr in (
            ("hubstress_batch_size", "Items per dispatched batch", "batch_size"),
            ("hubstress_batch_queue_wait_seconds", "Time an item waited in the queue", "queue_wait"),
            ("hubstress_batch_model_seconds", "Model time per batch", "model_time"),
            ("hubstress_batch_refusal_seconds", "Arrival to answer of a refused request", "refusal_time"),
        ):
            parts = [getattr(b.histograms, attr) for b in batchers]
            if not parts:
                continue
            merged = Buckets(parts[0].bounds)
            for p in parts:
                merged.counts = [a + c for a, c in zip(merged.counts, p.counts, strict=True)]
                merged.total += p.total
            yield HistogramMetricFamily(name, doc, buckets=merged.cumulative(), sum_value=merged.total)


@cache
def collector() -> BatchCollector:
    """Registered once per process: the default registry refuses duplicate metric names."""
    c = BatchCollector()
    REGISTRY.register(c)
    return c
