"""Creating and removing this tool's users: shared by every scenario and by purge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os.path
import time
from collections.abc import Iterator

from hubstress_ext.engine.progress import Progress
from hubstress_ext.http.client import gather_limited
from hubstress_ext.hub.api import HubAPI, HubError
from hubstress_ext.results.lifecycle import LifecycleTable

log = logging.getLogger("hubstress")

STOP_POLL_INTERVAL = 0.2
STOPPING_WAIT_S = 60.0  # a delete refused because the server is still stopping: retried this long
STOPPING_POLL_S = 0.5


MAX_COLLISION_ROUNDS = 20  # bulk creates that found a name taken, before the run gives up on names


class UserCreation:
    """Creates a run's users in batches; only users the hub answered 201 for are ours.

    A bulk ``POST /users`` answers 201 listing the users it made, skipping names that already
    exist, or 409 when every name existed. Existing users are never adopted: they get no marker
    and are never stopped or deleted; the run draws further names until it has ``count`` of its
    own. Each create-and-tag step runs to completion even when the run is stopped meanwhile, so
    a user the hub made is always tagged with the marker group and known to teardown (or purge).
    """

    def __init__(self, api: HubAPI, users: LifecycleTable, progress: Progress) -> None:
        self.api = api
        self.users = users
        self.progress = progress
        self.created: list[str] = []
        self.skipped: list[str] = []  # names that existed already: someone else's, left alone
        self._in_flight: asyncio.Task | None = None

    async def create(self, names: Iterator[str], count: int, batch_size: int) -> list[str]:
        self.progress.begin("create", count)
        await self.api.ensure_group()
        collisions = 0
        attempted = 0
        while attempted < count:
            batch = [next(names) for _ in range(min(batch_size, count - attempted))]
            self._in_flight = asyncio.ensure_future(self._create_batch(batch))
            made, ok = await asyncio.shield(self._in_flight)  # a stop waits for this batch's answer
            if not ok:
                attempted += len(batch)
                continue
            attempted += len(made)
            if len(made) < len(batch):
                collisions += 1
                if collisions > MAX_COLLISION_ROUNDS:
                    log.warning("giving up creating users: names kept colliding with existing users")
                    break
        return self.created

    async def _create_batch(self, batch: list[str]) -> tuple[list[str], bool]:
        resp = await self.api.create_users(batch)
        if resp.status == 409:  # every name exists already: not ours, whoever made them
            made: list[str] = []
        elif resp.ok:
            made = [u["name"] for u in resp.json() or []]
        else:
            log.warning("creating %d users failed: %s", len(batch), resp.reason())
            for _ in batch:
                self.progress.advance("create", failed=True)
            return [], False
        taken = [n for n in batch if n not in made]
        if taken:
            self.skipped.extend(taken)
            log.warning(
                "%d name(s) already existed on the hub and were left alone: %s",
                len(taken),
                ", ".join(taken[:10]) + (" ..." if len(taken) > 10 else ""),
            )
        if made:
            # tag before anything else: the marker is what lets purge find them after a crash
            tag = await self.api.add_to_group(made)
            if not tag.ok:
                log.warning("tagging users with the marker group failed: %s", tag.reason())
            stamp = time.time()
            for name in made:
                self.users[name].created = stamp
                self.progress.advance("create")
            self.created.extend(made)
        return made, True

    async def settle(self, timeout: float) -> None:
        """Wait (bounded) for a create request already sent, so its users are known and tagged."""
        task = self._in_flight
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout)


async def stop_servers(
    api: HubAPI,
    names: list[str],
    batch_size: int,
    users: LifecycleTable,
    progress: Progress,
    timeout: float,
    server: str = "",
) -> None:
    """Stop servers ``batch_size`` at a time, then wait (bulk polling) until all are stopped."""
    progress.begin("stop", len(names))
    pending: set[str] = set()

    async def stop(name: str) -> None:
        stopped = await request_stop(api, name, users, server)
        if stopped is None:
            pending.add(name)
        else:
            progress.advance("stop", failed=not stopped)

    await gather_limited(batch_size, [lambda n=n: stop(n) for n in names])
    await wait_stopped(api, pending, users, progress, timeout)


async def wait_stopped(
    api: HubAPI, pending: set[str], users: LifecycleTable, progress: Progress, timeout: float
) -> None:
    prefix = _common_prefix(pending)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + min(timeout, api.client.deadline.remaining())
    while pending and loop.time() < give_up:
        await asyncio.sleep(STOP_POLL_INTERVAL)
        try:
            active = {u["name"] for u in await api.list_users(prefix=prefix, state="active")}
        except HubError as exc:  # a slow or briefly failing hub: poll again, within the bound
            log.debug("polling stopped servers: %s", exc)
            continue
        stamp = time.time()
        for name in sorted(pending - active):
            pending.discard(name)
            users[name].stopped = stamp
            progress.advance("stop")
    for name in pending:
        users[name].reason = users[name].reason or f"server did not stop within {timeout:.0f}s"
        progress.advance("stop", failed=True)


async def delete_users(
    api: HubAPI, names: list[str], batch_size: int, users: LifecycleTable, progress: Progress
) -> list[str]:
    progress.begin("delete", len(names))
    deleted: list[str] = []

    async def delete(name: str) -> None:
        ok = await delete_user(api, name, users)
        if ok:
            deleted.append(name)
        progress.advance("delete", failed=not ok)

    await gather_limited(batch_size, [lambda n=n: delete(n) for n in names])
    if deleted and not await api.group_members():
        await api.delete_group()
    return deleted


def _common_prefix(names: set[str]) -> str | None:
    prefix = os.path.commonprefix(sorted(names)) if names else ""
    return prefix or None


async def delete_user(api: HubAPI, name: str, users: LifecycleTable) -> bool:
    """Delete one of our users; True when it is gone."""
    resp = await api.delete_user(name)
    give_up = time.monotonic() + STOPPING_WAIT_S
    # a server still stopping (a stop asked for earlier, e.g. by a run interrupted twice)
    # makes the hub refuse the delete with a 400 "please wait": wait for it, bounded
    while resp.status == 400 and "stopping" in resp.reason() and time.monotonic() < give_up:
        await asyncio.sleep(STOPPING_POLL_S)
        resp = await api.delete_user(name)
    ok = resp.ok or resp.status == 404
    if ok:
        users[name].deleted = time.time()
    else:
        log.warning("deleting %s failed: %s", name, resp.reason())
    return ok


async def request_stop(api: HubAPI, name: str, users: LifecycleTable, server: str = "") -> bool | None:
    """Ask the hub to stop one server: True stopped, False refused (reason noted), None pending (202)."""
    row = users[name]
    row.stop_requested = time.time()
    resp = await api.stop_server(name, server)
    if resp.status == 202:
        return None
    if resp.ok or resp.status == 404:
        row.stopped = time.time()
        return True
    row.reason = row.reason or f"stop failed: {resp.reason()}"
    return False


async def stop_server(
    api: HubAPI, name: str, users: LifecycleTable, timeout: float, server: str = ""
) -> bool:
    """Stop one user's server and wait (bounded) until the hub says it is gone."""
    stopped = await request_stop(api, name, users, server)
    if stopped is not None:
        return stopped
    row = users[name]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + min(timeout, api.client.deadline.remaining())
    while loop.time() < give_up:
        await asyncio.sleep(STOP_POLL_INTERVAL)
        answer = await api.get_user(name, op="stop_poll")
        if answer.status == 404 or (answer.ok and server not in ((answer.json() or {}).get("servers") or {})):
            row.stopped = time.time()
            return True
    row.reason = row.reason or f"server did not stop within {timeout:.0f}s"
    return False
