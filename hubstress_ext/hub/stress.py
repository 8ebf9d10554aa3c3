"""stress-test: a spawn storm. Create users, start servers batch-size at a time, time each to ready.

Readiness comes from the hub itself: a ``201`` from the spawn request means ready on return;
a ``202`` is followed on the server's progress event stream, whose final event arrives the
moment the hub marks the server ready (or failed, with the spawner's message). No per-user
polling, so latency resolution is the network's, not a poll interval's.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pandas as pd

from hubstress_ext.engine.options import StressOptions
from hubstress_ext.http.client import StreamError
from hubstress_ext.hub import report
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.scenario import UserScenario
from hubstress_ext.hub.teardown import stop_servers
from hubstress_ext.results import charts
from hubstress_ext.results.phases import failures_by_reason, phase_table, spawn_latency_ms

log = logging.getLogger("hubstress")


class StressTestRun(UserScenario):
    """create users, spawn their servers, time each to ready"""

    scenario = "stress-test"
    options_type = StressOptions
    options: StressOptions

    async def load(self, api: HubAPI) -> None:
        await self.create_users(api)
        await self.spawn_all(api, self.created)

    async def spawn_all(self, api: HubAPI, names: list[str]) -> None:
        opts = self.options
        self.progress.begin("ready", len(names))
        slots = asyncio.Semaphore(opts.batch_size)
        t0 = asyncio.get_running_loop().time()
        interval = opts.ramp / len(names) if names and opts.ramp else 0.0

        async def one(index: int, name: str) -> None:
            if interval:
                delay = t0 + index * interval - asyncio.get_running_loop().time()
                if delay > 0:
                    await asyncio.sleep(delay)
            async with slots:  # at most batch_size spawn requests in flight, as in the original
                resp = await self.request_spawn(api, name)
            await self.await_ready(api, name, resp)

        await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))

    async def request_spawn(self, api: HubAPI, name: str):
        row = self.users[name]
        row.spawn_requested = time.time()
        resp = await api.start_server(name, self.options.server_name, self.options.spawn_options())
        row.spawn_attempts = resp.attempts
        return resp

    async def await_ready(self, api: HubAPI, name: str, resp) -> None:
        row = self.users[name]
        if resp.status == 201:
            row.ready = time.time()
        elif resp.status == 202:
            reason = await self._follow_progress(api, name)
            if reason is None:
                row.ready = time.time()
            else:
                row.failed, row.reason = time.time(), reason
        elif resp.status == 400 and b"already" in resp.body.lower():
            row.ready = time.time()  # already running (e.g. --keep from an earlier run)
        else:
            row.failed = time.time()
            row.reason = await self._failure_reason(api, name, resp)
        self.progress.advance("ready", failed=row.ready is None)

    async def _failure_reason(self, api: HubAPI, name: str, resp) -> str:
        """The spawner's own message for a failed spawn request.

        A spawn that fails within ``slow_spawn_timeout`` is answered with a bare 500, but the
        progress stream of that server still reports the spawner's exception.
        """
        fallback = f"spawn request failed: {resp.reason()}"
        if resp.status is None or resp.status < 500:
            return fallback
        try:
            async for event in api.progress(name, self.options.server_name, 10.0):
                if event.get("failed"):
                    return event.get("message") or fallback
        except StreamError:
            pass
        return fallback

    async def _follow_progress(self, api: HubAPI, name: str) -> str | None:
        """None when the server became ready, else the failure reason.

        A stream cut by a 5xx or a dropped connection is re-subscribed (the hub answers a
        re-subscription at once if the spawn finished meanwhile), with the same backoff and
        retry budget as any request.
        """
        opts = self.options
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

    async def teardown(self, api: HubAPI) -> None:
        opts = self.options
        running = [n for n in self.created if self.users[n].spawn_requested is not None]
        if running:
            await stop_servers(
                api,
                running,
                opts.batch_size,
                self.users,
                self.progress,
                opts.stop_timeout,
                opts.server_name,
            )
        await super().teardown(api)

    def succeeded(self) -> bool:
        rows = [self.users[n] for n in self.created]
        return len(rows) == self.options.count and all(r.ready is not None for r in rows)

    # -- reporting --------------------------------------------------------------------------

    def phases(self) -> pd.DataFrame:
        return phase_table(self.df, self.users_df)

    def summary(self) -> pd.DataFrame:
        return self.phases()

    def failures(self) -> pd.DataFrame:
        return failures_by_reason(self.users_df)

    def spawn_latency(self) -> dict[str, float]:
        return spawn_latency_ms(self.users_df)

    def report_extra(self) -> list[str]:
        return report.spawn_lines(self.users_df)

    def chart_data(self) -> pd.DataFrame:
        return self.users_df

    figure = staticmethod(charts.spawn_storm_figure)

    @classmethod
    def saved_summary(cls, saved) -> pd.DataFrame:  # noqa: ANN001 - a SavedRun
        if saved.users_df.empty:
            return super().saved_summary(saved)
        return phase_table(saved.df, saved.users_df)

    @classmethod
    def saved_report(cls, saved) -> str:  # noqa: ANN001
        return super().saved_report(saved) + "\n".join(["", *report.spawn_lines(saved.users_df)])
