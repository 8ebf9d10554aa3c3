"""Retry policy: which outcomes are retried, and how long to wait before the next attempt.

Backoff is exponential with jitter (like urllib3's ``backoff_factor=0.5`` in the original
script) but a server's ``Retry-After`` always wins, and no wait ever runs past the run's
deadline, so a run under a throttling hub still ends on time.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

from tenacity import wait_exponential, wait_random
from tenacity.wait import wait_base

RETRY_STATUSES = frozenset({429, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff: float = 0.5
    max_backoff: float = 10.0
    statuses: frozenset[int] = RETRY_STATUSES

    def backoff_wait(self) -> wait_base:
        """backoff * 2^(n-1), capped, plus up to ``backoff`` of jitter so retries spread out."""
        return wait_exponential(multiplier=self.backoff, max=self.max_backoff) + wait_random(0, self.backoff)


class Deadline:
    """A point in monotonic time after which a run sends nothing new."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._at = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float:
        return float("inf") if self._at is None else self._at - time.monotonic()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
