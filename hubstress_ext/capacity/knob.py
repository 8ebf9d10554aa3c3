"""``--vary KNOB=LOW..HIGH`` and ``--grid KEY=V1,V2,...``: what a capacity search changes.

A knob is a numeric option of the probed scenario, read with that option's own parser (so
``rate=10/min..600/min`` means what ``--rate 10/min`` means); the answer is shown in the unit
the user wrote LOW in. Whole-number options (a count, workers) are searched in whole numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from hubstress_ext.engine.spec import Opt, find_option, options_of
from hubstress_ext.errors import OptionError

_VARY = re.compile(r"\s*([a-z][a-z0-9_-]*)\s*=\s*(.+?)\s*\.\.\s*(.+?)\s*")
_UNIT = re.compile(r".*?/\s*([a-z]+)\s*$")
PER = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True)
class Knob:
    """What is varied, between which values, and how a value is shown."""

    name: str  # the scenario's option name (``rate``)
    low: float  # in the option's own unit (a rate: per second)
    high: float
    integer: bool
    unit: str = ""  # "min" when LOW was written as 10/min: values are shown per minute
    text: str = ""  # as given

    def show(self, value: float | None) -> str:
        """``2.5`` (per second) -> ``150/min`` when the user wrote per minute."""
        if value is None:
            return "-"
        if self.integer:
            return f"{int(round(value))}"
        scaled = value * PER[self.unit] if self.unit else value
        number = f"{scaled:.3g}" if scaled < 100 else f"{scaled:.0f}"
        return f"{number}/{self.unit}" if self.unit else number

    def value(self, v: float) -> int | float:
        """The option's value for a probe at ``v``."""
        return int(round(v)) if self.integer else float(v)

    @property
    def label(self) -> str:
        return f"{self.name} (/{self.unit})" if self.unit else self.name

    def scaled(self, v: float) -> float:
        """``v`` in the unit shown (a chart's axis)."""
        return v * PER[self.unit] if self.unit and not self.integer else v


def numeric_option(options_type: type, name: str, what: str) -> Opt:
    opt = find_option(options_type, name)
    if opt is None or opt.kind not in (int, float):
        numeric = sorted(o.name for o in options_of(options_type) if o.kind in (int, float))
        raise OptionError(
            f"{what}: {name!r} is not a numeric option of the scenario; one of: {', '.join(numeric)}"
        )
    return opt


def parse_vary(text: str, options_type: type) -> Knob:
    """``rate=10/min..600/min`` -> a Knob over the scenario's ``rate`` option (checked)."""
    m = _VARY.fullmatch(str(text))
    if not m:
        raise OptionError(
            f"--vary takes KNOB=LOW..HIGH, e.g. rate=10/min..600/min or count=10..2000 (got {text!r})"
        )
    name, low_text, high_text = m.groups()
    opt = numeric_option(options_type, name.replace("-", "_"), "--vary")
    low, high = (_parse(opt, t) for t in (low_text, high_text))
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0:
        raise OptionError(f"--vary {opt.name}: LOW must be a positive number (got {low_text!r})")
    if high <= low:
        raise OptionError(f"--vary {opt.name}: HIGH must be above LOW (got {low_text}..{high_text})")
    unit = _UNIT.match(low_text.lower())
    shown = unit.group(1) if unit and unit.group(1) in PER and PER[unit.group(1)] != 1.0 else ""
    return Knob(opt.name, float(low), float(high), opt.kind is int, shown, str(text).strip())


def _parse(opt: Opt, text: str) -> float:
    try:
        value = opt.parse(text)
    except OptionError as exc:
        raise OptionError(f"--vary {opt.name}: {exc}") from None
    if value is None:
        raise OptionError(f"--vary {opt.name}: {text!r} is not a number")
    try:
        opt.check(value)
    except OptionError as exc:
        raise OptionError(f"--vary {opt.name}: {exc}") from None
    return float(value)


@dataclass(frozen=True)
class Grid:
    """An outer dimension: one search per value (a scenario option, or a setting of the target
    such as the endpoint's batch size, set between probes)."""

    name: str
    values: tuple[Any, ...]
    text: str = ""


def parse_grid(text: str | None) -> Grid | None:
    if not text:
        return None
    name, sep, rest = str(text).partition("=")
    name = name.strip().replace("-", "_")
    words = [w.strip() for w in rest.split(",") if w.strip()]
    if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or not words:
        raise OptionError(f"--grid takes KEY=V1,V2,..., e.g. batch_size=1,8,32 (got {text!r})")
    values: list[Any] = []
    for w in words:
        try:
            values.append(int(w))
        except ValueError:
            try:
                values.append(float(w))
            except ValueError:
                values.append(w)
    if len(set(values)) != len(values):
        raise OptionError(f"--grid {name}: a value is repeated (got {text!r})")
    return Grid(name, tuple(values), str(text).strip())
