"""Models used by the batching integration tests (loaded as ``tests.batching_models:NAME``)."""

import time


def slow(items):
    time.sleep(0.3)
    return [None] * len(items)


def picky(items):
    """Fails the whole batch if any item asks for it."""
    if any(i.get("explode") for i in items):
        raise RuntimeError("asked to explode")
    return [{"n": i.get("n")} for i in items]


def sleepy(items):
    """20 ms per batch: a known capacity (about 50 batches/s) to overload on purpose."""
    time.sleep(0.02)
    return [None] * len(items)
