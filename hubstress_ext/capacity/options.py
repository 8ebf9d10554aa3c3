"""The options of ``hubstress capacity SCENARIO``: what to vary, the SLO, how precisely, how long.

Everything else on the command line is the probed scenario's own options, unchanged
(``probe_args``: the words the capacity's parser left; ``probe``: the same as values, from
code or a scenario file). They are checked here, once, as the first probe's options, so a
bad value fails before anything starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from hubstress_ext.capacity.knob import Grid, Knob, numeric_option, parse_grid, parse_vary
from hubstress_ext.engine import registry
from hubstress_ext.engine.options import RunOptions
from hubstress_ext.engine.spec import build, find_option, option, options_of, public
from hubstress_ext.errors import OptionError

NOT_PROBED = ("capacity", "purge", "sweep")  # a search over these would mean nothing
OWN = ("slo", "save", "junit", "verbose")  # the search's, not each probe's
MIN_COUNT = 5  # a rate probe's fewest arrivals: fewer cannot show a p90
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*")
_SCALE = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _seconds(flag: str):
    def parse(text: str) -> float:
        m = _DURATION.fullmatch(str(text).lower())
        if not m:
            raise OptionError(
                f"{flag} takes seconds, or a number with s/m/h such as 90s or 15m (got {text!r})"
            )
        return float(m.group(1)) * _SCALE[m.group(2)]

    return parse


def _fraction(text: str) -> float:
    word = str(text).strip()
    try:
        return float(word[:-1]) / 100.0 if word.endswith("%") else float(word)
    except ValueError:
        raise OptionError(f"--precision takes a share such as 10% or 0.1 (got {text!r})") from None


@dataclass
class CapacityOptions(RunOptions):
    scenario: str = option(
        "", "the scenario probed: session-test, stress-test, activity-stress-test, bench", positional=True
    )
    vary: str = option(
        "",
        "the load option to search over and its range, e.g. rate=10/min..600/min, count=10..2000",
        metavar="KNOB=LOW..HIGH",
        panel=True,
    )
    grid: str | None = option(
        None,
        "an outer dimension, one search per value: a scenario option or a setting of the target "
        "(bench: the endpoint's batch_size, set through its config API), e.g. batch_size=1,8,32",
        metavar="KEY=V1,V2,...",
    )
    precision: float = option(
        0.1,
        "stop bisecting when (infeasible - feasible) / feasible is this small (10% or 0.1)",
        parse=_fraction,
        panel=True,
        low=0,
        above=True,
        metavar="SHARE",
    )
    repeats: int | None = option(
        None,
        "probes of each side of the final bracket (default: 2, and 3 where those two disagree)",
        low=1,
    )
    budget: float = option(
        900.0,
        "the whole search's time limit (s/m/h suffixes); when it runs out, the best bracket so far "
        "is reported, unresolved",
        parse=_seconds("--budget"),
        low=0,
        above=True,
        unit="seconds",
        panel=True,
    )
    max_probes: int = option(40, "probes at most in one search (with --grid: at each grid value)", low=1)
    warmup: float = option(
        1.0,
        "seconds of load before each probe's measured part, for scenarios that take a warm-up "
        "(bench); hub scenarios start each probe from an empty hub instead",
        parse=_seconds("--warmup"),
        low=0,
        unit="seconds",
    )
    probe_window: float = option(
        60.0,
        "when --vary is a rate and the probe's --count is not given: seconds of arrivals in each "
        "probe (its count is rate x window, at least 5), so a slow probe does not take 10 minutes",
        parse=_seconds("--probe-window"),
        low=0,
        above=True,
        unit="seconds",
    )
    expect_capacity: str | None = option(
        None, "fail (exit 1) when the capacity found is below this, e.g. 120/min", metavar="VALUE"
    )
    probe: dict[str, Any] = option(
        {}, "the probed scenario's options as values (code, scenario files)", secret=True
    )
    probe_args: list[str] = option(
        [], "the probed scenario's options as command-line words", secret=True, rest=True
    )

    def uses_env(self) -> bool:
        return False  # the probed scenario reads its own environment

    def validate(self) -> None:
        if not self.scenario:
            raise OptionError(
                "capacity needs the scenario to probe, e.g. `hubstress capacity session-test ...`"
            )
        if self.scenario in NOT_PROBED:
            raise OptionError(f"capacity cannot probe {self.scenario!r}: name a load scenario")
        self.run_class = registry.scenario(self.scenario)
        options_type = self.run_class.options_type
        if not self.vary:
            raise OptionError("--vary is required, e.g. --vary rate=10/min..600/min")
        if not self.slo:
            raise OptionError(
                "--slo is required: the capacity is the most load within it, "
                "e.g. --slo 'ready.p90<10s, failures<1%'"
            )
        self.knob: Knob = parse_vary(self.vary, options_type)
        self.grid_spec: Grid | None = parse_grid(self.grid)
        values = dict(self.probe)
        if self.probe_args:
            from hubstress_ext.engine.argv import parse_scenario_argv

            try:
                values.update(parse_scenario_argv([self.scenario, *self.probe_args])[1])
            except OptionError as exc:
                raise OptionError(f"the options of the probed {self.scenario}: {exc}") from None
        for name in values:
            opt = find_option(options_type, name)
            key = opt.name if opt is not None else name
            if key in OWN:
                raise OptionError(
                    f"--{key.replace('_', '-')} belongs to the search: give it to capacity, not to the probe"
                )
            if key == "keep" and values[name]:
                raise OptionError(
                    "--keep would leave each probe's users for the next: every probe starts from an empty hub"
                )
            if key == self.knob.name:
                raise OptionError(
                    f"{opt.flag if opt else name} is what --vary {self.knob.name} changes: leave it out"
                )
        if self.grid_spec is not None:
            self._check_grid(options_type)
        self.probe_values = values
        given = {o.name if (o := find_option(options_type, n)) else n for n in values}
        # a rate with the scenario's default count would make a slow probe last count / rate
        # (100 students at 10/min: 10 minutes); the window keeps each probe as long at any rate
        self.derives_count = (
            self.knob.name == "rate"
            and find_option(options_type, "count") is not None
            and "count" not in given
        )
        self.template = self.probe_options(self.knob.low)  # checked now: nothing starts on a bad value
        self.expected: float | None = None
        if self.expect_capacity is not None:
            opt = numeric_option(options_type, self.knob.name, "--expect-capacity")
            try:
                self.expected = float(opt.parse(str(self.expect_capacity)))
            except OptionError as exc:
                raise OptionError(f"--expect-capacity: {exc}") from None

    def _check_grid(self, options_type: type) -> None:
        grid = self.grid_spec
        assert grid is not None
        if grid.name == self.knob.name:
            raise OptionError(f"--grid {grid.name}: that is the knob --vary changes")
        if find_option(options_type, grid.name) is None and grid.name not in self.run_class.external_settings:
            known = sorted({o.name for o in options_of(options_type)} | set(self.run_class.external_settings))
            raise OptionError(
                f"--grid {grid.name}: not an option or setting of {self.scenario}; one of: {', '.join(known)}"
            )

    def base_values(self) -> dict[str, Any]:
        """The scenario's options as given, with the search's warm-up where the scenario takes
        one: what every probe and every reference load starts from."""
        values = dict(self.probe_values)
        if self.warmup and find_option(self.run_class.options_type, "warmup") is not None:
            values.setdefault("warmup", self.warmup)
        return values

    def probe_options(self, value: float, grid_value: Any = None) -> Any:
        """The options of one probe: the scenario's as given, the knob at ``value``, the SLO."""
        values = {**self.base_values(), self.knob.name: self.knob.value(value), "slo": list(self.slo)}
        if getattr(self, "derives_count", False):
            values["count"] = self.count_at(value)
        grid = self.grid_spec
        if grid is not None and find_option(self.run_class.options_type, grid.name) is not None:
            values[grid.name] = grid_value
        return build(self.run_class.options_type, values).resolve()

    def count_at(self, rate: float) -> int:
        """A rate probe's count when none was given: ``--probe-window`` seconds of arrivals."""
        return max(MIN_COUNT, math.ceil(rate * self.probe_window - 1e-9))

    def public(self) -> dict[str, Any]:
        """The search's options, and the probe's as the probe shows them (its secrets masked)."""
        out = public(self)
        out.pop("probe_args", None)
        template = getattr(self, "template", None)
        out["probe"] = template.public() if template is not None else None
        return out
