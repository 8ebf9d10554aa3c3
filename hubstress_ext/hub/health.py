"""Noticing that the hub went away mid-run.

Without this, a run against a hub that died keeps retrying every request with backoff (the
proxy answers 503 for a dead hub; a hub without a proxy refuses connections) and ends minutes
later with every user "failed: HTTP 503" and no word about why. The watch sees every request
attempt; after a few consecutive failures that look like a missing hub (connection refused or
reset, 502/503 from the proxy), it asks the hub's own ``/hub/health`` once, with a short limit.
If that fails too, the hub is declared down: the client stops sending (requests fail at once,
unsent) and the run is told, so it can end with one line naming when the hub went away.

A load can also go quiet on the hub's API for minutes (a class in session talks to the
single-user servers through the proxy, which outlives a dead hub): such a run also keeps a
heartbeat, one ``/hub/health`` probe every few seconds, that declares the hub down the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hubstress_ext.http.client import HttpClient
from hubstress_ext.http.records import Record

log = logging.getLogger("hubstress")

SUSPECT_STREAK = 4  # consecutive hub-is-gone-looking failures before asking /hub/health
PROBE_TIMEOUT = 2.0
PROBE_QUIET_S = 2.0  # after a healthy probe, wait this long before probing again
GONE_STATUSES = frozenset({502, 503})


def looks_gone(record: Record) -> bool:
    """A failure a dead hub produces: no connection, a dropped one, or the proxy's 502/503."""
    if record.error is not None:
        return not record.error.startswith("timeout")  # a slow hub is slow, not gone
    return record.status in GONE_STATUSES


class HubWatch:
    def __init__(self, client: HttpClient, health_url: str, on_down: Callable[[], None]) -> None:
        self.client = client
        self.health_url = health_url
        self.on_down = on_down
        self.streak = 0
        self.first_failure: float | None = None  # wall time of the first failure in the streak
        self.last_failure = ""
        self.down_at: float | None = None
        self.reason: str | None = None
        self._probe: asyncio.Task | None = None
        self._quiet_until = 0.0

    def attach(self) -> HubWatch:
        self.client.observer = self.observe
        return self

    @property
    def down(self) -> bool:
        """The hub was found down during the run (even if it came back for teardown)."""
        return self.down_at is not None

    @property
    def tripped(self) -> bool:
        """Sending is suspended: the client fails requests at once."""
        return self.client.unreachable is not None

    def observe(self, record: Record) -> None:
        if self.tripped:
            return
        if not looks_gone(record):
            if record.status is not None:  # the hub (not just the proxy) answered
                self.streak, self.first_failure = 0, None
            return
        self.streak += 1
        self.first_failure = self.first_failure or record.start
        self.last_failure = record.error or f"HTTP {record.status}"
        if self.streak >= SUSPECT_STREAK and self._probe is None and time.monotonic() >= self._quiet_until:
            self._probe = asyncio.ensure_future(self._confirm())

    async def _confirm(self) -> None:
        try:
            resp = await self.client.probe("health", self.health_url, PROBE_TIMEOUT)
        finally:
            self._probe = None
        if resp.status == 200:  # alive after all (e.g. one server's proxy route failing)
            self.streak, self.first_failure = 0, None
            self._quiet_until = time.monotonic() + PROBE_QUIET_S
            return
        self.down_at = self.down_at or self.first_failure or time.time()
        health = resp.error or f"HTTP {resp.status}"
        self.reason = (
            f"{self.last_failure} x{self.streak}, /hub/health: {health}"
            if self.streak
            else f"/hub/health: {health}"
        )
        self.client.unreachable = "hub unreachable"
        log.warning("the hub looks down (%s); stopping the load", self.reason)
        self.on_down()

    async def heartbeat(self, interval: float) -> None:
        """Probe ``/hub/health`` every ``interval`` seconds until the hub is found down."""
        while not self.tripped:
            await asyncio.sleep(interval)
            if self._probe is None and not self.tripped:
                self._probe = asyncio.ensure_future(self._confirm())
                await asyncio.shield(self._probe)

    async def recheck(self) -> bool:
        """One more look before teardown: True (and sending resumes) if the hub is back."""
        resp = await self.client.probe("health", self.health_url, PROBE_TIMEOUT)
        if resp.status != 200:
            return False
        self.client.unreachable = None
        self.streak, self.first_failure = 0, None
        return True

    def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
