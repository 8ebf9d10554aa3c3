"""Starting one user's server and knowing when it is ready (or why it failed).

Readiness comes from the hub itself: a ``201`` from the spawn request means ready on return;
a ``202`` is followed on the server's progress event stream, whose final event arrives the
moment the hub marks the server ready (or failed, with the spawner's message). No per-user
polling, so latency resolution is the network's, not a poll interval's.
"""

from __future__ import annotations

import asyncio
import time

from hubstress_ext.http.client import Response, StreamError
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.causes import cause_of_answer, cause_of_message
from hubstress_ext.hub.options import ServerOptions
from hubstress_ext.results.lifecycle import LifecycleTable


class ServerStarter:
    """Spawn requests and their outcome, written into the users' lifecycle rows."""

    def __init__(self, api: HubAPI, users: LifecycleTable, options: ServerOptions) -> None:
        self.api = api
        self.users = users
        self.options = options

    async def request(self, name: str) -> Response:
        row = self.users[name]
        row.spawn_requested = time.time()
        resp = await self.api.start_server(name, self.options.server_name, self.options.spawn_options())
        row.spawn_attempts = resp.attempts
        return resp

    async def await_ready(self, name: str, resp: Response) -> bool:
        """True when the server is ready; else the row has ``failed`` and a ``reason``."""
        row = self.users[name]
        if resp.status == 201:
            row.ready = time.time()
        elif resp.status == 202:
            reason = await self._follow_progress(name)
            if reason is None:
                row.ready = time.time()
            else:
                row.failed, row.reason = time.time(), reason
                row.cause = cause_of_message(reason)
        elif resp.status == 400 and b"already" in resp.body.lower():
            row.ready = time.time()  # already running (e.g. --keep from an earlier run)
        else:
            row.failed = time.time()
            message = await self._spawner_message(name, resp)
            if message:  # the spawner said why (e.g. a timeout)
                row.reason, row.cause = message, cause_of_message(message)
            else:
                row.reason, row.cause = f"spawn request failed: {resp.reason()}", cause_of_answer(resp)
        return row.ready is not None

    async def start(self, name: str) -> bool:
        return await self.await_ready(name, await self.request(name))

    async def _spawner_message(self, name: str, resp: Response) -> str | None:
        """The spawner's own message for a spawn request that failed with a 5xx, if it gave one.

        A spawn that fails within ``slow_spawn_timeout`` is answered with a bare 500, but the
        progress stream of that server still reports the spawner's exception.
        """
        if resp.status is None or resp.status < 500:
            return None
        try:
            async for event in self.api.progress(name, self.options.server_name, 10.0):
                if event.get("failed"):
                    return event.get("message") or None
        except StreamError:
            pass
        return None

    async def _follow_progress(self, name: str) -> str | None:
        """None when the server became ready, else the failure reason.

        A stream cut by a 5xx or a dropped connection is re-subscribed (the hub answers a
        re-subscription at once if the spawn finished meanwhile), with the same backoff and
        retry budget as any request.
        """
        opts = self.options
        api = self.api
        loop = asyncio.get_running_loop()
        give_up = loop.time() + opts.spawn_timeout
        problem = "progress stream ended without a final event"
        for attempt in range(opts.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(api.client.retry.backoff * 2 ** (attempt - 1), 10.0))
            remaining = give_up - loop.time()
            if remaining <= 0:
                break
            try:
                async for event in api.progress(name, opts.server_name, remaining):
                    if event.get("ready"):
                        return None
                    if event.get("failed"):
                        return event.get("message") or "spawn failed"
            except StreamError as exc:
                problem = f"progress stream: {exc}"
                if not exc.retryable:
                    break
        return problem
