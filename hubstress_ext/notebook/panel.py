"""The widget panel: the run options as a form, Start / Stop, the live view, ``panel.run``.

It builds the same CLI-style arguments the magics do and hands them to the same engine, so
validation and errors are the engine's; they show inline under the form, never as a traceback.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets

from hubstress_ext.engine.options import OptionError
from hubstress_ext.notebook.live import LiveView

SCENARIOS = ("stress-test", "activity-stress-test", "purge", "bench", "sweep")


class Panel:
    def __init__(self, **values: Any) -> None:
        style = {"description_width": "110px"}
        wide = widgets.Layout(width="460px")
        self.scenario = widgets.Dropdown(
            options=SCENARIOS, value="stress-test", description="scenario", style=style
        )
        self.endpoint = widgets.Text(
            description="endpoint / URL",
            placeholder="hub API (default $JUPYTERHUB_ENDPOINT), or the URL for bench/sweep",
            style=style,
            layout=wide,
        )
        self.token = widgets.Password(
            description="token", placeholder="default $JUPYTERHUB_API_TOKEN", style=style
        )
        self.count = widgets.IntText(value=20, description="count", style=style)
        self.batch_size = widgets.IntText(value=5, description="batch size", style=style)
        self.workers = widgets.IntText(value=10, description="workers", style=style)
        self.duration = widgets.FloatText(value=10.0, description="duration s", style=style)
        self.keep = widgets.Checkbox(value=False, description="keep users", indent=False)
        self.sandbox = widgets.Checkbox(value=False, description="sandbox hub", indent=False)
        self.sandbox_spawner = widgets.Dropdown(
            options=("real", "sim"), value="real", description="sandbox servers", style=style
        )
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.error = widgets.HTML()
        self.error.add_class("hubstress-error")
        self.view = LiveView()
        self.run: Any = None
        self._done_thread: threading.Thread | None = None
        for name, value in values.items():
            field = getattr(self, name, None)
            if not isinstance(field, widgets.ValueWidget):
                raise TypeError(f"panel() has no field {name!r}")
            field.value = value
        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        form = widgets.VBox(
            [
                widgets.HBox([self.scenario, self.sandbox, self.sandbox_spawner]),
                self.endpoint,
                self.token,
                widgets.HBox([self.count, self.batch_size]),
                widgets.HBox([self.workers, self.duration]),
                self.keep,
                widgets.HBox([self.start_button, self.stop_button]),
                self.error,
            ]
        )
        self.widget = widgets.VBox([form, self.view.widget])
        self.widget.add_class("hubstress-panel")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def argv(self) -> list[str]:
        """The form as CLI arguments (what ``start`` runs)."""
        scenario = self.scenario.value
        if scenario in ("bench", "sweep"):
            if not self.endpoint.value.strip():
                raise OptionError(
                    f"{scenario} needs the endpoint URL, e.g. http://127.0.0.1:8765/hubstress/batch"
                )
            argv = [scenario, self.endpoint.value.strip(), "--duration", str(self.duration.value)]
            if scenario == "bench":
                argv += ["--workers", str(self.workers.value)]
            else:
                argv += ["--workers", str(self.workers.value), "--batch-size", str(self.batch_size.value)]
            if self.token.value:
                argv += ["--token", self.token.value]
            return argv
        argv = [scenario, "--count", str(self.count.value), "--batch-size", str(self.batch_size.value)]
        argv += ["--workers", str(self.workers.value)]
        if scenario == "activity-stress-test":
            argv += ["--duration", str(self.duration.value)]
        if self.sandbox.value:
            argv += ["--sandbox", "--sandbox-spawner", self.sandbox_spawner.value]
        else:
            if self.endpoint.value.strip():
                argv += ["--endpoint", self.endpoint.value.strip()]
            if self.token.value:
                argv += ["--token", self.token.value]
        if self.keep.value:
            argv.append("--keep")
        return argv

    def start(self) -> Any:
        """Validate the form and start the run; problems show under the form."""
        from hubstress_ext.cli.main import run_from_argv

        if self.run is not None and not self.run.done:
            self._show_error("a run is going: stop it first")
            return None
        try:
            run = run_from_argv(self.argv())
        except OptionError as exc:
            self._show_error(str(exc))
            return None
        self.error.value = ""
        self.run = run
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.view.launch(run)
        self._done_thread = threading.Thread(target=self._when_done, args=(run,), daemon=True)
        self._done_thread.start()
        return run

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run and its display are finished; False if ``timeout`` passed."""
        if self._done_thread is None:
            return True
        self._done_thread.join(timeout)
        return not self._done_thread.is_alive()

    def stop(self) -> None:
        """Stop the run (press twice to skip clean-up)."""
        if self.run is not None:
            self.run.request_stop()

    def _when_done(self, run: Any) -> None:
        run.wait()
        self.view.join(10)
        self.start_button.disabled, self.stop_button.disabled = False, True
        if run.error:
            self._show_error(run.error)

    def _show_error(self, message: str) -> None:
        self.error.value = f'<span style="color:#c00">{html.escape(message)}</span>'


def panel(**values: Any) -> Panel:
    """``hubstress_ext.panel(scenario="stress-test", sandbox=True, count=20)``: a new panel."""
    return Panel(**values)
