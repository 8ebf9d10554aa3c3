"""The options every scenario shares: saving, logging, the verdict, Dask shards.

One declaration per option (:mod:`hubstress_ext.engine.spec`) serves every front end. Each
subsystem declares its own options next to its code, on top of these: the hub's in
``hub/options.py``, a class's in ``hub/sessions.py``, the load generator's in
``loadgen/options.py``. A secret option (a token, a password) is declared ``secret``: excluded
from ``repr`` and replaced in :meth:`Options.public` (what saved runs, logs and displays see).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from hubstress_ext.engine import slo
from hubstress_ext.engine.spec import check_all, option, options_of, public


def timed_run_duration() -> Any:
    """The ``--duration`` of a run bounded in time or in requests (activity, bench)."""
    return option(
        None,
        "seconds to run (default 10 unless --requests is given)",
        low=0,
        above=True,
        unit="seconds",
        panel=True,
    )


@dataclass
class Options:
    """The behaviour every options class shares: environment, checks, a public view."""

    # its options are also accepted before the scenario's name on a command line, as the
    # original hub-stress-test.py took them (``hubstress -c 5 stress-test``)
    before_command: ClassVar[bool] = False

    def resolve(self, env: dict[str, str] | None = None) -> Self:
        """Fill what the environment gives, check every option, validate; returns self."""
        env = os.environ if env is None else env
        if self.uses_env():
            for opt in options_of(type(self)):
                if opt.spec.env and not getattr(self, opt.name):
                    setattr(self, opt.name, env.get(opt.spec.env) or None)
        check_all(self)
        self.validate()
        return self

    def uses_env(self) -> bool:
        return True

    def validate(self) -> None:
        """Rules across options (the generic checks have passed)."""

    def public(self) -> dict[str, Any]:
        """Everything but secrets: safe to save, log and display."""
        return public(self)


@dataclass
class RunOptions(Options):
    """What every run takes from its front end: where to save it, how much to log."""

    save: str | None = option(
        None, "save the run (options without the token, records) under DIR", metavar="DIR"
    )
    verbose: bool = option(False, "debug logging, including every request's timing", flags=("-v",))
    slo: list[str] = option(
        [],
        "pass/fail rules checked at the end, e.g. 'ready.p90<60s, failures<1%' (exit 1 if one fails)",
        parse=slo.parse_rules,
        normalize=slo.normalize,
        metavar="RULES",
        panel=True,
        label="SLO rules",
    )
    junit: str | None = option(None, "write the verdict as JUnit XML to FILE", metavar="FILE")


def _dask_target(value: Any) -> Any:
    from hubstress_ext.cluster.target import normalize

    return normalize(value)


@dataclass
class ShardOptions(Options):
    """Load from many processes or machines on Dask (``hubstress_ext.cluster``)."""

    dask: str | None = option(
        None,
        "spread the load over Dask workers, one shard each: local:N (N processes here), "
        "tcp://SCHEDULER:8786, or gateway[:N] (dask-gateway's defaults, as on DaskHub); "
        "needs hubstress_ext[dask]",
        normalize=_dask_target,
        metavar="CLUSTER",
        panel=True,
        label="Dask cluster",
    )
    allow_lost_shards: bool = option(
        False, "exit 0 even when a shard was lost with its worker (the run still says degraded)"
    )

    def for_shard(self, **changes: Any) -> Self:
        """A copy for one shard: no cluster of its own, nothing saved, no verdict of its own."""
        return dataclasses.replace(self, dask=None, save=None, junit=None, slo=[], **changes)
