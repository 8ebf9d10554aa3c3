"""Creating and removing this tool's users: shared by every scenario and by purge."""

from __future__ import annotations

import asyncio
import logging
import os.path
import time

from hubstress_ext.engine.progress import Progress
from hubstress_ext.http.client import gather_limited
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.results.lifecycle import LifecycleTable

log = logging.getLogger("hubstress")

STOP_POLL_INTERVAL = 0.2


async def create_users(
    api: HubAPI, names: list[str], batch_size: int, users: LifecycleTable, progress: Progress
) -> list[str]:
    """Bulk-create in batches and tag each batch with the marker group; returns created names."""
    progress.begin("create", len(names))
    await api.ensure_group()
    created: list[str] = []
    for i in range(0, len(names), batch_size):
        batch = names[i : i + batch_size]
        resp = await api.create_users(batch)
        if resp.status == 409:  # all exist already (e.g. a retried POST that had landed)
            made = batch
        elif resp.ok:
            made = [u["name"] for u in resp.json() or []]
        else:
            log.warning("creating %d users failed: %s", len(batch), resp.reason())
            for _ in batch:
                progress.advance("create", failed=True)
            continue
        # tag before anything else: the marker is what lets purge find them after a crash
        tag = await api.add_to_group(made)
        if not tag.ok:
            log.warning("tagging users with the marker group failed: %s", tag.reason())
        stamp = time.time()
        for name in made:
            users[name].created = stamp
            progress.advance("create")
        created.extend(made)
    return created


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
        users[name].stop_requested = time.time()
        resp = await api.stop_server(name, server)
        if resp.status == 202:
            pending.add(name)
        elif resp.ok or resp.status == 404:
            users[name].stopped = time.time()
            progress.advance("stop")
        else:
            users[name].reason = users[name].reason or f"stop failed: {resp.reason()}"
            progress.advance("stop", failed=True)

    await gather_limited(batch_size, [lambda n=n: stop(n) for n in names])
    await wait_stopped(api, pending, users, progress, timeout)


async def wait_stopped(
    api: HubAPI, pending: set[str], users: LifecycleTable, progress: Progress, timeout: float
) -> None:
    prefix = _common_prefix(pending)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while pending and loop.time() < give_up:
        await asyncio.sleep(STOP_POLL_INTERVAL)
        active = {u["name"] for u in await api.list_users(prefix=prefix, state="active")}
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
        resp = await api.delete_user(name)
        ok = resp.ok or resp.status == 404
        if ok:
            users[name].deleted = time.time()
            deleted.append(name)
        else:
            log.warning("deleting %s failed: %s", name, resp.reason())
        progress.advance("delete", failed=not ok)

    await gather_limited(batch_size, [lambda n=n: delete(n) for n in names])
    if deleted and not await api.group_members():
        await api.delete_group()
    return deleted


def _common_prefix(names: set[str]) -> str | None:
    prefix = os.path.commonprefix(sorted(names)) if names else ""
    return prefix or None
