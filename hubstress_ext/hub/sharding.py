"""Hub scenarios over Dask: the coordinator creates and removes the users, shards load them.

The run on the coordinator creates every user (so one process knows all it made and tears
it all down, even after a lost shard), then gives each shard a disjoint slice of them
(user ``k`` goes to shard ``k mod N``, with its place in the plan, so a ramp or a class's
arrivals keep their shape). Each shard runs the scenario's own per-user work
(``UserScenario.work``) with the scenario's class on its worker, against the same hub, and
streams its records, its users' lifecycle rows and (session-test) its session rows back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from hubstress_ext.cluster.coordinator import Coordinator, ShardState
from hubstress_ext.cluster.merge import merge, shift
from hubstress_ext.cluster.shard import share
from hubstress_ext.engine import registry
from hubstress_ext.engine.shard_job import OptionsShardJob
from hubstress_ext.http.client import HttpClient
from hubstress_ext.http.records import records_to_frame
from hubstress_ext.http.retry import Deadline, RetryPolicy
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.results.lifecycle import LIFECYCLE_COLUMNS, lifecycle_frame
from hubstress_ext.results.sessions import SESSION_COLUMNS, SessionRow


class ShardedRun(Protocol):
    """What the coordinator reads and writes of the run it shards (``hub.scenario.UserScenario``,
    which imports this module: declared here, not imported, so the two are no circle)."""

    scenario: str
    options: Any
    cluster: Any
    coordinator: Any
    meta: dict[str, Any]
    progress: Any
    sink: Any
    users: Any
    sessions: Any
    shards: pd.DataFrame | None
    shard_records: pd.DataFrame | None
    shard_phase: str

    async def work(self, api: HubAPI, names: list[str], indices: list[int], t0: float | None) -> None: ...
    async def shard_cleanup(self) -> None: ...
    def shard_counts(self) -> tuple[int, int]: ...


CLEANUP_S = 30.0  # after a stop, a shard's own cleanup (closing kernels) gets this long
RECORD_TIMES = ("start", "end")
USER_TIMES = ("spawn_requested", "ready", "failed", "stop_requested", "stopped", "deleted")
SESSION_TIMES = ("arrived", "started", "kernel_started", "connected", "ended")


@dataclass
class HubShard(OptionsShardJob):
    """One shard of a hub scenario: its users' servers, sessions, ..., on its worker."""

    scenario: str = ""
    endpoint: str = ""
    names: list[str] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    shard: int = 0
    _run: Any = field(default=None, repr=False)
    _client: HttpClient | None = field(default=None, repr=False)
    _api: HubAPI | None = field(default=None, repr=False)
    _task: asyncio.Task | None = field(default=None, repr=False)
    _stopping: bool = False
    _sent: int = 0

    async def prepare(self) -> None:
        opts = self.options
        self._run = registry.scenario(self.scenario)(opts)
        self._client = HttpClient(
            self.endpoint,
            opts.token,
            self._run.sink,
            request_timeout=opts.request_timeout,
            retry=RetryPolicy(max_attempts=opts.max_retries + 1),
            deadline=Deadline(opts.run_timeout),
        )
        await self._client.__aenter__()
        self._api = HubAPI(self._client)
        await self._api.check_access()  # the pre-flight, from where the load will come
        self._sent = len(self._run.sink)  # ...which is not part of the load's records

    async def run(self, t0: float) -> None:
        assert self._api is not None
        if self._stopping:  # stopped between the start and this task's first step
            await self._client.__aexit__(None, None, None)
            return
        self._task = asyncio.ensure_future(self._run.work(self._api, self.names, self.indices, t0))
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(self._run.shard_cleanup(), CLEANUP_S)
        finally:
            await self._client.__aexit__(None, None, None)

    def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def chunk(self) -> dict[str, Any] | None:
        if self._run is None:
            return None
        records = self._run.sink.snapshot()[self._sent :]
        self._sent += len(records)
        mine = set(self.names)
        users = lifecycle_frame([r for r in self._run.users.rows() if r.user in mine])
        sessions = self._run.sessions.to_frame() if hasattr(self._run, "sessions") else None
        return {"records": records_to_frame(records), "users": users, "sessions": sessions}

    def counts(self) -> tuple[int, int]:
        return self._run.shard_counts() if self._run is not None else (0, 0)


def shard_options(options: Any, i: int, n: int, token: str | None) -> Any:
    """Shard ``i``'s options: the coordinator's token (a sandbox's too), its share of the batch
    size; no saving or verdict of its own."""
    return options.for_shard(
        token=token, batch_size=max(1, share(options.batch_size, n, i)), sandbox=False, scrape_metrics=0.0
    )


async def run_user_shards(run: ShardedRun, api: HubAPI, names: list[str]) -> None:
    """The scenario's per-user work on the Dask cluster's workers; results merged into ``run``."""
    cluster = run.cluster
    n = max(1, min(len(cluster.workers), len(names)))
    jobs = [
        HubShard(
            shard_options(run.options, i, n, api.client.token),
            scenario=run.scenario,
            endpoint=api.client.base_url,
            names=names[i::n],
            indices=list(range(i, len(names), n)),
            shard=i,
        )
        for i in range(n)
    ]
    phase = run.shard_phase
    run.progress.begin(phase, len(names))

    def on_progress(states: list[ShardState]) -> None:
        run.progress.update(phase, sum(s.requests for s in states), sum(s.failed for s in states))

    coordinator = Coordinator(cluster, jobs, max_seconds=run.options.run_timeout, on_progress=on_progress)
    run.coordinator = coordinator
    task = asyncio.ensure_future(coordinator.run())
    stopped = False
    try:
        while True:
            try:
                await asyncio.shield(task)
                break
            except asyncio.CancelledError:
                if task.done():
                    raise
                stopped = True
                coordinator.stop()  # the first stop: shards stop sending; a second: abandon
    finally:
        if task.done() and not task.cancelled() and task.exception() is None:
            absorb(run, coordinator)
            if coordinator.start_local is not None:
                run.meta["load_started"] = coordinator.start_local
    if stopped:
        raise asyncio.CancelledError


def absorb(run: ShardedRun, coordinator: Coordinator) -> None:
    """Shards' records, lifecycle rows and sessions into the coordinator's run, on its clock."""
    parts, table = [], []
    for s in coordinator.states:
        chunks = s.records()
        delta = s.offset - coordinator.offset  # the shard's wall clock -> this machine's
        frames = [c["records"] for c in chunks if c.get("records") is not None and len(c["records"])]
        requests = sum(len(f) for f in frames)
        if frames:
            parts.append((s.shard, s.worker, pd.concat(frames, ignore_index=True), delta))
        users = next((c["users"] for c in reversed(chunks) if c.get("users") is not None), None)
        if users is not None:
            _update_users(run, shift(users, USER_TIMES, delta))
        sessions = next((c["sessions"] for c in reversed(chunks) if c.get("sessions") is not None), None)
        if sessions is not None and hasattr(run, "sessions"):
            for row in shift(sessions, SESSION_TIMES, delta).to_dict("records"):
                run.sessions.add(SessionRow(**{k: _none(row[k]) for k in SESSION_COLUMNS}))
        row = s.row()
        row["users"], row["failed_users"] = len(coordinator.jobs[s.shard].names), row.pop("failed")
        row["requests"] = requests  # (the live counts were users done)
        table.append(row)
    run.shard_records = merge(parts, RECORD_TIMES, sort_by="start")
    run.shards = pd.DataFrame(table)


def _update_users(run: ShardedRun, users: pd.DataFrame) -> None:
    for row in users.to_dict("records"):
        target = run.users[row["user"]]
        for col in LIFECYCLE_COLUMNS:
            if col in ("user", "created"):
                continue  # the coordinator created them; it knows when
            value = _none(row[col])
            if value is not None:
                setattr(target, col, int(value) if col == "spawn_attempts" else value)


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and value != value) else value
