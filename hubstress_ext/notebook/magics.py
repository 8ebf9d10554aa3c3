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
input history keeps ``$my_token``. Hub endpoint and token default to the environment, then to
notebook variables named ``JUPYTERHUB_ENDPOINT`` / ``JUPYTERHUB_API_TOKEN``.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import threading
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from hubstress_ext.engine.options import ENV_ENDPOINT, ENV_TOKEN, OptionError

TRUE = {"true", "yes", "on", "1"}
_COMMENT = re.compile(r"(?:^|\s)#")  # a comment starts a line or follows a space: '#' inside a value stays
FALSE = {"false", "no", "off", "0"}


class CellError(OptionError):
    """A ``%%hubstress`` body problem; the message names the line."""


def _subparser(scenario: str) -> argparse.ArgumentParser:
    from hubstress_ext.cli.main import RUN_COMMANDS, build_parser

    if scenario not in RUN_COMMANDS:
        raise CellError(f"line 1: unknown scenario {scenario!r}; one of: {', '.join(RUN_COMMANDS)}")
    parser = build_parser(raising=True)
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subs.choices[scenario]


def cell_to_argv(
    first_line: str, body: str, namespace: dict[str, Any] | None = None
) -> tuple[list[str], dict]:
    """Turn a ``%%hubstress`` cell into CLI arguments; returns (argv, {option: line number}).

    Body lines are ``key = value`` (``batch_size`` or ``batch-size``); booleans take
    true/false; ``$name`` takes a notebook variable; blank lines and ``# comments`` are
    skipped. Every problem is reported with its line number (the magic line is line 1).
    """
    head = shlex.split(first_line)
    scenario = head[0] if head and not head[0].startswith("-") else "stress-test"
    parser = _subparser(scenario)
    argv = [scenario, *(head[1:] if head and not head[0].startswith("-") else head)]
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
        flag = "--" + key.replace("_", "-")
        action = parser._option_string_actions.get(flag)
        if action is None:
            known = sorted(
                s[2:].replace("-", "_")
                for s in parser._option_string_actions
                if s.startswith("--") and s != "--help"
            )
            raise CellError(
                f"line {number}: unknown option {key!r} for {scenario}; known: {', '.join(known)}"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value.startswith("$"):
            name = value[1:]
            if name not in namespace:
                raise CellError(f"line {number}: {key}: no notebook variable named {name!r}")
            value = str(namespace[name])
        lines[flag] = number
        if action.nargs == 0:  # a switch such as --sandbox
            if value.lower() in TRUE:
                argv.append(flag)
            elif value.lower() not in FALSE:
                raise CellError(f"line {number}: {key} is a switch: true or false (got {value!r})")
            continue
        if action.type is not None:
            try:
                action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                kind = {int: "a whole number", float: "a number"}.get(action.type, "a valid value")
                detail = f" ({exc})" if kind == "a valid value" else ""
                raise CellError(f"line {number}: {key} must be {kind} (got {value!r}){detail}") from None
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise CellError(f"line {number}: {key} must be one of {choices} (got {value!r})")
        argv += [flag, value]
    return argv, lines


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
        from hubstress_ext.cli.main import run_from_argv

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
            words, lines = cell_to_argv(shlex.join(words), cell, self.shell.user_ns if self.shell else {})
        words = self._from_namespace(words)
        try:
            run = run_from_argv(words)
        except OptionError as exc:
            raise OptionError(_locate(str(exc), lines)) from None
        return follow(run, background=background, displayed=cell is not None or self._value_is_shown())

    def _value_is_shown(self) -> bool:
        """Will IPython display what this line magic returns (the cell's last line, not assigned)?"""
        history = self.shell.user_ns.get("_ih") if self.shell else None
        if not history:
            return False
        lines = [ln for ln in str(history[-1]).strip().splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else ""
        return last.startswith("get_ipython().run_line_magic('hubstress'") and not last.endswith(";")

    def _from_namespace(self, words: list[str]) -> list[str]:
        """Hub endpoint/token from notebook variables when neither flags nor environment give them."""
        ns = self.shell.user_ns if self.shell else {}
        scenario = words[0] if words and not words[0].startswith("-") else "stress-test"
        if scenario in ("bench", "sweep") or "--sandbox" in words:
            return words
        extra = []
        for long, short, env in (("--endpoint", "-e", ENV_ENDPOINT), ("--token", "-t", ENV_TOKEN)):
            given = any(w.split("=", 1)[0] in (long, short) for w in words)
            if not given and not os.environ.get(env) and isinstance(ns.get(env), str):
                extra += [long, ns[env]]
        return [*words, *extra]

    def _report(self, args: list[str]) -> Any:
        from hubstress_ext.results.store import load_run

        if len(args) != 1:
            raise OptionError("report takes one saved run directory: %hubstress report DIR")
        try:
            return load_run(args[0])
        except (FileNotFoundError, ValueError) as exc:
            raise OptionError(str(exc)) from None


def follow(run: Any, background: bool = False, displayed: bool = False) -> Any:
    """Start ``run`` with a live view; wait for it unless ``background``. Returns the run.

    When the returned run is ``displayed`` (the cell's value), its own rich display carries
    the final table and chart, so the live view keeps only its status line and bars.

    Interrupting the kernel (the stop button, or Ctrl-C in a terminal) once stops the run and
    lets it clean up; twice leaves at once (``purge`` finds what is left).
    """
    from hubstress_ext.notebook.live import LiveView

    view = LiveView()
    display(view.widget)
    path = view.launch(run)
    if path is not None:
        print(f"logging to {path}", file=sys.stderr)
    if background:
        _save_when_done(run, view, wait=False)
        return run
    presses = 0
    while True:
        try:
            if run.wait(0.2):
                break
        except KeyboardInterrupt:
            presses += 1
            run.request_stop()
            if presses == 1:
                print(
                    "interrupted: stopping and cleaning up (interrupt again to leave at once)",
                    file=sys.stderr,
                )
            elif presses == 2:
                print("leaving now: `%hubstress purge` removes what is left", file=sys.stderr)
    _save_when_done(run, view, wait=True)
    if run.error:
        print(f"hubstress: error: {run.error}", file=sys.stderr)
    if displayed:
        view.collapse()
    return run


def _save_when_done(run: Any, view: Any, wait: bool) -> None:
    def finish() -> None:
        run.wait()
        view.join(10)
        if run.save_dir and run.status != "failed":
            print(f"saved run to {run.save(run.save_dir)}")

    if wait:
        finish()
    else:
        threading.Thread(target=finish, daemon=True, name="hubstress-save").start()
