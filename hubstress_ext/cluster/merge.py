"""One table from many shards: their raw records concatenated, never their percentiles.

Each row gets ``shard`` and ``worker`` columns. Times are put on one base: records kept as
seconds since their shard's own start move by how late that shard started (on the scheduler's
clock); wall-clock stamps move by the shard's clock offset, so a shard whose clock is wrong by
seconds still lines up. Latencies are left alone: each was measured on one process's
monotonic clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd


def shift(frame: pd.DataFrame, columns: Iterable[str], seconds: float) -> pd.DataFrame:
    """``frame`` with ``seconds`` added to each of ``columns`` present (a copy)."""
    out = frame.copy()
    for col in columns:
        if col in out:
            out[col] = out[col] + seconds
    return out


def tag(frame: pd.DataFrame, shard: int, worker: str) -> pd.DataFrame:
    out = frame.copy()
    out.insert(0, "worker", worker)
    out.insert(0, "shard", shard)
    return out


def merge(
    parts: Iterable[tuple[int, str, pd.DataFrame, float]],
    columns: Iterable[str],
    sort_by: str | None = None,
    empty: Callable[[], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Concatenate (shard, worker, frame, shift) parts, shifting ``columns`` of each by its shift."""
    cols = list(columns)
    frames = [tag(shift(frame, cols, delta), shard, worker) for shard, worker, frame, delta in parts]
    frames = [f for f in frames if not f.empty]
    if not frames:
        base = empty() if empty is not None else pd.DataFrame()
        return tag(base, 0, "").iloc[0:0]
    out = pd.concat(frames, ignore_index=True)
    for col in out.columns:  # categories differ per shard; the merged column is one category
        if any(isinstance(f[col].dtype, pd.CategoricalDtype) for f in frames if col in f):
            out[col] = pd.Categorical(out[col].astype(str))
    if sort_by is not None and sort_by in out:
        out = out.sort_values(sort_by, kind="stable", ignore_index=True)
    return out


def concat_chunks(chunks: list[Any]) -> pd.DataFrame | None:
    """A shard's streamed chunks (DataFrames) as one frame."""
    frames = [c for c in chunks if isinstance(c, pd.DataFrame)]
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
