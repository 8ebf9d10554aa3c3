"""Models used by the batching integration tests (loaded as ``tests.batching_models:NAME``)."""

import time

from hubstress_ext.batching.models import DeviceSim


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


class device_10ms(DeviceSim):  # noqa: N801 - named as the model spec says it
    """An accelerator stand-in at 10 ms per batch: about 100 batches/s, a capacity far below
    what any client's burst sends, however slowly a loaded machine opens its connections."""

    def __init__(self) -> None:
        super().__init__(base_ms=10.0, per_item_ms=0.0)
