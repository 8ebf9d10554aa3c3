"""stress-test: a spawn storm. Create users, start servers batch-size at a time, time each to ready
(readiness as :mod:`hubstress_ext.hub.spawn` knows it: from the hub's own progress events)."""

from __future__ import annotations

import asyncio
import logging

import pandas as pd

from hubstress_ext.engine.record import RunRecord
from hubstress_ext.hub import report
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.options import StressOptions
from hubstress_ext.hub.scenario import UserScenario
from hubstress_ext.hub.spawn import ServerStarter
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
        await self.load_users(api, self.created)

    async def work(self, api: HubAPI, names: list[str], indices: list[int], t0: float | None) -> None:
        """Start the servers of ``names``; with --ramp, user ``i`` of ``count`` starts at i*ramp/count."""
        opts = self.options
        self.progress.begin("ready", len(names))
        slots = asyncio.Semaphore(opts.batch_size)
        t0 = asyncio.get_running_loop().time() if t0 is None else t0
        interval = opts.ramp / opts.count if opts.ramp else 0.0
        starter = ServerStarter(api, self.users, opts)

        async def one(index: int, name: str) -> None:
            if interval:
                delay = t0 + index * interval - asyncio.get_running_loop().time()
                if delay > 0:
                    await asyncio.sleep(delay)
            async with slots:  # at most batch_size spawn requests in flight, as in the original
                resp = await starter.request(name)
            ok = await starter.await_ready(name, resp)
            self.progress.advance("ready", failed=not ok)

        await asyncio.gather(*(one(i, n) for i, n in zip(indices, names, strict=True)))

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

    def failure_rate(self) -> float | None:
        """Users whose server never became ready, of those asked for."""
        ready = sum(self.users[n].ready is not None for n in self.created)
        return (self.options.count - ready) / self.options.count

    def succeeded(self) -> bool:
        rows = [self.users[n] for n in self.created]
        return len(rows) == self.options.count and all(r.ready is not None for r in rows)

    # -- reporting --------------------------------------------------------------------------

    def phases(self) -> pd.DataFrame:
        return phase_table(self.df, self.users_df)

    def failures(self) -> pd.DataFrame:
        return failures_by_reason(self.users_df)

    def spawn_latency(self) -> dict[str, float]:
        return spawn_latency_ms(self.users_df)

    def chart_data(self) -> dict[str, pd.DataFrame]:
        return {"users": self.users_df, "resources": self.resources_df}

    figure = staticmethod(charts.spawn_storm_figure)

    @classmethod
    def summary_of(cls, record: RunRecord) -> pd.DataFrame:
        """Each phase of the storm (create, spawn, ready, stop, delete): count, errors, latency."""
        if record.frame("users").empty:
            return super().summary_of(record)
        return phase_table(record.frame("records"), record.frame("users"))

    @classmethod
    def extra_lines(cls, record: RunRecord) -> list[str]:
        return report.spawn_lines(record.frame("users"))
