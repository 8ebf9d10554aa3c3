"""The widget panel: a scenario's options as a form, Start / Stop, the live view, ``panel.run``.

The form is made from the registry: the chosen scenario's options declared with
``panel=True``, with their help as tooltips, choices as drop-downs and the form's starting
values (``Opt.panel_value``: the defaults, except that a fresh panel targets the sandbox hub
with simulated servers, so Start works with no hub of your own). Start builds the run with
``make_run`` like every front end; errors show under the form, naming the form's fields.

"find capacity" is a mode, not a scenario of the drop-down: ticked, the form keeps the chosen
scenario's fields (what each probe runs, its SLO the search's) and adds the search's own
(``vary``, ``precision``, ``budget``); Start makes ``make_run("capacity", scenario=..., probe=...)``,
the same run as ``hubstress capacity SCENARIO ...``.
"""

from __future__ import annotations

import html
import re
import threading
from typing import Any

import ipywidgets as widgets

from hubstress_ext.engine import registry
from hubstress_ext.engine.spec import Opt, needs_met, options_of
from hubstress_ext.errors import OptionError
from hubstress_ext.notebook.live import LiveView

STYLE = {"description_width": "120px"}
FIRST = ("endpoint", "url", "token", "count")  # then the rest in declaration order
CAPACITY = "capacity"
SEARCH_OWN = ("slo", "save", "junit", "verbose")  # a probe's fields that go to the search instead
_FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def _widget(opt: Opt, value: Any) -> widgets.ValueWidget:
    """The form field of one option."""
    common = {"description": opt.label, "style": STYLE, "tooltip": opt.spec.help}
    if opt.kind is bool:
        w: widgets.ValueWidget = widgets.Checkbox(value=bool(value), indent=False, description=opt.label)
        w.tooltip = opt.spec.help
        return w
    if opt.spec.choices:
        return widgets.Dropdown(options=list(opt.spec.choices), value=value, **common)
    if opt.spec.secret:  # as wide as the endpoint: its placeholder names the variable in full
        wide = widgets.Layout(width="480px")
        return widgets.Password(value=value or "", placeholder=_placeholder(opt), layout=wide, **common)
    if opt.kind is int and not opt.optional:
        return widgets.IntText(value=value, **common)
    if opt.kind is float and not opt.optional:
        return widgets.FloatText(value=value, **common)
    text = ",".join(map(str, value)) if isinstance(value, list) else ("" if value is None else str(value))
    layout = widgets.Layout(width="480px") if opt.kind is str else widgets.Layout()
    return widgets.Text(value=text, placeholder=_placeholder(opt), layout=layout, **common)


def _placeholder(opt: Opt) -> str:
    if opt.spec.env:
        return f"blank: ${opt.spec.env} from the environment"
    if opt.default is None:
        return "not set"
    return ""


class Panel:
    def __init__(
        self, scenario: str = registry.DEFAULT_SCENARIO, find_capacity: bool = False, **values: Any
    ) -> None:
        registry.scenario(scenario)  # an unknown name is an error here, not at Start
        if scenario == CAPACITY:
            raise TypeError(
                "capacity is the panel's 'find capacity' mode: "
                "panel(scenario='session-test', find_capacity=True, vary='rate=10/min..600/min', slo=...)"
            )
        from hubstress_ext.capacity.options import NOT_PROBED
        from hubstress_ext.notebook.display import register_current

        register_current()
        self._not_probed = NOT_PROBED
        self.scenario = widgets.Dropdown(
            options=[n for n in registry.names() if n != CAPACITY],
            value=scenario,
            description="scenario",
            style=STYLE,
        )
        self.find_capacity = widgets.Checkbox(
            value=bool(find_capacity), indent=False, description="find capacity"
        )
        self.find_capacity.tooltip = (
            "search for the most load within the SLO: each probe is one run of this scenario, "
            "with vary's option at one value"
        )
        self.fields: dict[str, widgets.ValueWidget] = {}
        self.form = widgets.VBox()
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.error = widgets.HTML()
        self.error.add_class("hubstress-error")
        self.view = LiveView()
        self.run: Any = None
        self._done_thread: threading.Thread | None = None
        # values that are objects, not text (a notebook's Dask Client): field name -> (shown, object);
        # kept across scenario changes, used while the field still shows them
        self._objects: dict[str, tuple[str, Any]] = {}
        self._build_form(values)
        self.scenario.observe(lambda change: self._build_form({}), names="value")
        self.find_capacity.observe(lambda change: self._build_form(self._typed()), names="value")
        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        controls = widgets.VBox(
            [
                widgets.HBox([self.scenario, self.find_capacity]),
                self.form,
                widgets.HBox([self.start_button, self.stop_button]),
                self.error,
            ]
        )
        self.widget = widgets.VBox([controls, self.view.widget])
        self.widget.add_class("hubstress-panel")

    @property
    def searching(self) -> bool:
        """The 'find capacity' mode is on (and the scenario is one a search can probe)."""
        return bool(self.find_capacity.value) and self.scenario.value not in self._not_probed

    def _opts(self) -> list[Opt]:
        opts = [o for o in options_of(registry.scenario(self.scenario.value).options_type) if o.spec.panel]
        if self.searching:
            names = {o.name for o in opts}
            search = options_of(registry.scenario(CAPACITY).options_type)
            opts += [o for o in search if o.spec.panel and o.name not in names]
        return opts

    def _typed(self) -> dict[str, Any]:
        """The form's fields as they are typed now, for a form rebuilt around them."""
        keep = {o.name for o in self._opts()}
        typed = {name: w.value for name, w in self.fields.items() if name in keep}
        return {name: value for name, value in typed.items() if value not in ("", None)}

    def _build_form(self, values: dict[str, Any]) -> None:
        """The chosen scenario's fields; ``values`` override their starting values."""
        opts = self._opts()
        unknown = sorted(set(values) - {o.name for o in opts})
        if unknown:
            names = ", ".join(o.name for o in opts)
            raise TypeError(
                f"panel() has no field {unknown[0]!r} for {self.scenario.value} (fields: {names})"
            )
        for opt in opts:
            value = values.get(opt.name)
            checked = opt.spec.normalize(value) if value is not None and opt.spec.normalize else value
            if checked is not None and opt.kind is str and not isinstance(checked, str | list):
                self._objects[opt.name] = (str(checked), value)
        shown = {name: text for name, (text, _obj) in self._objects.items()}
        self.find_capacity.disabled = self.scenario.value in self._not_probed
        self.fields = {o.name: _widget(o, shown.get(o.name, values.get(o.name, o.panel_value))) for o in opts}
        rows: list[widgets.Widget] = []
        if "sandbox" in self.fields:  # where the run goes first: the sandbox, or a hub of yours
            rows.append(widgets.HBox([self.fields["sandbox"], self.fields["sandbox_spawner"]]))
        placed = {"sandbox", "sandbox_spawner"}
        ordered = sorted(opts, key=lambda o: FIRST.index(o.name) if o.name in FIRST else len(FIRST))
        rows += [self.fields[o.name] for o in ordered if o.kind is not bool and o.name not in placed]
        switches = [self.fields[o.name] for o in ordered if o.kind is bool and o.name not in placed]
        if switches:
            rows.append(widgets.HBox(switches))
        self.form.children = tuple(rows)
        if hasattr(self, "error"):
            self.error.value = ""

    def __getattr__(self, name: str) -> Any:
        """``panel.count`` is the form's count field (``panel.count.value = 3``)."""
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(f"panel has no field {name!r}")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def values(self) -> dict[str, Any]:
        """The form as typed option values (blank optional fields left to their defaults)."""
        out: dict[str, Any] = {}
        for opt in self._opts():
            value = self.fields[opt.name].value
            held = self._objects.get(opt.name)
            if held is not None and value == held[0]:  # still the object it was given
                out[opt.name] = held[1]
                continue
            if isinstance(value, str):
                if not value.strip():
                    continue  # blank: the option's default (or its environment variable)
                value = opt.parse(value) if opt.kind is not str or opt.spec.parse else value.strip()
            out[opt.name] = value
        # a field that needs a switch that is off (sandbox servers without the sandbox) is not sent
        return {k: v for k, v in out.items() if needs_met(self._opt(k), out)}

    def _opt(self, name: str) -> Opt:
        return next(o for o in self._opts() if o.name == name)

    def start(self) -> Any:
        """Validate the form and start the run; problems show under the form."""
        if self.run is not None and not self.run.done:
            self._show_error("a run is going: stop it first")
            return None
        try:
            values = self.values()
            if "url" in self.fields and not values.get("url"):
                example = "http://127.0.0.1:8765/hubstress/batch"
                raise OptionError(f"{self.scenario.value} needs the endpoint URL, e.g. {example}")
            run = self._make(values)
        except OptionError as exc:
            self._show_error(self._in_form_words(str(exc)))
            return None
        self.error.value = ""
        self.run = run
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.view.launch(run)
        self._done_thread = threading.Thread(target=self._when_done, args=(run,), daemon=True)
        self._done_thread.start()
        return run

    def _make(self, values: dict[str, Any]) -> Any:
        """The run the form describes: the scenario's, or (find capacity) a search of its probes."""
        if not self.searching:
            return registry.make_run(self.scenario.value, **values)
        search_fields = {o.name for o in options_of(registry.scenario(CAPACITY).options_type) if o.spec.panel}
        own = {k: v for k, v in values.items() if k in search_fields or k in SEARCH_OWN}
        probe = {k: v for k, v in values.items() if k not in own}
        if not own.get("vary"):
            raise OptionError(
                "find capacity needs 'vary': the option to search over, e.g. rate=10/min..600/min"
            )
        from hubstress_ext.capacity.knob import parse_vary

        knob = parse_vary(own["vary"], registry.scenario(self.scenario.value).options_type)
        probe.pop(knob.name, None)  # its field's value is what the search varies
        return registry.make_run(CAPACITY, scenario=self.scenario.value, probe=probe, **own)

    def _in_form_words(self, message: str) -> str:
        """Name the form's fields where the message names CLI flags: '--count' -> 'count'."""
        labels = {o.flag: o.label for o in self._opts()}
        return _FLAG.sub(lambda m: f"'{labels[m.group()]}'" if m.group() in labels else m.group(), message)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run and its display are finished; False if ``timeout`` passed."""
        if self._done_thread is None:
            return True
        self._done_thread.join(timeout)
        return not self._done_thread.is_alive()

    def stop(self) -> None:
        """Stop the run (press twice to skip clean-up)."""
        if self.run is not None:
            message = self.run.interrupt(purge="%hubstress purge")
            if message:
                self.error.value = html.escape(message, quote=False)

    def _when_done(self, run: Any) -> None:
        run.wait()
        self.view.join(10)
        saved = run.finish()
        self.start_button.disabled, self.stop_button.disabled = False, True
        if run.error:
            self._show_error(run.error)
        elif saved is not None:
            self.error.value = html.escape(f"saved run to {saved}", quote=False)

    def _show_error(self, message: str) -> None:
        self.error.value = f'<span style="color:#c00">{html.escape(message, quote=False)}</span>'


def panel(**values: Any) -> Panel:
    """``hubstress_ext.panel(scenario="stress-test", count=20)``: a new panel (sandbox + sim)."""
    return Panel(**values)
