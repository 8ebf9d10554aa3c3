"""Built-in models and the loader for ``module:function`` models.

A model is a callable over a list of items (the parsed JSON bodies) returning one result per
item, sync (run in a thread so the IOLoop stays responsive) or async. A result that is an
exception instance fails only that item.
"""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hubstress_ext.batching.batcher import finite_number


def echo(items: list[dict]) -> list[None]:
    """The seed's "AI": no work at all; the response carries only the timing fields."""
    return [None] * len(items)


echo.inline = True  # no work: a thread hand-off would cost more than the call (see Batcher)


async def echo_async(items: list[dict]) -> list[None]:
    return [None] * len(items)


class DeviceSim:
    """A stand-in for a model on an accelerator: each batch takes ``base_ms + per_item_ms x n``
    of wall time during which the host CPU is free (an async sleep, as a GPU kernel would be).

    With it the model, not the HTTP stack, is the limit, as in real serving: the default costs
    (2 ms + 0.25 ms per item) give about 2,000 items/s at batch size 8 and 250/s at batch size 1.
    """

    def __init__(self, base_ms: float = 2.0, per_item_ms: float = 0.25) -> None:
        self.base_s = base_ms / 1000.0
        self.per_item_s = per_item_ms / 1000.0

    async def __call__(self, items: list[Any]) -> list[None]:
        await asyncio.sleep(self.base_s + self.per_item_s * len(items))
        return [None] * len(items)


class MLP:
    """A small NumPy multilayer perceptron (256-512-512-10, float32) with fixed weights.

    Items may carry ``"x"``: a list of up to 256 finite numbers (checked by :meth:`check`
    before queueing, so one bad item never fails its batch); otherwise an input is derived
    from ``ts``. One batch is three matrix-matrix products, so the cost per item falls as the
    batch grows (BLAS does more work per call, the per-call overhead is shared): batching
    has something to gain, as with a real model.
    """

    def __init__(self, sizes: tuple[int, ...] = (256, 512, 512, 10), seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.sizes = sizes
        self.layers = [
            (rng.standard_normal((a, b), dtype=np.float32) / np.sqrt(a), np.zeros(b, np.float32))
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]

    def check(self, item: dict) -> str | None:
        """Why this item cannot be served (None if it can): what ``x`` must be."""
        if "x" not in item:
            return None
        x = item["x"]
        n_in = self.sizes[0]
        if not isinstance(x, list) or not 1 <= len(x) <= n_in:
            return f"'x' must be a list of 1 to {n_in} numbers"
        for v in x:
            if not finite_number(v):
                return f"'x' must hold only finite numbers (got {v!r})"
            if abs(v) > X_LIMIT:
                return f"'x' values must be within +-{X_LIMIT:g} (got {v!r})"
        return None

    def _inputs(self, items: list[dict]) -> np.ndarray:
        n_in = self.sizes[0]
        x = np.empty((len(items), n_in), np.float32)
        for i, item in enumerate(items):
            given = item.get("x") if isinstance(item, dict) else None
            if isinstance(given, list) and given:
                row = np.asarray(given[:n_in], np.float32)
                x[i, : row.size] = row
                x[i, row.size :] = 0
            else:
                seed = int(item.get("ts", i)) if isinstance(item, dict) else i
                x[i] = np.random.default_rng(seed % 2**32).standard_normal(n_in, dtype=np.float32)
        return x

    def __call__(self, items: list[dict]) -> list[dict]:
        h = self._inputs(items)
        for k, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if k < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        top = h.argmax(axis=1)
        out: list[Any] = []
        for i, t in enumerate(top):
            score = float(h[i, t])
            # an exception instance fails only its own item (never emit NaN as JSON)
            out.append({"label": int(t), "score": score} if math.isfinite(score) else _NOT_FINITE)
        return out


X_LIMIT = 1e6  # far inside float32: three layers of products cannot overflow to inf
_NOT_FINITE = ValueError("the model's score is not a finite number")


BUILTIN: dict[str, Callable[[], Callable[[list[Any]], Any]]] = {
    "echo": lambda: echo,
    "echo-async": lambda: echo_async,
    "mlp": MLP,
    "device-sim": DeviceSim,
}


def load_model(spec: str) -> Callable[[list[Any]], Any]:
    """A built-in name (echo, echo-async, mlp, device-sim) or ``package.module:callable``.

    A class (or factory) named that way is instantiated with no arguments if it is not
    itself a batch function; errors name the spec and what is wrong.
    """
    if spec in BUILTIN:
        return BUILTIN[spec]()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        known = ", ".join(BUILTIN)
        raise ValueError(f"model must be one of {known} or 'module:function' (got {spec!r})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import model module {module_name!r}: {exc}") from None
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(target, type):
        target = target()
    if not callable(target):
        raise ValueError(f"model {spec!r} is not callable")
    return target
