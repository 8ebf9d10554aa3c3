"""CapacityRun: a run made of runs. Each probe is one ordinary run of the probed scenario (its
own options, the knob at one value, the SLO); the search (``capacity.search``) picks the next
value from the verdicts so far, and the answer (``capacity.answer``) is read from the probes
table, so a saved search reports what the live one did.

What the probes share is set up once (a ``--sandbox`` hub: each probe deletes its users, so
the next starts from an empty hub); a ``--grid`` over a setting of the target (the endpoint's
batch size) is set between searches and put back at the end. A stop (Ctrl-C, the panel's
button) and the budget's end stop the probe in flight, which cleans up as any run does; the
answer is then the best bracket so far, marked unresolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from hubstress_ext.capacity.answer import Answer, answer_line, answer_of, pass_column
from hubstress_ext.capacity.knob import Knob
from hubstress_ext.capacity.options import MIN_COUNT, CapacityOptions
from hubstress_ext.capacity.search import Search
from hubstress_ext.engine import slo
from hubstress_ext.engine.record import RunRecord
from hubstress_ext.engine.run import Run, verdict_lines
from hubstress_ext.engine.spec import build, secret_values
from hubstress_ext.errors import RunError

log = logging.getLogger("hubstress")

PHASE = "probes"
FAILURE_FIGURES = ("failures", "errors")  # a rule on these says how many failed users are fine
PROBES_DIR = "probes"


def probes_needed(low: float, high: float, precision: float, repeats: int | None) -> int:
    """About how many probes a search over LOW..HIGH takes: doubling to the boundary (at
    worst to HIGH), bisecting the last doubling to the precision, repeats at both sides."""
    bracket = math.ceil(math.log2(high / low))
    bisect = math.ceil(math.log2(math.log(2) / math.log1p(precision))) if precision < 1 else 0
    return bracket + max(bisect, 0) + 2 * (repeats or 2) - 2


def knob_of(meta: dict[str, Any]) -> Knob:
    return Knob(**meta["knob"])


class CapacityRun(Run):
    """find the most load within the SLO (--vary KNOB=LOW..HIGH), and what binds it"""

    scenario = "capacity"
    options_type = CapacityOptions
    options: CapacityOptions
    # what picks the next probe: a subclass swaps in another strategy with the same probes
    # (benchmarks/capacity.py: a linear scan and plain bisection beside this search)
    search_type: type[Search] = Search
    help_epilog = """\
Every option after SCENARIO that capacity does not know is the probed scenario's own, unchanged
(`hubstress SCENARIO --help` lists them). Each probe is one run of it with --vary's option at one
value, from a clean state; the answer is the most load that passed the --slo, the rule that broke
just above it, and the bottleneck there.

examples:
  hubstress capacity session-test --sandbox --sandbox-spawner sim --spawn-limit 5 \\
      --vary rate=10/min..600/min --slo 'ready.p90<10s, failures<1%' --precision 10% --budget 15m
  hubstress capacity stress-test --sandbox --sandbox-spawner sim --vary count=10..2000 \\
      --slo 'ready.p90<30s'
  hubstress capacity bench http://127.0.0.1:8888/hubstress/batch --vary rate=100..20000 \\
      --slo 'p99<50ms, errors<0.1%' --grid batch_size=1,8,32,64
  hubstress capacity ... --expect-capacity 120/min --junit capacity.xml   # a CI check

exit status: 0 resolved (and --expect-capacity met), 1 unresolved or below it, 130 Ctrl-C."""

    def __init__(self, options: CapacityOptions) -> None:
        super().__init__(options)
        self.probe_class = options.run_class
        self.cleans_up = self.probe_class.cleans_up  # type: ignore[misc]  # what its probes do
        self.optional_figures = self.probe_class.optional_figures  # type: ignore[misc]
        self.knob: Knob = options.knob
        self.rules: list[str] = list(options.slo)
        self.rows: list[dict[str, Any]] = []
        self.runs: list[Run] = []  # every probe's own run, in order (``probe(i)``)
        self.references: list[dict[str, Any]] = []
        self.answers: list[Answer] = []
        self._current: Run | None = None
        self._shared: Any = None
        self._cluster: Any = None  # --dask: the probes' one cluster, opened once for the search
        self._stop_reason: str | None = None
        self._first = 0  # the first row of the search in progress (one per grid value)
        self.meta["probed"] = options.scenario
        self.meta["knob"] = dataclasses.asdict(self.knob)
        self.meta["rules"] = self.rules
        self.meta["expected"] = options.expected
        if options.derives_count:
            self.meta["probe_window"] = options.probe_window
        if options.grid_spec is not None:
            self.meta["grid"] = {"name": options.grid_spec.name, "values": list(options.grid_spec.values)}

    # -- the search -----------------------------------------------------------------------

    async def main(self) -> None:
        opts = self.options
        grid = opts.grid_spec
        values = list(grid.values) if grid is not None else [None]
        external = grid is not None and grid.name in self.probe_class.external_settings
        deadline = time.monotonic() + opts.budget
        self.progress.begin(PHASE, 0)
        async with (
            self.probe_class.shared_target(opts.template) as shared,
            self.cluster_for(opts.template) as cluster,
        ):
            self._shared = shared
            self._cluster = cluster
            original: Any = None
            changed = False
            try:
                for g in values:
                    if external and not self._stop_reason:
                        assert grid is not None
                        before = await self.probe_class.set_external(opts.template, grid.name, g)
                        if not changed:
                            original, changed = before, True
                    await self._search_one(g, deadline, external)
            finally:
                self._current = None
                if changed and original is not None:
                    assert grid is not None
                    with contextlib.suppress(Exception):  # the endpoint went away: said by the answers
                        await self.probe_class.set_external(opts.template, grid.name, original)
        self.meta["answers"] = [a.as_dict() for a in self.answers]
        best = best_answer(self.answers)
        self.meta["best"] = best.as_dict() if best is not None else None
        self.meta["capacity"] = self.capacity
        self.status = "interrupted" if self.stopping else "finished"

    async def _search_one(self, grid_value: Any, deadline: float, external: bool) -> None:
        opts = self.options
        knob = self.knob
        search = self.search_type(knob.low, knob.high, opts.precision, knob.integer, opts.repeats)
        started = time.monotonic()
        first = self._first = len(self.rows)
        if not self._stop_reason:
            await self._reference(grid_value, external, deadline)
        while not self._stop_reason:
            value = search.next_value()
            if value is None:
                break
            reason = self._why_not_another(deadline)
            if reason:
                self._stop_reason = reason
                break
            row = await self._probe(value, grid_value, search.phase, deadline, external)
            if row["counted"]:
                search.record(value, bool(row["passed"]))
                if len(self.rows) == 1:
                    self._warn_if_budget_is_short(row["seconds"], deadline)
        rows = pd.DataFrame([r for r in self.rows[first:] if r["counted"]])
        if rows.empty:
            rows = pd.DataFrame(columns=["value", "passed"])
        outcome = search.outcome  # "open" while the bracket is wide or its repeats are due
        answer = answer_of(
            rows,
            self.rules,
            knob,
            outcome,
            search.feasible,
            search.infeasible,
            time.monotonic() - started,
            grid=grid_value,
            reason=self._stop_reason if outcome == "open" else None,
        )
        answer.probes = int(len(self.rows) - first)
        self.answers.append(answer)
        self.meta["noisy_values"] = self.meta.get("noisy_values", 0) + search.noisy

    def _why_not_another(self, deadline: float) -> str | None:
        """Why the search stops before its next probe (None: it goes on)."""
        opts = self.options
        if self.stopping:
            return "stopped before it was done"
        if len(self.rows) - self._first >= opts.max_probes:
            return f"--max-probes {opts.max_probes} reached" + (
                " at this grid value" if opts.grid_spec else ""
            )
        left = deadline - time.monotonic()
        took = [r["seconds"] for r in self.rows if r["counted"]]
        typical = statistics.median(took) if took else 0.0
        if left <= 0 or (typical and left < typical):
            return (
                f"the --budget of {_span(opts.budget)} ran out ({max(left, 0):.0f} s left, a probe takes "
                f"~{typical:.0f} s)"
            )
        return None

    def _warn_if_budget_is_short(self, seconds: float, deadline: float) -> None:
        """Said once, after the first probe: a search that cannot fit its budget is told early,
        with what to change, not found out after 15 minutes."""
        opts = self.options
        knob = self.knob
        fits = int(max(deadline - time.monotonic(), 0) // max(seconds, 1e-3))
        needed = probes_needed(knob.low, knob.high, opts.precision, opts.repeats)
        if fits >= needed - 1:
            return
        hint = "raise --budget"
        if opts.derives_count:
            window = _span(opts.probe_window)
            hint = f"shorten --probe-window (now {window}) or the probe's --session, or {hint}"
        log.warning(
            "a probe took %.0f s: the --budget of %s fits ~%d more, and a resolved answer over %s "
            "at --precision %g%% takes ~%d; %s (or it ends unresolved, with the best bracket so far)",
            seconds,
            _span(opts.budget),
            fits,
            knob.text,
            opts.precision * 100,
            needed,
            hint,
        )

    async def _reference(self, grid_value: Any, external: bool, deadline: float) -> None:
        """The scenario's reference load at this grid value (bench: the saturated throughput)."""
        opts = self.options
        reference = self.probe_class.reference_load(opts.base_values(), self.knob.name)
        if reference is None:
            return
        loads, figure, what = reference
        for values in loads:
            values = {**values, "slo": []}
            if opts.grid_spec is not None and not external:
                values[opts.grid_spec.name] = grid_value
            run = self.probe_class(build(self.probe_class.options_type, values).resolve())
            await self._run_bounded(run, deadline)
            measured = run.figures().get(figure) if run.status == "finished" else None
            self.references.append(
                {
                    "grid": grid_value,
                    "what": what,
                    "figure": figure,
                    "workers": values.get("workers"),
                    "value": measured,
                    "status": run.status,
                    "error": run.error,
                }
            )
            if measured is None:
                log.warning("the reference load (%s) measured nothing: %s", what, run.error or run.status)
            if self._stop_reason or self.stopping or run.status == "failed":
                return  # a target that cannot be reached once is not tried with more workers

    async def _probe(
        self, value: float, grid_value: Any, phase: str, deadline: float, external: bool
    ) -> dict:
        opts = self.options
        run = self.probe_class(opts.probe_options(value, None if external else grid_value))
        index = len(self.runs)
        self.runs.append(run)
        t0 = time.monotonic()
        # the probe in flight's own phases, under one name each (the next probe's overwrite them)
        run.progress.subscribe(
            lambda p: self.progress.update(f"probe {p.name}", p.done, p.failed, total=p.total)
        )
        cut_short = await self._run_bounded(run, deadline)
        row = self._row(index, run, value, grid_value, phase, time.monotonic() - t0, cut_short)
        if index == 0 and run.status == "failed":
            raise RunError(f"the first probe ({self.knob.name}={self.knob.show(value)}) failed: {run.error}")
        self.rows.append(row)
        self.progress.update(PHASE, len(self.rows), sum(1 for r in self.rows if r["passed"] is False))
        log.info("probe %d: %s=%s %s", index, self.knob.name, self.knob.show(value), row["verdict"])
        return row

    async def _run_bounded(self, run: Run, deadline: float) -> bool:
        """Run one probe on this loop; stop it at the budget's end. True: it was cut short."""
        self._current = run
        if self._shared is not None:
            run.adopt(self._shared)
        if self._cluster is not None:
            run.lend_cluster(self._cluster)
        task = asyncio.ensure_future(run.run_async())
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=max(deadline - time.monotonic(), 0.0))
            return bool(self.stopping)
        except TimeoutError:
            self._stop_reason = f"the --budget of {_span(self.options.budget)} ran out during a probe"
            run.request_stop()
            await task  # it cleans up as any stopped run does
            return True
        finally:
            self._current = None

    def _row(
        self, index: int, run: Run, value: float, grid_value: Any, phase: str, seconds: float, cut_short: bool
    ) -> dict[str, Any]:
        figures = run.figures() if run.status != "failed" else {}
        outcomes = {o.rule.text: o for o in run.outcomes}
        ran = run.status in ("finished", "degraded")
        rule_ok = slo.passed(run.outcomes)
        # without a rule on failures, a probe whose units of work failed does not pass (the
        # latency of the users who made it cannot speak for the ones who did not)
        counts_failures = any(slo.parse_rule(r).figure in FAILURE_FIGURES for r in self.rules)
        behind = run.fell_behind() if ran else None
        passed = ran and not cut_short and rule_ok and not behind and (counts_failures or run.succeeded())
        counted = not cut_short and run.status not in ("interrupted", "aborted")
        row: dict[str, Any] = {
            "probe": index,
            "grid": grid_value,
            "value": float(value),
            self.knob.name: self.knob.show(value),
            "phase": phase,
            "status": run.status,
            "passed": passed if counted else None,
            "counted": counted,
        }
        for text in self.rules:
            figure = slo.parse_rule(text).figure
            row[figure] = figures.get(figure)
            outcome = outcomes.get(text)
            row[pass_column(text)] = outcome.passed if outcome is not None else None
        row["bottleneck"] = run.bottleneck_line() if run.status != "failed" else None
        row["generator_limited"] = bool(run.generator_limited)
        row["error"] = run.error or ""
        if ran and rule_ok and behind and counted:
            row["error"] = behind
        elif ran and rule_ok and not passed and counted:
            row["error"] = "some of its work failed (no --slo rule on failures allows any)"
        row["seconds"] = round(seconds, 2)
        row["verdict"] = "cut short" if not counted else ("pass" if passed else "FAIL")
        return row

    def on_stop(self) -> None:
        if self._stop_reason is None:
            self._stop_reason = "stopped before it was done"
        current = self._current
        if current is not None:
            current.request_stop()  # each press, so a second one leaves as it does for a run

    # -- what it found ------------------------------------------------------------------------

    def succeeded(self) -> bool:
        return bool(self.answers) and all(a.resolved for a in self.answers)

    @property
    def capacity(self) -> float | None:
        """The most load found within the SLO (the best grid value's), in the knob's own unit
        (a rate: per second); None while the search has no answer."""
        best = best_answer(self.answers)
        return best.value if best is not None else None

    @property
    def probes(self) -> pd.DataFrame:
        """One row per probe: the knob's value, each rule's figure and pass/fail, the verdict,
        the bottleneck line, how long it took."""
        return pd.DataFrame(self.rows)

    @property
    def df(self) -> pd.DataFrame:
        return self.probes

    def probe(self, i: int) -> Run:
        """The ``i``-th probe's own run (``.df``, ``.summary()``, ``.report()``)."""
        return self.runs[i]

    @property
    def target_is_throwaway(self) -> bool:
        return bool(getattr(self.options.template, "sandbox", False))

    @property
    def secrets(self) -> list[str]:
        return secret_values(self.options.template)

    def frame_sources(self) -> dict[str, Callable[[], pd.DataFrame]]:
        return {"probes": lambda: self.probes, "references": lambda: pd.DataFrame(self.references)}

    def _finish_verdict(self) -> None:
        """The SLO's rules at the capacity (the feasible side's probes), and --expect-capacity."""
        if "answers" not in self.meta:
            self.meta["answers"] = [a.as_dict() for a in self.answers]
        self.outcomes = at_capacity(self.record())
        self.meta["verdict"] = slo.verdict_lines(
            self.outcomes, self.status == "finished" and self.succeeded()
        )
        path = self.options.junit
        if path:
            run_ok = self.status == "finished" and self.succeeded()
            note = self.error or ("" if run_ok else "the search did not resolve its bracket")
            seconds = (self.finished_at or time.time()) - (self.started_at or time.time())
            try:
                Path(path).expanduser().write_text(
                    slo.junit_xml("hubstress.capacity", self.outcomes, run_ok, note, seconds)
                )
            except OSError as exc:
                log.warning("could not write the JUnit file %s: %s", path, exc.strerror or exc)

    def save(self, directory: str | Path) -> Path:
        """The search (``probes.csv``, ``meta.json``) and each probe's own run under
        ``probes/NNN/``, so ``load_run(path).probe(i)`` reopens one."""
        from hubstress_ext.results.store import save_run

        path = super().save(directory)
        for i, run in enumerate(self.runs):
            save_run(run, path / PROBES_DIR / f"{i:03d}")
        return path

    def report_json(self) -> dict[str, Any]:
        return {
            **super().report_json(),
            "capacity": self.capacity,
            "answers": self.meta.get("answers", []),
            "references": self.references,
            "probes": self.probes.to_dict("records"),
            "report": self.report(),  # the text the terminal shows, for a script that logs it
        }

    # -- the report, live or saved ------------------------------------------------------------

    @classmethod
    def summary_of(cls, record: RunRecord) -> pd.DataFrame:
        probes = record.frame("probes")
        if probes.empty:
            return probes
        rules = record.meta.get("rules", [])
        keep = ["probe", "grid", knob_of(record.meta).name, "phase", "verdict"]
        keep += [slo.parse_rule(r).figure for r in rules] + ["seconds", "error"]
        out = probes[[c for c in dict.fromkeys(keep) if c in probes]].copy()
        if "grid" in out and out["grid"].isna().all():
            out = out.drop(columns="grid")
        if "error" in out and not out["error"].fillna("").astype(bool).any():
            out = out.drop(columns="error")
        for text in rules:  # each figure in its rule's unit: p99 in ms where the rule says ms
            rule = slo.parse_rule(text)
            unit, factor = slo.unit_of(rule)
            if rule.figure in out and unit:
                out[f"{rule.figure} ({unit})"] = pd.to_numeric(out.pop(rule.figure), errors="coerce") * factor
        if "seconds" in out:
            out["seconds"] = out.pop("seconds")
        if "error" in out:
            out["why"] = out.pop("error")
        return out.set_index("probe")

    @classmethod
    def report_of(cls, record: RunRecord) -> str:
        meta = record.meta
        lines = [f"hubstress capacity {meta.get('probed', '?')}: {record.status}"]
        if record.error:
            lines.append(f"error: {record.error}")
        if "knob" not in meta:
            return "\n".join(lines)
        knob = knob_of(meta)
        rules = meta.get("rules", [])
        lines.append(f"varied {knob.text}; SLO {', '.join(rules)}")
        window = meta.get("probe_window")
        if window:
            lines.append(
                f"each probe: {_span(window)} of arrivals at its rate (--count = rate x {_span(window)}, "
                f"at least {MIN_COUNT}; --probe-window)"
            )
        summary = cls.summary_of(record)
        if not summary.empty:
            from hubstress_ext.results.summary import format_table

            lines += ["", format_table(summary), ""]
        else:
            lines.append("no probe ran")
        references = record.frame("references")
        for a in answers_of(record):
            lines.append(answer_line(a, knob, (meta.get("grid") or {}).get("name")))
            if a.binding_line:
                lines.append(f"  binding rule: {a.binding_line}")
            if a.bottleneck:
                lines.append(f"  bottleneck at the boundary: {a.bottleneck}")
            if a.lower_bound:
                lines.append("  the load generator was the limit there: the capacity is a lower bound")
            if a.shape_line:
                lines.append(f"  shape: {a.shape_line}")
            lines += reference_lines(references, a, knob)
        best = meta.get("best")
        if meta.get("grid") and best:
            value = Answer(**best).value
            named = "" if knob.unit else f"{knob.name}="
            found = f"{named}{knob.show(value)}" if value is not None else "no capacity found"
            lines.append(f"best: {meta['grid']['name']}={best['grid']}: {found}")
        noisy = meta.get("noisy_values")
        if noisy:
            lines.append(
                f"noise: {noisy} value(s) whose probes disagreed (decided by the majority of repeats)"
            )
        return "\n".join(lines + verdict_lines(record))

    def chart_data(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            "record_meta": dict(self.meta),
            "answers": [a.as_dict() for a in self.answers],
            "rules": [
                {"figure": r.figure, "value": r.value, "text": r.text, "factor": slo.unit_of(r)[1]}
                for r in (slo.parse_rule(t) for t in self.meta.get("rules", []))
            ],
        }

    @staticmethod
    def figure(data: Any) -> Any:
        from hubstress_ext.results import charts

        return charts.capacity_figure(
            data["probes"], data["record_meta"], data["answers"], data.get("rules", [])
        )


def answers_of(record: RunRecord) -> list[Answer]:
    return [Answer(**a) for a in record.meta.get("answers", [])]


def best_answer(answers: list[Answer]) -> Answer | None:
    """The grid value with the most load within the SLO (resolved ones first)."""
    found = [a for a in answers if a.value is not None]
    if not found:
        return answers[0] if len(answers) == 1 else None
    return max(found, key=lambda a: (a.resolved, a.value))


def reference_lines(references: pd.DataFrame, a: Answer, knob: Knob) -> list[str]:
    if references.empty:
        return []
    rows = references[references["grid"].astype(str) == str(a.grid)] if a.grid is not None else references
    measured = pd.to_numeric(rows["value"], errors="coerce").dropna()
    what = rows["what"].iloc[0] if len(rows) else "reference"
    if measured.empty:
        why = "; ".join(str(r.get("error") or r.get("status")) for _, r in rows.iterrows())
        return [f"  {what}: not measured ({why})"]
    best = float(measured.max())
    each = ""
    if "workers" in rows and len(measured) > 1:  # measured keeps the index of its rows
        each = (
            " ("
            + ", ".join(f"{int(rows.at[i, 'workers'])} workers {knob.show(v)}" for i, v in measured.items())
            + ")"
        )
    share = f"; the capacity is {a.value / best * 100:.0f} % of it" if a.value else ""
    return [f"  {what}: {knob.show(best)}{share}{each}"]


def at_capacity(record: RunRecord) -> list[slo.Outcome]:
    """Each SLO rule at the capacity (the median figure of the feasible side's probes), and
    ``capacity>=X`` for --expect-capacity: what JUnit gets, one test case each."""
    meta = record.meta
    rules = meta.get("rules", [])
    probes = record.frame("probes")
    answers = answers_of(record)
    best = best_answer(answers)
    out: list[slo.Outcome] = []
    feasible = best.feasible if best is not None else None
    rows = pd.DataFrame()
    if feasible is not None and not probes.empty:
        rows = probes[(probes["value"] == feasible) & probes["counted"].astype(bool)]
        if best is not None and best.grid is not None and "grid" in rows:
            rows = rows[rows["grid"].astype(str) == str(best.grid)]
    for text in rules:
        rule = slo.parse_rule(text)
        values = pd.to_numeric(rows[rule.figure], errors="coerce").dropna() if rule.figure in rows else []
        if len(values) == 0:
            out.append(slo.Outcome(rule, None, False, "no probe passed: there is no capacity to hold it at"))
            continue
        actual = float(values.median())
        holds = rule.holds(actual)
        where = knob_of(meta).show(feasible) if "knob" in meta else str(feasible)
        out.append(
            slo.Outcome(rule, actual, holds, f"{slo.show_value(rule, actual)} at {where} (the feasible side)")
        )
    expected = record.option("expect_capacity")
    if expected is not None and "knob" in meta:
        knob = knob_of(meta)
        value = best.value if best is not None else None
        floor = meta.get("expected")
        rule = slo.Rule(
            "capacity", ">=", float(floor) if floor is not None else math.nan, f"capacity>={expected}"
        )
        if value is None:
            out.append(slo.Outcome(rule, None, False, "no capacity found"))
        else:
            holds = floor is not None and value >= float(floor)
            out.append(
                slo.Outcome(rule, value, holds, f"{knob.show(value)} ({'holds' if holds else 'below it'})")
            )
    return out


def _span(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds} s"
        if seconds < 120
        else f"{seconds // 60} m" + (f" {seconds % 60} s" if seconds % 60 else "")
    )
