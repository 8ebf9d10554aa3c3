"""Prometheus metrics of the batching endpoint (served on the Jupyter server's ``/metrics``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class BatchMetrics:
    requests: Counter
    queue_depth: Gauge
    batch_size: Histogram
    queue_wait: Histogram
    model_time: Histogram


@cache
def batch_metrics() -> BatchMetrics:
    """Created once per process: prometheus_client's default registry refuses duplicates."""
    return BatchMetrics(
        requests=Counter("hubstress_batch_requests", "Batching endpoint requests by outcome", ["outcome"]),
        queue_depth=Gauge("hubstress_batch_queue_depth", "Items waiting for a batch"),
        batch_size=Histogram(
            "hubstress_batch_size",
            "Items per dispatched batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        ),
        queue_wait=Histogram(
            "hubstress_batch_queue_wait_seconds",
            "Time an item waited in the queue",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        ),
        model_time=Histogram(
            "hubstress_batch_model_seconds",
            "Model time per batch",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        ),
    )
