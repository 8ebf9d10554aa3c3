"""Rich display of runs in IPython, registered by ``%load_ext hubstress_ext`` (and the panel).

The engine's run objects know nothing of notebooks: the HTML comes from ``results.html``
and is attached here as IPython formatters. A run that a live view is following in the same
cell is shown once: the run's display carries the table and chart, the live view keeps its
status line and bars.
"""

from __future__ import annotations

import base64
import weakref
from typing import Any

from hubstress_ext.results import charts
from hubstress_ext.results.html import run_html, saved_run_html, status_line

_live: weakref.WeakKeyDictionary[Any, tuple[Any, int | None]] = weakref.WeakKeyDictionary()


def _execution_count() -> int | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "execution_count", None)


def live_view_of(run: Any, view: Any) -> None:
    """Remember that ``view`` follows ``run``, in the cell now executing."""
    _live[run] = (view, _execution_count())


# runs whose finished table and chart this cell already shows as static outputs
_static: weakref.WeakKeyDictionary[Any, int | None] = weakref.WeakKeyDictionary()


def _run_html(run: Any) -> str:
    if run in _static and _static[run] == _execution_count():
        return f"<p>{status_line(run)} (its table, report and chart are above)</p>"
    entry = _live.get(run)
    if entry is not None and entry[1] == _execution_count():
        entry[0].collapse()  # this cell shows the run itself: no second table and chart
    return run_html(run)


def show_static(run: Any, view: Any) -> None:
    """The finished run as outputs a saved notebook keeps: its table and report as HTML, its
    chart as a PNG. A widget's state is not saved with the notebook, so opened where no kernel
    runs (GitHub, nbviewer, JupyterLab without a kernel) the live view alone shows nothing."""
    from IPython.display import display

    view.collapse()  # the live view keeps its status line and bars; the rest is below it
    display({"text/html": run_html(run, chart=False), "text/plain": run.report()}, raw=True)
    try:
        png = charts.png_of(run)
    except Exception:  # a chart is a bonus: the table and report are shown already
        png = None
    if png:
        display(
            {"image/png": base64.b64encode(png).decode(), "text/plain": f"<{run.scenario} chart>"}, raw=True
        )
    _static[run] = _execution_count()


def register(shell: Any) -> None:
    """Attach the HTML formatters for runs and saved runs to ``shell``."""
    from hubstress_ext.engine.run import Run
    from hubstress_ext.engine.saved import SavedRun

    html = shell.display_formatter.formatters["text/html"]
    html.for_type(Run, _run_html)
    html.for_type(SavedRun, saved_run_html)


def register_current() -> None:
    """Register with the running IPython, if any (the panel may be made without %load_ext)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        register(shell)
