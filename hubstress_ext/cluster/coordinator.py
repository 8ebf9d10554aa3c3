"""The coordinator: submits one pinned shard per worker, starts them together, relays a stop,
notices lost workers, and collects every shard's records (streamed each second, plus the tail).

It runs on the run's own event loop; every call into Dask's (blocking) client API goes
through a thread, so it works the same with a client it made and with a notebook's client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hubstress_ext.cluster.clock import measure_offset, to_local
from hubstress_ext.cluster.shard import ShardJob, channel_names, drop_secrets, run_shard, stash_secrets
from hubstress_ext.cluster.target import Cluster
from hubstress_ext.errors import RunError

log = logging.getLogger("hubstress.cluster")

POLL_S = 0.1
LIVENESS_EVERY_S = 0.5
LEAD_S = 1.0  # the common start is this far after the last shard said ready (time to hear it)
READY_TIMEOUT_S = 120.0
ANSWER_TIMEOUT_S = 60.0  # a single call into Dask (not the load) that takes longer is an error
TAIL_WAIT_S = 0.5  # after the last shard ended: messages still on their way
# a shard that ended in one of these did not apply its whole part of the load
NOT_WHOLE = ("lost", "late", "failed", "abandoned", "cancelled")


def degraded(shards: Any) -> bool:
    """Whether a run's shards table (``run.shards``) has a shard that did not do its part."""
    return shards is not None and len(shards) > 0 and bool(shards["status"].isin(NOT_WHOLE).any())


@dataclass
class ShardState:
    """One shard as the coordinator sees it (``run.shards`` is a table of these)."""

    shard: int
    worker: str
    status: str = "starting"  # ready, running, finished, stopped, lost, late, failed, cancelled
    requests: int = 0
    failed: int = 0
    cpu_pct: float = float("nan")
    error: str | None = None
    started: float | None = None  # when it really started, on the scheduler's clock
    offset: float = 0.0  # its clock's offset to the scheduler's (scheduler - shard)
    chunks: dict[int, Any] = field(default_factory=dict)  # seq -> records sent while running
    result: dict[str, Any] | None = None

    def records(self) -> list[Any]:
        """Every chunk the shard sent, in order, then the tail of its result."""
        out = [chunk for _seq, chunk in sorted(self.chunks.items())]  # one pass: safe beside a writer
        if self.result is not None and self.result.get("chunk") is not None:
            out.append(self.result["chunk"])
        return [c for c in out if c is not None]

    @property
    def start_offset_ms(self) -> float | None:
        """How far after the common start this shard got going (its schedule still counts from
        the common start: a late shard's time-bound share is cut, never shifted)."""
        return (self.result or {}).get("start_offset_ms")

    def row(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "worker": self.worker,
            "status": self.status,
            "requests": self.requests,
            "failed": self.failed,
            "cpu_pct": round(self.cpu_pct, 1) if self.cpu_pct == self.cpu_pct else self.cpu_pct,
            "start_offset_ms": self.start_offset_ms,
            "first_sent_ms": (self.result or {}).get("first_sent_ms"),
            "error": self.error,
        }


class Coordinator:
    """Run ``jobs`` (one per worker, in order) on ``cluster``; ``stop()`` from the run's loop."""

    def __init__(
        self,
        cluster: Cluster,
        jobs: list[ShardJob],
        *,
        max_seconds: float,
        on_progress: Callable[[list[ShardState]], None] | None = None,
    ) -> None:
        if len(jobs) > len(cluster.workers):
            have = len(cluster.workers)
            raise RunError(f"{len(jobs)} shards need as many Dask workers; the cluster has {have}")
        self.cluster = cluster
        self.client = cluster.client
        self.jobs = jobs
        self.max_seconds = max_seconds
        self.on_progress = on_progress
        self.run_id = uuid.uuid4().hex[:12]
        self.states = [ShardState(i, w) for i, w in enumerate(cluster.workers[: len(jobs)])]
        self.start: float | None = None  # the common start, on the scheduler's clock
        self.start_local: float | None = None  # ...and on this machine's clock
        self.offset = 0.0  # scheduler - this machine
        self._stops = 0
        self._stop_sent = False
        self._futures: list[Any] = []
        self._names = channel_names(self.run_id)

    def stop(self) -> None:
        """First call: every shard stops sending within a second. Second: abandon them."""
        self._stops += 1

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> list[ShardState]:
        from distributed import Event, Queue, Variable

        client = self.client
        self._queue = Queue(self._names["events"], client=client)
        self._start_var = Variable(self._names["start"], client=client)
        self._stop_event = Event(self._names["stop"], client=client)
        secrets = {job.shard: job.take_secrets() for job in self.jobs}
        try:
            await self._answered(
                "sending the secrets to the workers", client.run, stash_secrets, self.run_id, secrets
            )
            self.offset = await self._answered(
                "reading the scheduler's clock", measure_offset, self._scheduler_time
            )
            self._futures = [
                client.submit(
                    run_shard,
                    job,
                    self.run_id,
                    self.max_seconds,
                    READY_TIMEOUT_S,
                    key=f"hubstress-shard-{job.shard}-{self.run_id}",
                    workers=[state.worker],
                    allow_other_workers=False,
                    pure=False,
                    retries=0,
                )
                for job, state in zip(self.jobs, self.states, strict=True)
            ]
            if await self._until_ready():
                await self._publish_start()
                await self._monitor()
        finally:
            for job, shard_secrets in zip(self.jobs, secrets.values(), strict=True):
                job.put_secrets(shard_secrets)
            await asyncio.to_thread(self._cleanup)
        return self.states

    async def _answered(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        """A blocking call into Dask, bounded: a cluster that stops answering is one clear error."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(call, *args), ANSWER_TIMEOUT_S)
        except TimeoutError:
            raise RunError(
                f"the Dask cluster did not answer within {ANSWER_TIMEOUT_S:g} s ({what})"
            ) from None

    def _scheduler_time(self) -> float:
        return self.client.run_on_scheduler(time.time)

    async def _until_ready(self) -> bool:
        """True once every shard is ready; False if a stop came first (the shards are called off)."""
        waiting = {s.shard for s in self.states}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while waiting:
            for msg in await self._drain():
                if msg.get("kind") == "ready":
                    waiting.discard(msg["shard"])
                    self.states[msg["shard"]].status = "ready"
                    self.states[msg["shard"]].offset = msg.get("offset", 0.0)
            await self._collect_done()
            failed = [s for s in self.states if s.status in ("failed", "lost")]
            if failed:
                await self._call_off()
                s = failed[0]
                raise RunError(f"shard {s.shard} on {s.worker} could not start: {s.error}")
            if self._stops:
                await self._call_off()
                for s in self.states:
                    s.status = "cancelled"
                return False
            if time.monotonic() > deadline:
                await self._call_off()
                raise RunError(
                    f"{len(waiting)} shard(s) were not ready within {READY_TIMEOUT_S:g} s "
                    "(are the workers busy with other tasks?)"
                )
            await self._check_liveness()
            await asyncio.sleep(POLL_S)
        return True

    async def _publish_start(self) -> None:
        now = await asyncio.to_thread(self._scheduler_time)
        self.start = now + LEAD_S
        self.start_local = to_local(self.start, self.offset)
        await asyncio.to_thread(self._start_var.set, self.start)
        for s in self.states:
            s.status = "running"

    async def _call_off(self) -> None:
        """Before the start: tell waiting shards there will be none, and cancel the tasks."""
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._start_var.set, 0)
        await asyncio.to_thread(self.client.cancel, self._futures)

    async def _monitor(self) -> None:
        last_liveness = 0.0
        hard_end = time.monotonic() + self.max_seconds + LEAD_S + 30.0
        while any(s.status == "running" for s in self.states):
            if self._stops and not self._stop_sent:
                self._stop_sent = True
                await asyncio.to_thread(self._stop_event.set)
            if self._stops > 1:  # abandoned: shards still end at their own deadline
                for s in self.states:
                    if s.status == "running":
                        s.status, s.error = "abandoned", "the run was abandoned (second stop)"
                await asyncio.to_thread(self.client.cancel, self._futures)
                break
            self._apply(await self._drain())
            await self._collect_done()
            if time.monotonic() - last_liveness >= LIVENESS_EVERY_S:
                last_liveness = time.monotonic()
                await self._check_liveness()
            if time.monotonic() > hard_end:
                for s in self.states:
                    if s.status == "running":
                        s.status, s.error = "lost", "no result long after its deadline"
                await asyncio.to_thread(self.client.cancel, self._futures)
                break
            if self.on_progress is not None:
                self.on_progress(self.states)
            await asyncio.sleep(POLL_S)
        await asyncio.sleep(TAIL_WAIT_S if any(s.status == "lost" for s in self.states) else 0)
        self._apply(await self._drain())
        if self.on_progress is not None:
            self.on_progress(self.states)

    async def _drain(self) -> list[dict[str, Any]]:
        try:
            return await asyncio.to_thread(self._queue.get, batch=True)
        except Exception:  # the scheduler is briefly unreachable: try again next round
            log.debug("reading the shards' messages failed", exc_info=True)
            return []

    def _apply(self, messages: list[dict[str, Any]]) -> None:
        for msg in messages:
            if msg.get("kind") != "progress":
                continue
            state = self.states[msg["shard"]]
            state.chunks[msg["seq"]] = msg.get("chunk")
            state.started = msg.get("started", state.started)
            if state.result is None:  # the result's counts are the final ones
                state.requests, state.failed = msg["requests"], msg["failed"]
                state.cpu_pct = msg["cpu_pct"]

    async def _collect_done(self) -> None:
        for state, future in zip(self.states, self._futures, strict=True):
            if state.result is not None or state.status in ("lost", "abandoned") or not future.done():
                continue
            try:
                result = await asyncio.to_thread(future.result)
            except Exception as exc:  # the task itself raised (or was cancelled)
                state.status, state.error = "failed", f"{type(exc).__name__}: {exc}"
                continue
            state.result = result
            state.status = result["status"]
            state.error = result.get("error")
            state.requests = result.get("requests", state.requests)
            state.failed = result.get("failed", state.failed)
            state.cpu_pct = result.get("cpu_pct", state.cpu_pct)
            state.started = result.get("started", state.started)
            state.offset = result.get("offset", state.offset)
            if result.get("woke") is not None and self.start is not None:
                result["start_offset_ms"] = round((result["woke"] - self.start) * 1000.0, 2)

    async def _check_liveness(self) -> None:
        """A worker that left the cluster takes its shard with it: lost, never re-run elsewhere."""
        try:
            alive = set(await asyncio.to_thread(self._workers_alive))
        except Exception:
            log.debug("asking the scheduler for its workers failed", exc_info=True)
            return
        lost = []
        for state, future in zip(self.states, self._futures, strict=True):
            if state.worker not in alive and state.result is None and state.status not in ("lost", "failed"):
                state.status, state.error = "lost", f"worker {state.worker} left the cluster"
                lost.append(future)
        if lost:
            await asyncio.to_thread(self.client.cancel, lost)

    def _workers_alive(self) -> list[str]:
        """The scheduler's workers now (a fresh fetch; no code of ours runs on the scheduler)."""
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed before n_workers: all workers by default
            info = self.client.scheduler_info()
        return list(info.get("workers", {}))

    def _cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.client.run(drop_secrets, self.run_id)
        with contextlib.suppress(Exception):
            self._start_var.delete()
        with contextlib.suppress(Exception):
            self.client.cancel([f for f in self._futures if not f.done()])
