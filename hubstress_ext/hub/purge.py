"""purge: remove users this tool created, and nobody else.

A user is ours only if its name has our prefix followed by digits *and* it is a member of
the marker group the tool joins every user to at creation.
"""

from __future__ import annotations

from hubstress_ext.engine.record import RunRecord
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.names import note_look_alikes, ours
from hubstress_ext.hub.options import PurgeOptions
from hubstress_ext.hub.run import HubRun
from hubstress_ext.hub.teardown import delete_users, stop_servers

PURGE_STOP_TIMEOUT = 300.0


class PurgeRun(HubRun):
    """delete the users this tool created (prefix + marker group)"""

    scenario = "purge"
    options_type = PurgeOptions
    options: PurgeOptions

    def __init__(self, options: PurgeOptions) -> None:
        super().__init__(options)
        self.found: list[str] = []
        self.removed: list[str] = []

    async def load(self, api: HubAPI) -> None:
        opts = self.options
        group = await api.group_members()
        members = set(ours(group, opts.prefix))
        if not members:
            if api.client.dry_run:
                note_look_alikes(
                    api, [u["name"] for u in await api.list_users(prefix=opts.prefix)], group, opts.prefix
                )
            return
        models = {u["name"]: u for u in await api.list_users(prefix=opts.prefix)}
        note_look_alikes(api, list(models), group, opts.prefix)
        self.found = sorted(n for n in members if n in models or api.client.dry_run)
        running = [n for n in self.found if models.get(n, {}).get("servers")]
        if running:
            await stop_servers(api, running, opts.batch_size, self.users, self.progress, PURGE_STOP_TIMEOUT)
        self.removed = await delete_users(api, self.found, opts.batch_size, self.users, self.progress)
        self.meta["removed"] = self.removed

    def succeeded(self) -> bool:
        return len(self.removed) == len(self.found)

    @classmethod
    def extra_lines(cls, record: RunRecord) -> list[str]:
        removed = record.meta.get("removed", [])
        return [f"removed {len(removed)} user(s)" + (f": {', '.join(removed)}" if removed else "")]
