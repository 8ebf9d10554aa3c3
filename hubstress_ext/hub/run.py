"""HubRun: a run against a JupyterHub (or the sandbox hub started for it).

It has a *load* stage (sending the scenario's traffic) and a *teardown* stage (removing what
it created). ``request_stop()`` once cancels the load and lets teardown run; twice, it cancels
teardown too and leaves the marker group for ``purge``. Both stages are bounded by deadlines,
so a run never hangs on a dead hub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd

from hubstress_ext.engine.options import HubOptions
from hubstress_ext.engine.run import Run
from hubstress_ext.http.client import HttpClient
from hubstress_ext.http.retry import Deadline, RetryPolicy
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.metrics import METRICS_COLUMNS, MetricsScraper
from hubstress_ext.results.lifecycle import LifecycleTable
from hubstress_ext.results.records import RecordSink
from hubstress_ext.results.summary import summarize


class HubRun(Run):
    """Base class of hub scenarios; subclasses implement ``load`` and ``teardown``."""

    options: HubOptions

    def __init__(self, options: HubOptions) -> None:
        super().__init__(options)
        self.sink = RecordSink()
        self.users = LifecycleTable()
        self.sandbox: Any = None  # the Sandbox, while a --sandbox run is live
        self._load_task: asyncio.Task | None = None
        self._teardown_task: asyncio.Task | None = None
        self.scraper: MetricsScraper | None = None

    # -- what a scenario implements --------------------------------------------------------

    async def load(self, api: HubAPI) -> None:
        raise NotImplementedError

    async def teardown(self, api: HubAPI) -> None:
        """Remove what the run created (skipped when ``keep`` is set)."""

    # -- running ---------------------------------------------------------------------------

    async def main(self) -> None:
        async with self._target() as (endpoint, token):
            await self._run_against(endpoint, token)

    async def _run_against(self, endpoint: str, token: str | None) -> None:
        opts = self.options
        client = HttpClient(
            endpoint,
            token,
            self.sink,
            request_timeout=opts.request_timeout,
            retry=RetryPolicy(max_attempts=opts.max_retries + 1),
            deadline=Deadline(opts.timeout),
            dry_run=self.dry_run_responder() if opts.dry_run else None,
            plan_printer=self.print_plan,
        )
        self.meta["endpoint"] = endpoint
        async with client:
            api = HubAPI(client)
            if not opts.dry_run:
                self.meta["hub_version"] = await api.check_access()
            scraping = None
            if opts.scrape_metrics > 0 and not opts.dry_run:
                self.scraper = MetricsScraper(api, opts.scrape_metrics)
                scraping = asyncio.ensure_future(self.scraper.run())
            try:
                await self._load_and_teardown(api, client)
            finally:
                if scraping is not None:
                    scraping.cancel()
                    await asyncio.gather(scraping, return_exceptions=True)
                    if self.scraper.error:
                        self.meta["metrics_error"] = self.scraper.error

    async def _load_and_teardown(self, api: HubAPI, client: HttpClient) -> None:
        """Load, then (unless kept or abandoned) tear down with a fresh deadline."""
        opts = self.options
        self._load_task = asyncio.ensure_future(self.load(api))
        try:
            await self._load_task
            self.status = "finished"
        except asyncio.CancelledError:
            if self._stops == 0:
                raise
            self.status = "interrupted"
        if opts.keep or self._stops > 1:
            return
        client.deadline = Deadline(opts.timeout)  # teardown gets a fresh, bounded budget
        self._teardown_task = asyncio.ensure_future(self.teardown(api))
        try:
            await self._teardown_task
        except asyncio.CancelledError:
            if self._stops < 2:
                raise
            self.status = "aborted"

    @contextlib.asynccontextmanager
    async def _target(self) -> AsyncIterator[tuple[str, str | None]]:
        opts = self.options
        if not opts.sandbox or opts.dry_run:
            yield opts.endpoint or "http://127.0.0.1:8000/hub/api", opts.token
            return
        from hubstress_ext.sandbox.hub import Sandbox

        sandbox = Sandbox(opts.sandbox_spawner, concurrent_spawn_limit=opts.sandbox_spawn_limit)
        async with sandbox:
            self.meta["sandbox"] = sandbox.describe()
            self.sandbox = sandbox
            yield sandbox.api_url, sandbox.token

    def on_stop(self) -> None:
        if self._stops == 1 and self._load_task and not self._load_task.done():
            self._load_task.cancel()
        elif self._stops >= 2 and self._teardown_task and not self._teardown_task.done():
            self._teardown_task.cancel()
        elif self._stops >= 2 and self._load_task and not self._load_task.done():
            self._load_task.cancel()

    # -- dry run ----------------------------------------------------------------------------

    def print_plan(self, line: str) -> None:
        print(f"DRY-RUN {line}", flush=True)

    def dry_run_responder(self):
        from hubstress_ext.hub.plan import plan_responder

        return plan_responder

    # -- results ----------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """Every request attempt as a row."""
        return self.sink.to_frame()

    @property
    def users_df(self) -> pd.DataFrame:
        return self.users.to_frame()

    def summary(self) -> pd.DataFrame:
        return summarize(self.df)

    @property
    def metrics_df(self) -> pd.DataFrame:
        """The hub's own /hub/metrics over the run (``--scrape-metrics``): time, metric, labels, value."""
        return self.scraper.to_frame() if self.scraper else pd.DataFrame(columns=METRICS_COLUMNS)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"records": self.df, "users": self.users_df, "metrics": self.metrics_df}
