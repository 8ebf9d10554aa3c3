"""The scenarios: name -> Run class (which names its options type). Every front end asks here.

The CLI's subcommands and flags, the cell magic's keys and the widget panel's form are made
from this registry and the options each Run class declares; every front end builds a run the
same way, with :func:`make_run`. A new scenario is one module with its options dataclass and
Run class, plus one line in ``BUILT_IN``; a scenario in another package declares an entry
point in the ``hubstress.scenarios`` group (``name = "package.module:RunClass"``), as pytest
and Locust find their plugins, and is found on first use; :func:`register` adds one in-process.

Scenarios are named by import path so that the registry (engine) does not import the scenario
modules (which import the engine) until a run is asked for.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
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
    "capacity": "hubstress_ext.capacity.run:CapacityRun",
}
DEFAULT_SCENARIO = "stress-test"  # what `%hubstress --count 5` (no scenario named) runs

ENTRY_POINT_GROUP = "hubstress.scenarios"

log = logging.getLogger("hubstress")
_registered: dict[str, type[Run] | str] = dict(BUILT_IN)
_plugins_loaded = False


def _load_plugins() -> None:
    """Scenarios other packages declare (entry points), once per process; a built-in keeps its name."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILT_IN:
            log.warning("scenario %r from %s ignored: a built-in scenario has that name", ep.name, ep.value)
            continue
        _registered.setdefault(ep.name, ep.value)


def register(run_class: type[Run]) -> type[Run]:
    """Add (or replace) a scenario under ``run_class.scenario``; usable as a class decorator."""
    _registered[run_class.scenario] = run_class
    return run_class


def unregister(name: str) -> None:
    _registered.pop(name, None)


def names() -> list[str]:
    _load_plugins()
    return list(_registered)


def scenario(name: str) -> type[Run]:
    """The Run class of a scenario, imported on first use; OptionError for an unknown name."""
    _load_plugins()
    entry = _registered.get(name)
    if entry is None:
        raise OptionError(f"unknown scenario {name!r}; one of: {', '.join(_registered)}")
    if isinstance(entry, str):
        entry = _registered[name] = _import_run_class(name, entry)
    return entry


def _import_run_class(name: str, path: str) -> type[Run]:
    """``package.module:RunClass`` -> the class; a plugin that does not give one is one clear line."""
    from hubstress_ext.engine.run import Run

    module, _, attr = path.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise OptionError(f"scenario {name!r} ({path}) cannot be loaded: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, Run)):
        raise OptionError(f"scenario {name!r} ({path}) is not a hubstress Run class")
    if found.scenario != name:
        raise OptionError(f"scenario {name!r} ({path}) calls itself {found.scenario!r}: the names must match")
    return found


def make_run(name: str, /, **values: Any) -> Run:
    """A run of scenario ``name`` with typed option values, checked, not started.

    ``make_run("stress-test", count=20, sandbox=True)``: what the CLI, the magics and the
    panel all call. Unknown options, bad values and missing ones raise OptionError (one line
    naming the option).
    """
    cls = scenario(name)
    options = build(cls.options_type, values).resolve()
    return cls(options)
