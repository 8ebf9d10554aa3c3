"""Run: the object every front end drives (CLI, magics, panel, notebooks).

A run has a *load* stage (sending the scenario's traffic) and a *teardown* stage (removing
what it created). ``request_stop()`` once cancels the load and lets teardown run; twice, it
cancels teardown too and leaves the marker group for ``purge``. Both stages are bounded by
deadlines, so a run never hangs on a dead hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from hubstress_ext.engine.options import HubOptions
from hubstress_ext.engine.progress import Progress
from hubstress_ext.http.client import HttpClient
from hubstress_ext.http.retry import Deadline, RetryPolicy
from hubstress_ext.hub.api import HubAPI, HubError
from hubstress_ext.results.lifecycle import LifecycleTable
from hubstress_ext.results.records import RecordSink
from hubstress_ext.results.summary import summarize

log = logging.getLogger("hubstress")


class Run:
    """Base class of hub scenarios; subclasses implement ``load`` and ``teardown``."""

    scenario: ClassVar[str] = "run"

    def __init__(self, options: HubOptions) -> None:
        self.options = options
        self.sink = RecordSink()
        self.users = LifecycleTable()
        self.progress = Progress()
        self.status = "created"
        self.error: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.meta: dict[str, Any] = {}
        self.saved_to: Path | None = None
        self.sandbox: Any = None  # the Sandbox, while a --sandbox run is live
        self._loop: asyncio.AbstractEventLoop | None = None
        self._load_task: asyncio.Task | None = None
        self._teardown_task: asyncio.Task | None = None
        self._stops = 0
        self._done = threading.Event()

    # -- what a scenario implements --------------------------------------------------------

    async def load(self, api: HubAPI) -> None:
        raise NotImplementedError

    async def teardown(self, api: HubAPI) -> None:
        """Remove what the run created (skipped by the base class when ``keep`` is set)."""

    def succeeded(self) -> bool:
        return self.status == "finished"

    # -- running ---------------------------------------------------------------------------

    def execute(self) -> Run:
        """Run to completion in a fresh event loop (blocking)."""
        asyncio.run(self.run_async())
        return self

    async def run_async(self) -> Run:
        self._loop = asyncio.get_running_loop()
        self.status = "running"
        self.started_at = time.time()
        try:
            async with self._target() as (endpoint, token):
                await self._run_against(endpoint, token)
        except HubError as exc:
            self.status, self.error = "failed", str(exc)
        except Exception as exc:  # keep the run object usable; the front end shows the error
            log.debug("run failed", exc_info=True)
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.finished_at = time.time()
            self._done.set()
        return self

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

    def request_stop(self) -> None:
        """First call: stop sending and tear down. Second call: abandon teardown too.

        Safe to call from any thread (a notebook's Stop button, a signal handler).
        """
        loop = self._loop
        if loop is None or self._done.is_set():
            return
        loop.call_soon_threadsafe(self._stop_in_loop)

    def _stop_in_loop(self) -> None:
        self._stops += 1
        if self._stops == 1 and self._load_task and not self._load_task.done():
            self._load_task.cancel()
        elif self._stops >= 2 and self._teardown_task and not self._teardown_task.done():
            self._teardown_task.cancel()
        elif self._stops >= 2 and self._load_task and not self._load_task.done():
            self._load_task.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

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
    def exit_code(self) -> int:
        if self.status == "finished" and self.succeeded():
            return 0
        if self.status in ("interrupted", "aborted"):
            return 130
        return 1

    def save(self, directory: str | Path) -> Path:
        from hubstress_ext.results.store import save_run

        self.saved_to = save_run(self, directory)
        return self.saved_to
