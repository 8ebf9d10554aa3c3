"""Scenario files: a run's options in TOML, the same keys as the flags, for a colleague to rerun.

    # class.toml: hubstress session-test --file class.toml
    scenario = "session-test"
    count = 300
    arrival = "poisson"
    rate = "60/min"
    session = "2-5m"
    code = "@cell.py"

Keys are option names, with dashes or underscores (``expect-output`` or ``expect_output``);
text values go through the option's own parser, so ``"2-5m"`` means what ``--session 2-5m``
means. Numbers, booleans and lists are taken as TOML types them. A key no option has is an
error naming the known ones; ``scenario``, if present, must match the scenario being run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hubstress_ext.engine import registry
from hubstress_ext.engine.spec import find_option, options_of
from hubstress_ext.errors import OptionError


def read_file(path: str | Path) -> dict[str, Any]:
    try:
        with open(Path(path).expanduser(), "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise OptionError(f"scenario file {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"scenario file {path}: not valid TOML ({exc})") from None


def file_values(path: str | Path, scenario: str | None = None) -> tuple[str, dict[str, Any]]:
    """(scenario, typed option values) from a scenario file; ``scenario`` is what the caller runs."""
    data = read_file(path)
    named = data.pop("scenario", None)
    if named is not None and scenario is not None and named != scenario:
        raise OptionError(f"scenario file {path} is for {named!r}, not {scenario!r}")
    name = scenario or named or registry.DEFAULT_SCENARIO
    opts = {o.name: o for o in options_of(registry.scenario(name).options_type)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        opt = find_option(registry.scenario(name).options_type, key)
        if opt is None:
            raise OptionError(
                f"scenario file {path}: {key!r} is not an option of {name} (known: {', '.join(sorted(opts))})"
            )
        if isinstance(value, str):
            value = opt.parse(value)  # a text option's parse gives the text back
        elif isinstance(value, int) and not isinstance(value, bool) and opt.kind is float:
            value = float(value)
        values[opt.name] = value
    return name, values


def run_from_file(path: str | Path, /, **overrides: Any) -> Any:
    """A run (not started) of the scenario a file describes; keyword values override the file's."""
    name, values = file_values(path)
    return registry.make_run(name, **{**values, **overrides})
