"""BatchingService: one batcher + its model + request limits, shared by every handler."""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable
from typing import Any

import psutil

from hubstress_ext.batching.batcher import Batcher, BatchSettings
from hubstress_ext.batching.limits import HttpLimits
from hubstress_ext.batching.metrics import collector
from hubstress_ext.batching.models import load_model

DEFAULT_MAX_BODY = HttpLimits.max_body_bytes


class BatchingService:
    def __init__(
        self,
        model: str = "echo",
        settings: BatchSettings | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        prometheus: bool = True,
        loaded: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        """``model`` names the model; ``loaded``, when given, is that model already loaded
        (``hubstress serve`` loads it once, to check it before it listens)."""
        self.model_name = model
        self.batcher = Batcher(loaded if loaded is not None else load_model(model), settings)
        if prometheus:
            collector().batchers.add(self.batcher)
        self.max_body_bytes = max_body_bytes
        # requests admitted at their headers whose handler has not run yet (``hubstress serve``):
        # not in the queue, but ahead of the next arrival all the same. Weak, so a request that
        # never reaches its handler (its client gone) leaves by itself.
        self.incoming: weakref.WeakSet[Any] = weakref.WeakSet()
        self._process = psutil.Process(os.getpid())
        # a model may declare ``check(item) -> str | None``: a bad item is refused with 400
        # before it is queued, so it can never fail the batch it would have joined
        self.check_item: Callable[[Any], str | None] | None = getattr(self.batcher.model, "check", None)

    def config(self) -> dict[str, Any]:
        return {
            **self.batcher.settings.__dict__,
            "model": self.model_name,
            "max_body_bytes": self.max_body_bytes,
        }

    def stats(self) -> dict[str, Any]:
        cpu = self._process.cpu_times()
        return {
            **self.batcher.snapshot(),
            "model": self.model_name,
            "pid": self._process.pid,
            "cpu_seconds": cpu.user + cpu.system,
            "time": time.time(),
        }
