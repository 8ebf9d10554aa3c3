"""UserScenario: the shape every load scenario shares (create our users, load, delete them)."""

from __future__ import annotations

from hubstress_ext.engine.options import HubOptions
from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.names import allocate_names
from hubstress_ext.hub.run import HubRun
from hubstress_ext.hub.teardown import create_users, delete_users


class UserScenario(HubRun):
    def __init__(self, options: HubOptions) -> None:
        super().__init__(options)
        self.created: list[str] = []

    async def create_users(self, api: HubAPI) -> list[str]:
        """Create ``count`` fresh users (tagged with the marker group) and remember them."""
        opts = self.options
        names = await allocate_names(api, opts.prefix, opts.count)
        self.created = await create_users(api, names, opts.batch_size, self.users, self.progress)
        return self.created

    async def teardown(self, api: HubAPI) -> None:
        await delete_users(api, self.created, self.options.batch_size, self.users, self.progress)
