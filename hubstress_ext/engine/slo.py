"""Pass/fail rules (``--slo``), evaluated on a finished run's figures, and their JUnit XML.

One small grammar, the same in the CLI, the magic, the panel and a scenario file:

    RULE  := FIGURE OP NUMBER [UNIT]        ready.p90<60s   failures<1%   execute.p99<=2s
    RULES := RULE ("," | ";") RULE ...      hub.event_loop.p99<0.5s, hub.throttled<1
    OP    := < | <= | > | >=
    UNIT  := s | ms | %                     (none: the figure's own unit, e.g. a count)

Figures are a run's own (``Run.figures()``): latencies in seconds (``ms`` is converted), rates
as fractions (``1%`` is 0.01), counts as numbers. A rule on a figure the scenario declares
optional (``Run.optional_figures``: a hub run's ``hub.*``, ``proxy.*``, ``servers.*``, from
the hub's metrics and the sandbox's processes) is skipped, with a note, when the run could not
see it: the verdict then rests on the client's figures. Any other figure the run lacks is a
failed rule naming the known ones (a typo must not pass).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from hubstress_ext.errors import OptionError

_RULE = re.compile(r"\s*([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*(ms|s|%)?\s*")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_SCALE = {"ms": 0.001, "s": 1.0, "%": 0.01, None: 1.0}


@dataclass(frozen=True)
class Rule:
    figure: str
    op: str
    value: float  # in the figure's unit (seconds, a fraction, a count)
    text: str  # as written (normalized spacing): what reports and JUnit show

    def holds(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    actual: float | None
    passed: bool | None  # None: not evaluated (the figure is not available for this run)
    note: str = ""

    def line(self) -> str:
        if self.passed is None:
            return f"  skipped  {self.rule.text}: {self.note}"
        word = "ok     " if self.passed else "FAILED "
        return f"  {word}  {self.rule.text}: {self.note}"


def parse_rule(text: str) -> Rule:
    m = _RULE.fullmatch(text)
    if not m:
        raise OptionError(
            f"--slo: cannot read {text.strip()!r}; a rule is FIGURE OP NUMBER[UNIT], "
            "e.g. ready.p90<60s, failures<1%, execute.p99<=500ms"
        )
    figure, op, number, unit = m.groups()
    value = float(number) * _SCALE[unit]
    return Rule(figure, op, value, f"{figure}{op}{number}{unit or ''}")


def parse_rules(text: str) -> list[str]:
    """``'ready.p90<60s, failures<1%'`` -> the rules' normalized texts (checked)."""
    parts = [p for p in re.split(r"[,;]", str(text)) if p.strip()]
    return [parse_rule(p).text for p in parts]


def normalize(value: object) -> list[str]:
    """The option's value from text, a list of texts (a scenario file), or None."""
    if value is None:
        return []
    if isinstance(value, str):
        return parse_rules(value)
    if isinstance(value, list | tuple):
        return [r for item in value for r in parse_rules(str(item))]
    raise OptionError(f"--slo takes rules as text such as 'ready.p90<60s' (got {value!r})")


def evaluate(rules: list[str], figures: dict[str, float], optional: tuple[str, ...] = ()) -> list[Outcome]:
    """Each rule against the run's figures; ``optional``: prefixes of figures the run may lack."""
    out = []
    for text in rules:
        rule = parse_rule(text)
        actual = figures.get(rule.figure)
        if actual is None or (isinstance(actual, float) and math.isnan(actual)):
            if optional and rule.figure.startswith(optional):
                out.append(Outcome(rule, None, None, "not available for this run"))
            else:
                known = ", ".join(
                    sorted(k for k in figures if not (optional and k.startswith(optional)))[:40]
                )
                out.append(Outcome(rule, None, False, f"no such figure in this run (known: {known})"))
            continue
        passed = rule.holds(actual)
        out.append(
            Outcome(rule, actual, passed, f"{show_value(rule, actual)} ({'holds' if passed else 'broken'})")
        )
    return out


_UNIT_FACTOR = {"ms": 1000.0, "s": 1.0, "%": 100.0}


def unit_of(rule: Rule) -> tuple[str, float]:
    """The unit the rule was written in and the factor from the figure's own unit to it
    (``p99<50ms``: ``("ms", 1000.0)``; no unit: ``("", 1.0)``)."""
    unit = re.search(r"(ms|s|%)$", rule.text)
    return (unit.group(1), _UNIT_FACTOR[unit.group(1)]) if unit else ("", 1.0)


def show_value(rule: Rule, actual: float) -> str:
    """A figure in the unit its rule was written in (``ready.p90<10s``: seconds)."""
    unit, factor = unit_of(rule)
    if unit == "ms":
        return f"{actual * factor:.1f}ms"
    if unit == "%":
        return f"{actual * factor:.2f}%"
    if unit == "s":
        return f"{actual:.3f}s"
    return f"{actual:g}"


def passed(outcomes: list[Outcome]) -> bool:
    return all(o.passed is not False for o in outcomes)


def verdict_lines(outcomes: list[Outcome], run_ok: bool) -> list[str]:
    """The report's last lines: PASS or FAIL, and which rule failed."""
    ok = run_ok and passed(outcomes)
    failed = [o.rule.text for o in outcomes if o.passed is False]
    head = "PASS" if ok else "FAIL"
    if failed:
        head += f": {', '.join(failed)}"
    elif not run_ok:
        head += ": the run itself did not succeed"
    return ["", f"verdict: {head}", *(o.line() for o in outcomes)]


def junit_xml(suite: str, outcomes: list[Outcome], run_ok: bool, run_note: str, seconds: float) -> str:
    """JUnit XML: one test case for the run itself, one per rule (skipped ones marked)."""
    cases = []
    run_case = f'  <testcase classname={quoteattr(suite)} name="run completed" time="{seconds:.3f}">'
    if not run_ok:
        run_case += f"\n    <failure message={quoteattr(run_note)}>{escape(run_note)}</failure>\n  "
    cases.append(run_case + "</testcase>")
    for o in outcomes:
        case = f"  <testcase classname={quoteattr(suite)} name={quoteattr(o.rule.text)}>"
        if o.passed is False:
            case += f"\n    <failure message={quoteattr(o.note)}>{escape(o.note)}</failure>\n  "
        elif o.passed is None:
            case += f"\n    <skipped message={quoteattr(o.note)}/>\n  "
        cases.append(case + "</testcase>")
    failures = sum(o.passed is False for o in outcomes) + (not run_ok)
    skipped = sum(o.passed is None for o in outcomes)
    head = (
        f'<testsuite name={quoteattr(suite)} tests="{len(outcomes) + 1}" failures="{failures}" '
        f'errors="0" skipped="{skipped}" time="{seconds:.3f}">'
    )
    return '<?xml version="1.0" encoding="utf-8"?>\n' + "\n".join([head, *cases, "</testsuite>"]) + "\n"
