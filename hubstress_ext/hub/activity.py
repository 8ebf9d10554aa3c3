"""activity-stress-test: N workers post user activity while a probe times ``GET /users/{name}``.

This is the load a hub sees from many running servers reporting activity; the probe shows
what it does to the API latency everyone else experiences.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import pandas as pd

from hubstress_ext.errors import RunError
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.options import ActivityOptions
from hubstress_ext.hub.scenario import UserScenario
from hubstress_ext.results import charts


class ActivityStressRun(UserScenario):
    """post user activity from N workers, probe API latency"""

    scenario = "activity-stress-test"
    options_type = ActivityOptions
    options: ActivityOptions

    async def load(self, api: HubAPI) -> None:
        opts = self.options
        await self.create_users(api)
        if not self.created:
            raise RunError("no users could be created")
        total = opts.requests
        if api.client.dry_run:  # the plan: one activity post per user, one probe
            total = min(total or len(self.created), len(self.created))
        self.progress.begin("activity", total or 0)
        next_user = itertools.cycle(self.created)
        sent = itertools.count()
        loop = asyncio.get_running_loop()
        until = loop.time() + opts.duration if opts.duration else float("inf")
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set() and loop.time() < until and api.client.deadline.remaining() > 0:
                if total is not None and next(sent) >= total:
                    break
                resp = await api.post_activity(next(next_user))
                self.progress.advance("activity", failed=not resp.ok)

        async def probe() -> None:
            rng = random.Random(0)
            while not stop.is_set():
                await api.get_user(rng.choice(self.created), op="probe")
                if api.client.dry_run:
                    return
                await asyncio.sleep(opts.probe_interval)

        probe_task = asyncio.ensure_future(probe())
        try:
            await asyncio.gather(*(worker() for _ in range(opts.workers)))
        finally:
            stop.set()
            probe_task.cancel()
            await asyncio.gather(probe_task, return_exceptions=True)

    def succeeded(self) -> bool:
        if self.options.dry_run:
            return True
        summary = self.summary()
        return "activity" in summary.index and summary.loc["activity", "errors"] == 0

    def chart_data(self) -> pd.DataFrame:
        df = self.df
        return df[df["op"].isin(["probe", "activity"])][["op", "start", "latency_ms"]]

    figure = staticmethod(charts.activity_figure)
