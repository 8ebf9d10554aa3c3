"""UserScenario: the shape every load scenario shares (create our users, load, delete them)."""

from __future__ import annotations

from hubstress_ext.hub.api import HubAPI
from hubstress_ext.hub.names import name_stream, next_free_index
from hubstress_ext.hub.options import UserLoadOptions
from hubstress_ext.hub.run import HubRun
from hubstress_ext.hub.teardown import UserCreation, delete_users

SETTLE_TIMEOUT = 5.0  # how long teardown waits for a create request already sent


class UserScenario(HubRun):
    """Create users, then each user's work (``work``): here, or on Dask workers (``--dask``)."""

    options: UserLoadOptions
    accounts_hub = True
    shard_phase = "ready"  # the progress phase a sharded run's shard counts go to

    def __init__(self, options: UserLoadOptions) -> None:
        super().__init__(options)
        self.creation: UserCreation | None = None

    async def work(self, api: HubAPI, names: list[str], indices: list[int], t0: float | None) -> None:
        """The load of users ``names`` (user ``indices[k]`` of the run's plan is ``names[k]``),
        timed from ``t0`` (the event loop's clock; None: now). What a shard runs."""
        raise NotImplementedError

    async def load_users(self, api: HubAPI, names: list[str]) -> None:
        """Each created user's work, in this process or spread over the Dask cluster."""
        if self.cluster is None:
            await self.work(api, names, list(range(len(names))), None)
            return
        from hubstress_ext.hub.sharding import run_user_shards

        await run_user_shards(self, api, names)

    async def shard_cleanup(self) -> None:
        """On a shard after a stop: close what only this process can (session-test: kernels)."""

    def shard_counts(self) -> tuple[int, int]:
        """(users done, failed) for a sharded run's progress."""
        rows = self.users.rows()
        return sum(r.ready is not None or r.failed is not None for r in rows), sum(
            r.failed is not None for r in rows
        )

    @property
    def keep(self) -> bool:
        return self.options.keep

    @property
    def scrape_every(self) -> float:
        return self.options.scrape_metrics

    @property
    def created(self) -> list[str]:
        """The users this run created (answered 201): the only ones it will ever touch."""
        return self.creation.created if self.creation else []

    async def create_users(self, api: HubAPI) -> list[str]:
        """Create ``count`` fresh users (tagged with the marker group) and remember them."""
        opts = self.options
        self.creation = UserCreation(api, self.users, self.progress)
        start = await next_free_index(api, opts.prefix)
        return await self.creation.create(name_stream(opts.prefix, start), opts.count, opts.batch_size)

    async def settle(self) -> None:
        if self.creation is not None:
            await self.creation.settle(SETTLE_TIMEOUT)

    def left_on_hub(self) -> list[str]:
        return [n for n in self.created if self.users[n].deleted is None]

    async def teardown(self, api: HubAPI) -> None:
        await delete_users(api, self.created, self.options.batch_size, self.users, self.progress)
