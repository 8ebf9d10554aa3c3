"""Clock offsets between processes: shards start together and their records line up.

Each shard measures how far its wall clock is from the scheduler's with a few round trips
(the one with the shortest round trip wins, as NTP does), starts at the common start time
*in its own clock*, and reports when it really started on the scheduler's clock. Latencies
themselves are never compared across processes: each is measured on its process's own
monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SAMPLES = 9


def offset_of(samples: list[tuple[float, float, float]]) -> float:
    """``remote - local`` from (local before, remote, local after) samples: the tightest one."""
    before, remote, after = min(samples, key=lambda s: s[2] - s[0])
    return remote - (before + after) / 2.0


def measure_offset(
    remote_clock: Callable[[], float], local_clock: Callable[[], float] = time.time, samples: int = SAMPLES
) -> float:
    """How far ``remote_clock`` is ahead of ``local_clock`` (seconds; negative when behind)."""
    out = []
    for _ in range(samples):
        before = local_clock()
        remote = remote_clock()
        out.append((before, remote, local_clock()))
    return offset_of(out)


def to_local(remote_time: float, offset: float) -> float:
    """A time on the remote (scheduler's) clock, read on the local clock."""
    return remote_time - offset


def to_remote(local_time: float, offset: float) -> float:
    return local_time + offset
