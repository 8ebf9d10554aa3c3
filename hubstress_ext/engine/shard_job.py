"""A Dask shard job that carries a run's options: their declared secrets travel apart.

The options say which of their fields are secret (``option(..., secret=True)``: the token,
a password); those are taken out before the job is pickled into its task and put back on the
worker, so a secret never is a task argument (``cluster.shard``'s stash carries it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hubstress_ext.cluster.shard import ShardJob
from hubstress_ext.engine.spec import options_of


@dataclass
class OptionsShardJob(ShardJob):
    options: Any

    def take_secrets(self) -> dict[str, Any]:
        names = [o.name for o in options_of(type(self.options)) if o.spec.secret]
        secrets = {name: getattr(self.options, name) for name in names}
        self.options = dataclasses.replace(self.options, **dict.fromkeys(names))
        return secrets

    def put_secrets(self, secrets: dict[str, Any]) -> None:
        for name, value in secrets.items():
            setattr(self.options, name, value)
