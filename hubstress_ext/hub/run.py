"""HubRun: a run against a JupyterHub (or the sandbox hub started for it).

A run goes through phases: *starting* (the sandbox, if any, and the pre-flight), *load* (the
scenario's traffic), *teardown* (removing what it created) and *closing* (the sandbox going
away). What a stop does is the same in every phase, whether it comes from Ctrl-C or
``run.stop()`` in a notebook:

- once: nothing new is sent; what the run created is torn down (bounded in time); exit 130.
- twice: the run ends at once (exit 130) and sends nothing more; every user it created is in
  the marker group, so ``hubstress purge`` removes what is left.

A hub that dies mid-run is noticed (:mod:`hubstress_ext.hub.health`): the load stops, teardown
gets one short try, and the run fails with one line saying when the hub became unreachable and
how many users are left for ``purge``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pandas as pd

from hubstress_ext.cluster.coordinator import degraded
from hubstress_ext.engine.record import RunRecord
from hubstress_ext.engine.run import Run, verdict_lines
from hubstress_ext.http.client import HttpClient
from hubstress_ext.http.records import RecordSink
from hubstress_ext.http.retry import Deadline, RetryPolicy
from hubstress_ext.hub import report
from hubstress_ext.hub.api import MARKER_GROUP, HubAPI
from hubstress_ext.hub.health import HubWatch
from hubstress_ext.hub.metrics import METRICS_COLUMNS, MetricsScraper
from hubstress_ext.hub.options import HubOptions, SandboxOptions
from hubstress_ext.hub.plan import plan_reads, plan_responder
from hubstress_ext.results.bottleneck import bottleneck
from hubstress_ext.results.hub_figures import HubFigures, comparison_table, hub_figures
from hubstress_ext.results.lifecycle import LifecycleTable
from hubstress_ext.results.resources import resource_summary
from hubstress_ext.results.summary import shard_lines as summary_shard_lines

log = logging.getLogger("hubstress")

STOPPED_TEARDOWN_S = 120.0  # after a stop, teardown gets at most this long
DEAD_HUB_TEARDOWN_S = 15.0  # the one short try at teardown after the hub was found down
ABANDON_SETTLE_S = 3.0  # on a second stop, how long a create request already sent may finish


class HubRun(Run):
    """Base class of hub scenarios; subclasses implement ``load`` and ``teardown``."""

    options: HubOptions
    options_type = HubOptions
    cleans_up = True
    # the hub's metrics need read:metrics; the processes, a sandbox: rules on them may be skipped
    optional_figures = ("hub.", "proxy.", "servers.")
    accounts_hub = False  # read the hub's metrics before and after, report them, name the limit
    heartbeat_s = 0.0  # > 0: probe /hub/health this often (a load that goes quiet on the hub's API)

    def __init__(self, options: HubOptions) -> None:
        super().__init__(options)
        self.sink = RecordSink()
        self.users = LifecycleTable()
        self._sandbox: Any = None  # the Sandbox, while a --sandbox run is live
        self._adopted: Any = None  # a Sandbox shared by a run made of runs (``adopt``)
        self.phase = "created"
        self.scraper: MetricsScraper | None = None
        self.watch: HubWatch | None = None
        self._phase_task: asyncio.Task | None = None
        self._client: HttpClient | None = None
        self.sampler: Any = None  # the sandbox's ResourceSampler, in a --sandbox run
        self.coordinator: Any = None  # a --dask run's shards, while they run (``hub.sharding``)
        self.shard_records: pd.DataFrame | None = None  # what the shards sent (--dask)
        self.shards: pd.DataFrame | None = None  # one row per shard (--dask)

    @property
    def target_is_throwaway(self) -> bool:
        return bool(self.options.sandbox)

    @property
    def keep(self) -> bool:
        """Leave what the run created (``UserScenario``: its ``keep`` option; purge keeps nothing)."""
        return False

    @property
    def scrape_every(self) -> float:
        """Seconds between scrapes of the hub's metrics; 0 = off (``UserScenario``: its option)."""
        return 0.0

    # -- what a scenario implements --------------------------------------------------------

    async def preflight(self, api: HubAPI) -> None:
        """Checks that fail the run before it sends any load (a scope, a kernel it needs)."""

    async def load(self, api: HubAPI) -> None:
        raise NotImplementedError

    async def teardown(self, api: HubAPI) -> None:
        """Remove what the run created (skipped when ``keep`` is set)."""

    async def settle(self) -> None:
        """Wait (bounded) for requests that create things, so teardown knows all it made."""

    def left_on_hub(self) -> list[str]:
        """Users this run created that are still on the hub."""
        return []

    # -- running ---------------------------------------------------------------------------

    async def main(self) -> None:
        self.phase = "starting"
        self.meta["load_sent"] = False
        self._phase_task = asyncio.current_task()
        try:
            async with self._target() as (endpoint, token):
                await self._run_against(endpoint, token)
        except asyncio.CancelledError:
            if not self._stops:
                raise
            self._set_stopped_status()
        finally:
            self.phase = "done"
            self._finish_report()

    async def _run_against(self, endpoint: str, token: str | None) -> None:
        opts = self.options
        client = HttpClient(
            endpoint,
            token,
            self.sink,
            request_timeout=opts.request_timeout,
            retry=RetryPolicy(max_attempts=opts.max_retries + 1),
            deadline=Deadline(opts.run_timeout),
            dry_run=self.dry_run_responder() if opts.dry_run else None,
            plan_printer=self.print_plan,
            read_through=plan_reads if opts.token else None,  # a dry run reads the hub, never writes
        )
        self.meta["endpoint"] = endpoint
        self._client = client
        async with client:
            api = HubAPI(client)
            if not opts.dry_run:
                self.meta["hub_version"] = await api.check_access()
                self.watch = HubWatch(client, api.health_url, self._on_hub_down).attach()
            background = []
            if (self.accounts_hub or self.scrape_every > 0) and not opts.dry_run:
                self.scraper = MetricsScraper(api, self.scrape_every)
                await self.scraper.scrape_once()  # the baseline: the hub before the load
                if self.scrape_every > 0:
                    background.append(asyncio.ensure_future(self.scraper.run()))
            if self.heartbeat_s and self.watch is not None:
                background.append(asyncio.ensure_future(self.watch.heartbeat(self.heartbeat_s)))
            if self._sandbox is not None and not opts.dry_run:
                from hubstress_ext.sandbox.resources import ResourceSampler

                self.sampler = ResourceSampler(self._sandbox)
                background.append(asyncio.ensure_future(self.sampler.run()))
            try:
                if opts.dry_run:
                    await self._load_and_teardown(api, client)
                else:
                    async with self.shard_cluster():
                        await self._load_and_teardown(api, client)
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                if self.sampler is not None:
                    await asyncio.to_thread(self.sampler.sample)  # the last interval, to the end
                if self.scraper is not None and self.scraper.error:
                    self.meta["metrics_error"] = self.scraper.error
                if self.watch is not None:
                    self.watch.close()

    async def _load_and_teardown(self, api: HubAPI, client: HttpClient) -> None:
        """Load, then (unless kept or abandoned) tear down with a fresh, bounded deadline."""
        opts = self.options
        if self._stops:  # stopped while starting: nothing was created, nothing to send
            self._set_stopped_status()
            return
        await self.preflight(api)
        self.meta["load_sent"] = True  # from here on, the hub may have seen load from this run
        if await self._phase("load", self.load(api)):
            self.status = "degraded" if degraded(self.shards) else "finished"
            if self.scraper is not None:
                await self.scraper.scrape_once()  # the hub's figures after everything the load did
        if self._hub_is_down:
            await self._teardown_after_dead_hub(api, client)
            return
        if self._stops:
            self._set_stopped_status()
        if self._stops < 2:
            await self.settle()
            if not self.keep:
                limit = opts.run_timeout if not self._stops else min(opts.run_timeout, STOPPED_TEARDOWN_S)
                client.deadline = Deadline(limit)  # teardown gets a fresh, bounded budget
                await self._phase("teardown", self.teardown(api))
            if self._hub_is_down:
                self._fail_hub_down()
                return
            if self._stops:
                self._set_stopped_status()
        if self._stops > 1:  # abandoned (now or during teardown)
            await self.settle_briefly()

    async def _phase(self, name: str, work: Awaitable[None]) -> bool:
        """Run one phase as its own task (a stop cancels it); True if it ran to the end."""
        self.phase = name
        self._phase_task = asyncio.ensure_future(work)
        try:
            await self._phase_task
            return True
        except asyncio.CancelledError:
            if not (self._stops or self._hub_is_down):
                raise
            return False

    async def _teardown_after_dead_hub(self, api: HubAPI, client: HttpClient) -> None:
        """One short try: if the hub is back, remove what we can in a few seconds; then fail."""
        assert self.watch is not None
        await self.settle()
        if not self.keep and await self.watch.recheck():
            client.deadline = Deadline(DEAD_HUB_TEARDOWN_S)
            client.retry = RetryPolicy(max_attempts=1)
            await self._phase("teardown", self.teardown(api))
        self._fail_hub_down()

    async def settle_briefly(self) -> None:
        """On a second stop: a create request already out gets a moment, so its users are tagged."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settle(), ABANDON_SETTLE_S)

    @property
    def _hub_is_down(self) -> bool:
        return self.watch is not None and self.watch.down

    def _on_hub_down(self) -> None:
        if self._phase_task is not None and not self._phase_task.done() and self.phase != "starting":
            self._phase_task.cancel()

    def _fail_hub_down(self) -> None:
        assert self.watch is not None and self.watch.down_at is not None
        when = dt.datetime.fromtimestamp(self.watch.down_at).strftime("%H:%M:%S")
        left = len(self.left_on_hub())
        self.status = "failed"
        self.meta["hub_down_at"] = self.watch.down_at
        self.error = (
            f"the hub became unreachable at {when} ({self.watch.reason}); "
            f"{left} user(s) left for `hubstress purge`"
        )

    def _set_stopped_status(self) -> None:
        self.status = "aborted" if self._stops > 1 else "interrupted"

    def _finish_report(self) -> None:
        left = self.left_on_hub()
        self.meta["left_on_hub"] = len(left)
        if left and not self.keep and not self.options.sandbox and self.status != "failed":
            self.meta["leftover_note"] = (
                f"{len(left)} user(s) left on the hub in the marker group {MARKER_GROUP!r}: "
                "`hubstress purge` removes them"
            )

    @contextlib.asynccontextmanager
    async def _target(self) -> AsyncIterator[tuple[str, str | None]]:
        opts = self.options
        if self._adopted is not None:  # a sandbox shared by a whole search: it outlives this run
            self._sandbox = self._adopted
            self.meta["sandbox"] = self._adopted.describe()
            yield self._adopted.api_url, self._adopted.token
            return
        if not opts.sandbox or opts.dry_run:
            yield opts.endpoint or "http://127.0.0.1:8000/hub/api", opts.token
            return
        sandbox = self._sandbox = sandbox_for(opts)
        async with sandbox:
            self.meta["sandbox"] = sandbox.describe()
            yield sandbox.api_url, sandbox.token
            self.phase = "closing"

    @classmethod
    @contextlib.asynccontextmanager
    async def shared_target(cls, options: HubOptions) -> AsyncIterator[Any]:
        """A ``--sandbox`` search starts its hub once; each probe adopts it (its users are
        deleted after each probe, so the next one starts from an empty hub)."""
        if not options.sandbox or options.dry_run:
            yield None
            return
        async with sandbox_for(options) as sandbox:
            yield sandbox

    def adopt(self, shared: Any) -> None:
        self._adopted = shared

    def bottleneck_line(self) -> str | None:
        if self.options.dry_run or not self.meta.get("load_sent"):
            return None
        return self.bottleneck()

    def on_stop(self) -> None:
        if self._stops >= 2 and self._sandbox is not None:
            self._sandbox.abort()  # a starting or stopping sandbox hub goes away without grace
        if self.phase == "teardown" and self._stops == 1:
            # already removing what exists: keep at it, but bounded, and report the stop
            if self._client is not None:
                remaining = self._client.deadline.remaining()
                self._client.deadline = Deadline(min(remaining, STOPPED_TEARDOWN_S))
            return
        if self.phase in ("starting", "load", "teardown"):
            task = self._phase_task
            if task is not None and not task.done():
                task.cancel()

    # -- dry run ----------------------------------------------------------------------------

    def print_plan(self, line: str) -> None:
        print(f"DRY-RUN {line}", flush=True)

    def dry_run_responder(self):
        return plan_responder

    # -- results ----------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """Every request attempt as a row (a --dask run: + ``shard``/``worker``; -1 = coordinator)."""
        own = self.sink.to_frame()
        if self.shard_records is None:
            return own
        own.insert(0, "worker", "coordinator")
        own.insert(0, "shard", -1)
        frames = [f for f in (own, self.shard_records) if not f.empty]
        if not frames:
            return own
        return pd.concat(frames, ignore_index=True).sort_values("start", kind="stable", ignore_index=True)

    @property
    def users_df(self) -> pd.DataFrame:
        return self.users.to_frame()

    @property
    def metrics_df(self) -> pd.DataFrame:
        """The hub's own /hub/metrics over the run (``--scrape-metrics``): time, metric, labels, value."""
        return self.scraper.to_frame() if self.scraper else pd.DataFrame(columns=METRICS_COLUMNS)

    @property
    def resources_df(self) -> pd.DataFrame:
        """CPU % and RSS of the sandbox's hub, proxy and servers, sampled every second."""
        if self.sampler is None:
            return pd.DataFrame(columns=["time", "role", "cpu_pct", "cpu_s", "rss_mb"])
        return self.sampler.to_frame()

    def hub_figures(self) -> HubFigures | None:
        """The hub's own account of the run (None without read:metrics or before it ran)."""
        return hub_figures(self.metrics_df)

    def hub_account(self) -> pd.DataFrame:
        """The hub's figures and hubstress's side by side (empty without read:metrics)."""
        figures = self.hub_figures()
        if figures is None:
            return pd.DataFrame(columns=["hub", "hubstress"])
        return comparison_table(figures, self.df, self.users_df)

    def resources(self) -> pd.DataFrame:
        return resource_summary(self.resources_df)

    def bottleneck(self) -> str:
        return bottleneck(report.evidence(**account_inputs(self.record())))

    def figures(self) -> dict[str, float]:
        return {**super().figures(), **hub_run_figures(self.hub_figures(), self.resources_df)}

    def frame_sources(self) -> dict[str, Callable[[], pd.DataFrame]]:
        out = {
            "records": lambda: self.df,
            "users": lambda: self.users_df,
            "metrics": lambda: self.metrics_df,
            "resources": lambda: self.resources_df,
        }
        if self.shards is not None:
            out["shards"] = lambda: self.shards
        return out

    def report_json(self) -> dict[str, Any]:
        out = super().report_json()
        if self.shards is not None:
            out["shard_table"] = self.shards.to_dict("records")
        return out

    def account_lines(self) -> list[str]:
        """The hub's figures beside ours, the sandbox's processes, and the bottleneck line."""
        return report.account_lines(**account_inputs(self.record()))

    # -- the report, live or saved (one path: ``engine.record``) -------------------------------

    @classmethod
    def report_of(cls, record: RunRecord) -> str:
        dry_run = bool(record.option("dry_run"))
        line = f"hubstress {record.scenario}: {record.status}"
        if record.meta.get("endpoint") and not dry_run:
            line += f" against {record.meta['endpoint']}"
        if record.meta.get("hub_version"):
            line += f" (JupyterHub {record.meta['hub_version']})"
        lines = ["", line]
        if record.ended and not dry_run and record.meta.get("load_sent") is False:
            lines += report.no_load_lines(record.error, record.status)
            return "\n".join(lines + verdict_lines(record))
        if record.error:
            lines.append(f"error: {record.error}")
        if dry_run:
            return "\n".join([*lines, "dry run: nothing was sent"])
        lines += report.tables(cls.summary_of(record)) + cls.extra_lines(record)
        if record.meta.get("leftover_note"):
            lines.append(record.meta["leftover_note"])
        elif record.option("keep") and not record.option("sandbox"):
            lines.append("users were left on the hub; `hubstress purge` removes them")
        shards = record.frame("shards")
        if not shards.empty:
            lines += shard_lines(record.meta.get("dask", {}).get("cluster", "Dask"), shards)
        if cls.accounts_hub:
            lines += report.account_lines(**account_inputs(record))
        return "\n".join(lines + verdict_lines(record))

    @classmethod
    def extra_lines(cls, record: RunRecord) -> list[str]:
        """Lines a scenario adds after its table."""
        return []


def account_inputs(record: RunRecord) -> dict[str, Any]:
    """What the hub's account and the bottleneck line are computed from."""
    return {
        "figures": hub_figures(record.frame("metrics")),
        "records": record.frame("records"),
        "users": record.frame("users"),
        "resources": record.frame("resources"),
        "meta": record.meta,
        "sessions": record.frames.get("sessions"),
    }


def shard_lines(cluster: str, shards: pd.DataFrame) -> list[str]:
    """The shards table, and a warning for each shard that said what went wrong."""
    warnings = [
        f"shard {row['shard']} ({row['worker']}) {row['status']}: {row['error']}"
        for row in shards.to_dict("records")
        if row["error"]
    ]
    return summary_shard_lines(cluster, shards, warnings)


def hub_run_figures(figures: HubFigures | None, resources: pd.DataFrame) -> dict[str, float]:
    """The ``hub.*``/``proxy.*``/``servers.*`` figures --slo rules can name."""
    out: dict[str, float] = {}
    if figures is not None:
        out.update(
            {
                "hub.spawn.p50": figures.spawn_p50_s,
                "hub.spawn.p90": figures.spawn_p90_s,
                "hub.event_loop.p99": figures.event_loop_p99_s,
                "hub.event_loop.max": figures.event_loop_max_s,
                "hub.proxy_add.p99": figures.proxy_add_p99_s,
                "hub.throttled": float(figures.throttled),
                "hub.full": float(figures.hub_full),
                "hub.running_servers.max": figures.running_servers_max,
            }
        )
    for role, row in resource_summary(resources).iterrows():
        out[f"{role}.cpu.mean"] = row["cpu_mean_pct"] / 100.0
        out[f"{role}.cpu.peak"] = row["cpu_peak_pct"] / 100.0
        out[f"{role}.rss_mb.peak"] = row["rss_peak_mb"]
        if "wait_mean_pct" in row:
            out[f"{role}.cpu.wait"] = row["wait_mean_pct"] / 100.0
    return out


def sandbox_for(options: SandboxOptions, **extra: Any) -> Any:
    """The sandbox hub ``options`` ask for (not started); ``extra``: the launcher's own
    settings (``hubstress sandbox --port``)."""
    from hubstress_ext.sandbox.hub import Sandbox

    return Sandbox(
        options.sandbox_spawner,
        concurrent_spawn_limit=options.sandbox_spawn_limit,
        active_server_limit=options.sandbox_active_limit,
        sim_exec_time=options.sim_exec_time,
        sim_delay=options.sim_start_time,
        **extra,
    )
