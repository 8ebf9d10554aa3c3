"""``%hubstress`` / ``%%hubstress``: the CLI's scenarios from a notebook cell.

    %load_ext hubstress_ext
    run = %hubstress stress-test --sandbox --count 20 --batch-size 5

    %%hubstress stress-test
    count = 200
    batch_size = 20

The line magic takes the CLI's subcommands and flags (``%hubstress --count 100`` alone is a
spawn storm), plus ``--background`` (return at once; ``run.stop()``, ``run.wait()``),
``panel`` (the widget panel) and ``report DIR``. IPython expands ``$name`` and ``{expr}``
before we see the line, so ``--token $my_token`` works and the token is never echoed: the
input history keeps ``$my_token``. ``--dask client`` names a notebook variable holding a
``distributed.Client`` (or give ``local:2``, ``tcp://…``, ``gateway``). Hub endpoint and
token default to the environment, then to notebook variables named
``JUPYTERHUB_ENDPOINT`` / ``JUPYTERHUB_API_TOKEN``.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from hubstress_ext.engine import registry
from hubstress_ext.engine.argv import parse_scenario_argv
from hubstress_ext.engine.spec import find_option, options_of
from hubstress_ext.errors import OptionError
from hubstress_ext.hub.options import ENV_ENDPOINT, ENV_HUB_TOKEN

_COMMENT = re.compile(r"(?:^|\s)#")  # a comment starts a line or follows a space: '#' inside a value stays


class CellError(OptionError):
    """A ``%%hubstress`` body problem; the message names the line."""


def cell_values(
    first_line: str, body: str, namespace: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any], dict[str, int]]:
    """A ``%%hubstress`` cell -> (scenario, typed option values, {option flag: line number}).

    The first line is the line magic's (scenario and flags); body lines are ``key = value``
    (``batch_size`` or ``batch-size``), read by each option's own parser; booleans take
    true/false; ``$name`` takes a notebook variable as it is; blank lines and ``# comments``
    are skipped. Every problem is reported with its line number (the magic line is line 1).
    """
    try:
        head = shlex.split(first_line)
    except ValueError as exc:
        raise CellError(f"line 1: cannot split the options: {exc}") from None
    try:
        name, values = parse_scenario_argv(head)
    except OptionError as exc:
        raise CellError(f"line 1: {exc}") from None
    options = {o.name: o for o in options_of(registry.scenario(name).options_type)}
    lines: dict[str, int] = {}
    namespace = namespace or {}
    for number, raw in enumerate(body.splitlines(), start=2):
        text = _COMMENT.split(raw, 1)[0].strip()
        if not text:
            continue
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise CellError(f"line {number}: expected 'option = value' (got {raw.strip()!r})")
        opt = find_option(registry.scenario(name).options_type, key)
        if opt is None:
            raise CellError(
                f"line {number}: unknown option {key!r} for {name}; known: {', '.join(sorted(options))}"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            typed: Any = _parsed(opt, value[1:-1], number, key)
        elif value.startswith("$"):
            var = value[1:]
            if var not in namespace:
                raise CellError(f"line {number}: {key}: no notebook variable named {var!r}")
            typed = namespace[var]
            typed = _parsed(opt, typed, number, key) if isinstance(typed, str) else typed
        else:
            typed = _parsed(opt, value, number, key)
        values[opt.name] = typed
        lines[opt.flag] = number
    return name, values, lines


def _parsed(opt: Any, text: str, number: int, key: str) -> Any:
    try:
        return opt.parse(text)
    except OptionError as exc:
        raise CellError(f"line {number}: {str(exc).replace(opt.flag, key, 1)}") from None


def _locate(message: str, lines: dict[str, int]) -> str:
    """Prefix an option error with the line that set that option, when we can tell."""
    for flag, number in sorted(lines.items(), key=lambda kv: -len(kv[0])):
        if flag in message:
            return f"line {number}: {message}"
    return message


@magics_class
class HubstressMagics(Magics):
    @line_cell_magic
    def hubstress(self, line: str, cell: str | None = None) -> Any:
        try:
            return self._hubstress(line, cell)
        except OptionError as exc:
            print(f"hubstress: error: {exc}", file=sys.stderr)
        except SystemExit:  # -h / --help printed the usage
            pass
        return None

    def _hubstress(self, line: str, cell: str | None) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise OptionError(f"cannot split the options: {exc}") from None
        background = "--background" in words
        words = [w for w in words if w != "--background"]
        if words[:1] == ["panel"]:
            from hubstress_ext.notebook.panel import panel

            return panel()
        if words[:1] == ["report"]:
            return self._report(words[1:])
        lines: dict[str, int] = {}
        if cell is not None:
            namespace = self.shell.user_ns if self.shell else {}
            name, values, lines = cell_values(shlex.join(words), cell, namespace)
        else:
            name, values = parse_scenario_argv(words)
        values = self._from_namespace(name, values)
        try:
            run = registry.make_run(name, **values)
        except OptionError as exc:
            raise OptionError(_locate(str(exc), lines)) from None
        return follow(run, background=background)

    def _from_namespace(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        """Hub endpoint/token from notebook variables when neither options nor environment give them."""
        ns = self.shell.user_ns if self.shell else {}
        known = {o.name for o in options_of(registry.scenario(name).options_type)}
        dask = values.get("dask")
        if isinstance(dask, str) and dask.isidentifier() and dask in ns:  # --dask client: a variable
            values = {**values, "dask": ns[dask]}
        if "endpoint" not in known or values.get("sandbox"):
            return values
        out = dict(values)
        for field, env in (("endpoint", ENV_ENDPOINT), ("token", ENV_HUB_TOKEN)):
            if not out.get(field) and not os.environ.get(env) and isinstance(ns.get(env), str):
                out[field] = ns[env]
        return out

    def _report(self, args: list[str]) -> Any:
        from hubstress_ext.engine.saved import load_run

        if len(args) != 1:
            raise OptionError("report takes one saved run directory: %hubstress report DIR")
        try:
            return load_run(args[0])
        except (FileNotFoundError, ValueError) as exc:
            raise OptionError(str(exc)) from None


def follow(run: Any, background: bool = False) -> Any:
    """Start ``run`` with a live view; wait for it unless ``background``. Returns the run.

    If the same cell then displays the run (``run = %hubstress …`` and ``run``, or the magic
    as the cell's last line), the run's own display carries the final table and chart and the
    live view keeps only its status line and bars (``notebook.display``): shown once.

    Interrupting the kernel (the stop button, or Ctrl-C in a terminal) once stops the run and
    lets it clean up; twice leaves at once (``purge`` finds what is left).
    """
    from hubstress_ext.notebook.display import live_view_of, show_static
    from hubstress_ext.notebook.live import LiveView

    view = LiveView()
    display(view.widget)
    path = view.launch(run)
    live_view_of(run, view)
    if path is not None:
        print(f"logging to {path}", file=sys.stderr)
    if background:
        _save_when_done(run, view, wait=False)
        return run
    while True:
        try:
            if run.wait(0.2):
                break
        except KeyboardInterrupt:
            message = run.interrupt(purge="%hubstress purge")
            if message:
                print(message, file=sys.stderr)
    _save_when_done(run, view, wait=True)
    show_static(run, view)
    if run.error:
        print(f"hubstress: error: {run.error}", file=sys.stderr)
    return run


def _save_when_done(run: Any, view: Any, wait: bool) -> None:
    def finish() -> None:
        run.wait()
        view.join(10)
        saved = run.finish()
        if saved is not None:
            print(f"saved run to {saved}")

    if wait:
        finish()
    else:
        threading.Thread(target=finish, daemon=True, name="hubstress-save").start()
