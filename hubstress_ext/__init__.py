"""hubstress: load-test JupyterHub deployments and micro-batching endpoints.

The engine (``hubstress_ext.engine``) owns every run; the CLI, magics, panel and notebooks are
thin front ends over the same run objects:

    from hubstress_ext import make_run, load_run
    run = make_run("stress-test", count=20, sandbox=True, sandbox_spawner="sim").execute()
    run.summary(); run.save("runs/"); load_run("runs/<dir>").summary()
"""

from __future__ import annotations

from typing import Any

from hubstress_ext.version import __version__

__all__ = ["__version__", "load_run", "make_run", "panel", "run_from_file"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter server discovers the batching endpoint through this."""
    return [{"module": "hubstress_ext.batching.extension"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hubstress_ext``: registers ``%hubstress`` / ``%%hubstress`` and the runs' display."""
    from hubstress_ext.notebook.display import register
    from hubstress_ext.notebook.magics import HubstressMagics

    ipython.register_magics(HubstressMagics)
    register(ipython)


def make_run(scenario: str, /, **options: Any) -> Any:
    """A run of ``scenario`` with typed options, checked, not started (``.execute()``/``.start()``)."""
    from hubstress_ext.engine.registry import make_run as _make_run

    return _make_run(scenario, **options)


def load_run(path: Any) -> Any:
    """A run saved with ``--save`` / ``run.save()``, read back (``.summary()``, ``.df``, ``.report()``)."""
    from hubstress_ext.engine.saved import load_run as _load_run

    return _load_run(path)


def panel(**values: Any) -> Any:
    """The ipywidgets panel: options as form fields, Start/Stop, live chart, summary table."""
    from hubstress_ext.notebook.panel import panel as make_panel

    return make_panel(**values)


def run_from_file(path: Any, /, **overrides: Any) -> Any:
    """A run (not started) of the scenario a TOML file describes; keyword values override it."""
    from hubstress_ext.engine.scenario_file import run_from_file as _run_from_file

    return _run_from_file(path, **overrides)
