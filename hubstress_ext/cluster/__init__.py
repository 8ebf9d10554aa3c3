"""Load from many processes and machines on Dask (``--dask local:N | tcp://… | gateway``).

A run is split into *shards*, one per Dask worker, each pinned to its worker and running the
same engine loop as a local run in its own event loop (:mod:`.shard`). The coordinator
(:mod:`.coordinator`) starts them together on the scheduler's clock, relays a stop within a
second, notices a worker that died and keeps what its shard had sent; :mod:`.merge` puts the
shards' raw records into one table. Nothing here knows what a shard sends: bench and hub
scenarios give their own :class:`~.shard.ShardJob`.

``distributed`` is an optional dependency (``pip install 'hubstress_ext[dask]'``); only
:mod:`.target`'s ``open_cluster`` and the coordinator import it, and only for a ``--dask`` run.
"""
