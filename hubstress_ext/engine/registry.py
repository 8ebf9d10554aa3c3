"""The scenarios: name -> Run class (which names its options type). Every front end asks here.

The CLI's subcommands and flags, the cell magic's keys and the widget panel's form are made
from this registry and the options each Run class declares; every front end builds a run the
same way, with :func:`make_run`. A new scenario is one module with its options dataclass and
Run class, plus one line in ``BUILT_IN`` (or a :func:`register` call from anywhere).

Built-in scenarios are named by import path so that the registry (engine) does not import
the scenario modules (which import the engine) until a run is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hubstress_ext.engine.spec import build
from hubstress_ext.errors import OptionError

if TYPE_CHECKING:
    from hubstress_ext.engine.run import Run

BUILT_IN: dict[str, str] = {
    "stress-test": "hubstress_ext.hub.stress:StressTestRun",
    "activity-stress-test": "hubstress_ext.hub.activity:ActivityStressRun",
    "session-test": "hubstress_ext.hub.sessions:SessionRun",
    "purge": "hubstress_ext.hub.purge:PurgeRun",
    "bench": "hubstress_ext.loadgen.run:BenchRun",
    "sweep": "hubstress_ext.loadgen.sweep:SweepRun",
}
DEFAULT_SCENARIO = "stress-test"  # what `%hubstress --count 5` (no scenario named) runs

_registered: dict[str, type[Run] | str] = dict(BUILT_IN)


def register(run_class: type[Run]) -> type[Run]:
    """Add (or replace) a scenario under ``run_class.scenario``; usable as a class decorator."""
    _registered[run_class.scenario] = run_class
    return run_class


def unregister(name: str) -> None:
    _registered.pop(name, None)


def names() -> list[str]:
    return list(_registered)


def scenario(name: str) -> type[Run]:
    """The Run class of a scenario, imported on first use; OptionError for an unknown name."""
    entry = _registered.get(name)
    if entry is None:
        raise OptionError(f"unknown scenario {name!r}; one of: {', '.join(_registered)}")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = _registered[name] = getattr(importlib.import_module(module), attr)
    return entry


def make_run(name: str, /, **values: Any) -> Run:
    """A run of scenario ``name`` with typed option values, checked, not started.

    ``make_run("stress-test", count=20, sandbox=True)``: what the CLI, the magics and the
    panel all call. Unknown options, bad values and missing ones raise OptionError (one line
    naming the option).
    """
    cls = scenario(name)
    options = build(cls.options_type, values).resolve()
    return cls(options)
