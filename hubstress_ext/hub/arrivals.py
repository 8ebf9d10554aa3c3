"""When each simulated student arrives and how long they stay: a plan drawn from one seed.

The same options and seed give the same plan (``--dry-run`` prints it), so a class can be
rehearsed twice under the same arrivals, or a colleague can rerun it from the scenario file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hubstress_ext.hub.timing import Span

ARRIVALS = ("burst", "even", "poisson", "batches")


@dataclass(frozen=True)
class Student:
    index: int
    arrive: float  # seconds after the class starts
    session: float  # how long the student stays once their server is ready
    seed: int  # their own random stream (think times), independent of the others'

    def describe(self) -> str:
        return f"student {self.index:>4}: arrives at {self.arrive:8.2f}s, stays {self.session:7.2f}s"


def arrival_times(
    kind: str,
    count: int,
    rng: random.Random,
    *,
    rate: float = 1.0,
    period: float = 0.0,
    wave_size: int = 1,
    wave_every: float = 0.0,
) -> list[float]:
    """Offsets (seconds from the start) of ``count`` arrivals.

    burst: all at once; even: evenly over ``period``; poisson: exponential gaps at ``rate`` per
    second (the first student at 0); batches: ``wave_size`` together every ``wave_every``.
    """
    if kind == "burst":
        return [0.0] * count
    if kind == "even":
        step = period / count if count else 0.0
        return [i * step for i in range(count)]
    if kind == "poisson":
        times, t = [], 0.0
        for i in range(count):
            if i:
                t += rng.expovariate(rate)
            times.append(t)
        return times
    if kind == "batches":
        return [(i // wave_size) * wave_every for i in range(count)]
    raise ValueError(f"unknown arrival {kind!r}")


def plan_class(
    kind: str,
    count: int,
    session: Span,
    seed: int,
    *,
    rate: float = 1.0,
    period: float = 0.0,
    wave_size: int = 1,
    wave_every: float = 0.0,
) -> list[Student]:
    rng = random.Random(seed)
    times = arrival_times(
        kind, count, rng, rate=rate, period=period, wave_size=wave_size, wave_every=wave_every
    )
    return [
        Student(i, t, rng.uniform(session.lo, session.hi), rng.getrandbits(32)) for i, t in enumerate(times)
    ]
