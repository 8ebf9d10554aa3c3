"""From the probes to the answer: the capacity and its uncertainty, the binding rule, the
bottleneck at the boundary, and the shape of the boundary (a knee or a cliff).

Computed from the probes table alone (one row per probe), so a saved search reports what the
live one did.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from hubstress_ext.capacity.knob import Knob
from hubstress_ext.engine import slo

CLIFF_SHARE = 0.5  # the figure was within half its limit one probe below where it broke


def pass_column(rule: str) -> str:
    """The probes table's column saying whether ``rule`` held at a probe."""
    return f"ok {rule}"


@dataclass
class Answer:
    outcome: str  # bracket (found), above (HIGH passed), below (LOW failed), open (unresolved)
    feasible: float | None
    infeasible: float | None
    estimate: float | None
    plus_minus: float | None  # relative half-width of the bracket around the estimate
    probes: int
    seconds: float
    grid: Any = None
    binding: str | None = None  # the rule that broke at the infeasible side
    binding_line: str | None = None
    bottleneck: str | None = None  # the bottleneck line of the infeasible probe
    shape: str | None = None  # knee | cliff
    shape_line: str | None = None
    lower_bound: bool = False  # the load generator was the limit at the boundary
    reason: str | None = None  # why an open search stopped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def resolved(self) -> bool:
        return self.outcome in ("bracket", "above")

    @property
    def value(self) -> float | None:
        """The capacity to act on: the estimate, or the bound the search reached."""
        if self.outcome == "bracket":
            return self.estimate
        if self.outcome == "above":
            return self.feasible
        return None


def _rows_at(probes: pd.DataFrame, value: float | None) -> pd.DataFrame:
    if value is None or probes.empty:
        return probes.iloc[0:0]
    return probes[probes["value"] == value]


def _figure_at(rows: pd.DataFrame, figure: str) -> float | None:
    if figure not in rows:
        return None
    values = pd.to_numeric(rows[figure], errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def answer_of(
    probes: pd.DataFrame,
    rules: list[str],
    knob: Knob,
    outcome: str,
    feasible: float | None,
    infeasible: float | None,
    seconds: float,
    grid: Any = None,
    reason: str | None = None,
) -> Answer:
    """The answer of one search (one grid value) from its probes."""
    a = Answer(outcome, feasible, infeasible, None, None, len(probes), seconds, grid, reason=reason)
    lo_rows, hi_rows = _rows_at(probes, feasible), _rows_at(probes, infeasible)
    failed = hi_rows[~hi_rows["passed"].astype(bool)] if len(hi_rows) else hi_rows
    first_fail = failed.iloc[0] if len(failed) else None
    if first_fail is not None:
        a.bottleneck = first_fail.get("bottleneck") or None
        a.lower_bound = bool(first_fail.get("generator_limited", False))
        rule = next((r for r in rules if not bool(first_fail.get(pass_column(r), True))), None)
        if rule is None:
            why = first_fail.get("error") or f"run {first_fail.get('status')}"
            a.binding_line = f"the probe itself did not succeed at {knob.show(infeasible)}: {why}"
        else:
            a.binding = rule
            base_rows = _rows_at(probes, float(probes["value"].min()))
            a.binding_line, a.shape, a.shape_line = _binding(
                rule, knob, base_rows, lo_rows, hi_rows, feasible, infeasible
            )
    a.estimate = _estimate(
        a.binding if a.shape == "knee" else None, lo_rows, hi_rows, feasible, infeasible, knob
    )
    if a.estimate and feasible is not None and infeasible is not None:
        a.plus_minus = max(a.estimate - feasible, infeasible - a.estimate) / a.estimate
    return a


def _binding(
    rule_text: str,
    knob: Knob,
    base_rows: pd.DataFrame,
    lo_rows: pd.DataFrame,
    hi_rows: pd.DataFrame,
    lo: float | None,
    hi: float | None,
) -> tuple[str, str | None, str | None]:
    """The binding rule's line, and the shape: how far the figure had moved toward its limit
    at the feasible side, counted from the lightest load probed (``base_rows``). Less than
    ``CLIFF_SHARE`` of the way: it jumped between neighbouring probes (a cliff: a limit such
    as a spawn throttle kicked in); more: it rose with the load (a knee: a queue filling)."""
    rule = slo.parse_rule(rule_text)
    at_hi, at_lo = _figure_at(hi_rows, rule.figure), _figure_at(lo_rows, rule.figure)
    base = _figure_at(base_rows, rule.figure)

    def shown(v: float | None) -> str:
        return slo.show_value(rule, v) if v is not None else "not measured"

    line = f"{rule.text}: {shown(at_hi)} at {knob.show(hi)} (infeasible)"
    if lo is not None:
        line += f", {shown(at_lo)} at {knob.show(lo)} (feasible)"
    if at_hi is None or at_lo is None:
        return line, None, None
    if base is None or base_rows.equals(lo_rows) or base == rule.value:
        base = 0.0  # nothing lighter was probed: the way from zero
    share = (at_lo - base) / (rule.value - base) if rule.value != base else 1.0
    if share < CLIFF_SHARE:
        shape = (
            f"a cliff: {rule.figure} jumped from {shown(at_lo)} at {knob.show(lo)} to {shown(at_hi)} "
            f"at {knob.show(hi)} (it was {shown(base)} at the lightest load probed)"
        )
        return line, "cliff", shape
    shape = (
        f"a knee: {rule.figure} rose from {shown(base)} at the lightest load probed to {shown(at_lo)} "
        f"at {knob.show(lo)}, and broke at {knob.show(hi)}"
    )
    return line, "knee", shape


def _estimate(
    rule_text: str | None,
    lo_rows: pd.DataFrame,
    hi_rows: pd.DataFrame,
    lo: float | None,
    hi: float | None,
    knob: Knob,
) -> float | None:
    """Where the binding figure crosses its limit, interpolated between the bracket's sides (a
    knee: the figure moves with the load); the feasible side where that means nothing (a cliff:
    nothing past the last load that passed is known to pass; a failed probe; a figure that did
    not move)."""
    if lo is None or hi is None:
        return None
    middle = lo
    if rule_text is not None:
        rule = slo.parse_rule(rule_text)
        f_lo, f_hi = _figure_at(lo_rows, rule.figure), _figure_at(hi_rows, rule.figure)
        if f_lo is not None and f_hi is not None and f_hi != f_lo:
            share = (rule.value - f_lo) / (f_hi - f_lo)
            if 0.0 <= share <= 1.0:
                middle = lo + share * (hi - lo)
    if knob.integer:
        middle = float(min(max(math.floor(middle), lo), hi - 1 if hi - 1 >= lo else lo))
    return middle


def answer_line(a: Answer, knob: Knob, grid_name: str | None = None) -> str:
    """``capacity 143/min (feasible 140/min, infeasible 150/min, ±4 %, 9 probes, 6 m 12 s)``;
    with a grid, ``capacity at batch_size=8: ...``; a knob with no unit of its own (workers, a
    count) is named: ``capacity workers=193 (...)``."""
    took = f"{a.probes} probes, {_duration(a.seconds)}"
    where = "" if a.grid is None else f" at {grid_name}={a.grid}:" if grid_name else f" at {a.grid}:"
    subject = f"capacity{where}" + ("" if knob.unit else f" {knob.name}")  # "capacity workers"
    equals = " " if knob.unit else "="
    bound = " (a lower bound: the load generator was the limit at the boundary)" if a.lower_bound else ""
    if a.outcome == "bracket":
        pm = f", ±{a.plus_minus * 100:.0f} %" if a.plus_minus is not None else ""
        if a.plus_minus is not None and a.estimate == a.feasible:  # the boundary lies above
            pm = f", the boundary within +{a.plus_minus * 100:.0f} %"
        return (
            f"{subject}{equals}{knob.show(a.estimate)} (feasible {knob.show(a.feasible)}, infeasible "
            f"{knob.show(a.infeasible)}{pm}, {took}){bound}"
        )
    if a.outcome == "above":
        return (
            f"{subject} >= {knob.show(a.feasible)}: every probe passed up to the highest asked "
            f"({took}); a bound, not the boundary: raise HIGH in --vary"
        )
    if a.outcome == "below":
        return (
            f"{subject} < {knob.show(a.infeasible)}: the lowest probe already failed ({took}); "
            "lower LOW in --vary"
        )
    best = f"feasible {knob.show(a.feasible)}, infeasible {knob.show(a.infeasible)}"
    stopped = a.reason or "the search stopped"
    return f"unresolved{where.rstrip(':')}: {stopped}; the best bracket so far: {best} ({took})"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} m {seconds % 60} s"
