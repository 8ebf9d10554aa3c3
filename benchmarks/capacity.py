"""`hubstress capacity`'s search against two others, probe for probe: a naive linear scan at the
same precision, and perf_analyzer-style plain bisection (``--binary-search``).

The three differ only in which load they probe next (``CapacityRun.search_type``); every probe is
the same real ``bench`` run, so probes used and time to answer compare like for like.

1. **Real**: a ``hubstress serve --model device-sim`` endpoint (a batch of n sleeps
   2 + 0.25 n ms) at batch size 8, on CPU 1 (the load generator on CPU 0); ``--vary
   rate=100..20000 --slo 'p99<50ms, errors<0.1%' --precision 10%``, each probe 0.5 s of warm-up
   and 1.5 s measured. Each search runs ``--rounds`` times, alternating, so a drift of the machine
   falls on all three alike; reported: probes, the seconds its probes took, the answer, its
   bracket, against the saturated throughput (closed loop) the search also measured.
2. **Noise** (no I/O): the same three searches against an oracle whose verdict is
   ``value <= C * (1 + e)``, e ~ Normal(0, sigma) drawn per probe, C log-uniform in the range;
   ``--trials`` searches per sigma: the mean probes, how often the answer is within the precision
   of C, and how often it claims more than C (an over-claim is the costly mistake: an operator
   plans a class the hub cannot take).

    python benchmarks/capacity.py [--rounds 2] [--trials 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from endpoints import free_port, pin_self, start, stop  # noqa: E402

from hubstress_ext.capacity.options import CapacityOptions  # noqa: E402
from hubstress_ext.capacity.run import CapacityRun  # noqa: E402
from hubstress_ext.capacity.search import Search  # noqa: E402
from hubstress_ext.engine.spec import build  # noqa: E402

LOW, HIGH, PRECISION = 100.0, 20000.0, 0.10
SLO = ["p99<50ms", "errors<0.1%"]
BATCH = 8
MAX_PROBES = 60  # the scan from 100 needs ~30 at 10 %; a cap so no strategy runs unbounded


class LinearScan(Search):
    """Step up from LOW by (1 + precision) until a probe fails: one probe per value, no repeats.
    The answer is as precise as the search's; it pays one probe per step of the whole range."""

    def next_value(self) -> float | None:
        if self.verdict(self.low) is None:
            self.phase = "bracket"
            return self.low
        if self.infeasible is not None or self.verdict(self.low) is False:
            return None
        top = self.feasible
        assert top is not None
        if top >= self.high:
            return None
        self.phase = "bracket"
        step = top * (1 + self.precision)  # the bracket exactly the precision wide
        return min(float(max(round(step), top + 1)) if self.integer else step, self.high)

    def _repeat_due(self) -> float | None:
        return None


class PlainBisection(Search):
    """perf_analyzer's ``--binary-search``: LOW, then HIGH, then the arithmetic middle of the
    bracket until it is within the precision; one probe per value, no repeats."""

    def next_value(self) -> float | None:
        if self.verdict(self.low) is None:
            self.phase = "bracket"
            return self.low
        if self.verdict(self.low) is False:
            return None
        if self.verdict(self.high) is None:
            self.phase = "bracket"
            return self.high
        if self.verdict(self.high) or self.converged():
            return None
        lo, hi = self.feasible, self.infeasible
        assert lo is not None and hi is not None
        self.phase = "bisect"
        mid = (lo + hi) / 2
        return float(min(max(round(mid), lo + 1), hi - 1)) if self.integer else mid

    def _repeat_due(self) -> float | None:
        return None


STRATEGIES: dict[str, type[Search]] = {
    "hubstress (bracket, bisect, repeats)": Search,
    "linear scan (x1.1 steps)": LinearScan,
    "plain bisection (perf_analyzer)": PlainBisection,
}


def search_run(kind: type[Search], url: str) -> CapacityRun:
    cls = type(f"{kind.__name__}Run", (CapacityRun,), {"search_type": kind})
    values: dict[str, Any] = {
        "scenario": "bench",
        "vary": f"rate={LOW:g}..{HIGH:g}",
        "slo": SLO,
        "precision": PRECISION,
        "warmup": 0.5,
        "budget": 900.0,
        "max_probes": MAX_PROBES,
        "probe_args": [url, "--duration", "1.5"],
    }
    return cls(build(CapacityOptions, values).resolve())


def real(rounds: int) -> dict[str, Any]:
    pin_self()
    port = free_port()
    url = f"http://127.0.0.1:{port}/hubstress/batch"
    cmd = [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(port), "--model", "device-sim"]
    proc = start([*cmd, "--batch-size", str(BATCH), "--max-queue", "10000"], port)
    out: dict[str, list[dict]] = {name: [] for name in STRATEGIES}
    try:
        for r in range(rounds):
            for name, kind in STRATEGIES.items():
                run = search_run(kind, url).execute()
                a = run.answers[0] if run.answers else None
                probes = run.probes
                saturated = [x["value"] for x in run.references if x["value"] is not None]
                row = {
                    "round": r,
                    "status": run.status,
                    "error": run.error,
                    "probes": int(len(probes)),
                    "probe_seconds": round(float(probes["seconds"].sum()), 1) if len(probes) else 0.0,
                    "capacity": run.capacity,
                    "feasible": a.feasible if a else None,
                    "infeasible": a.infeasible if a else None,
                    "resolved": bool(a and a.resolved),
                    "saturated": max(saturated) if saturated else None,
                }
                out[name].append(row)
                print(f"round {r} {name}: {row}", file=sys.stderr, flush=True)
    finally:
        stop(proc)
    return out


def oracle_trials(sigma: float, trials: int, seed: int = 7) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    truths = [math.exp(rng.uniform(math.log(LOW * 2), math.log(HIGH / 2))) for _ in range(trials)]
    out: dict[str, dict[str, float]] = {}
    for name, kind in STRATEGIES.items():
        draw = random.Random(seed + 1)
        probes, within, over, unanswered = [], 0, 0, 0
        for c in truths:
            s = kind(LOW, HIGH, PRECISION)
            while s.probes < MAX_PROBES and (v := s.next_value()) is not None:
                s.record(v, v <= c * (1 + draw.gauss(0, sigma)))
            probes.append(s.probes)
            found = s.feasible
            if found is None:
                unanswered += 1
                continue
            within += abs(found - c) / c <= PRECISION
            over += found > c
        out[name] = {
            "mean_probes": round(statistics.fmean(probes), 1),
            "within_precision": round(within / trials, 3),
            "over_claimed": round(over / trials, 3),
            "no_answer": round(unanswered / trials, 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--skip-real", action="store_true", help="only the noise part (no endpoint)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result: dict[str, Any] = {"range": [LOW, HIGH], "precision": PRECISION, "slo": SLO, "batch_size": BATCH}
    result["noise"] = {str(sigma): oracle_trials(sigma, args.trials) for sigma in (0.0, 0.03, 0.08)}
    if not args.skip_real:
        result["real"] = real(args.rounds)
    print_tables(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


def print_tables(result: dict[str, Any]) -> None:
    if "real" in result:
        print(
            f"real: device-sim at batch size {BATCH}, rate={LOW:g}..{HIGH:g}, "
            f"{', '.join(SLO)}, precision {PRECISION:.0%}"
        )
        print("| search | probes | probe seconds | capacity (req/s) | bracket | saturated (closed loop) |")
        print("|---|---|---|---|---|---|")
        for name, rows in result["real"].items():
            cells = [
                [str(r["probes"]) for r in rows],
                [f"{r['probe_seconds']:.0f}" for r in rows],
                [_num(r["capacity"]) for r in rows],
                [f"{_num(r['feasible'])}-{_num(r['infeasible'])}" for r in rows],
                [_num(r["saturated"]) for r in rows],
            ]
            print(f"| {name} | " + " | ".join(" / ".join(c) for c in cells) + " |")
    print()
    print("noise: the oracle passes a value <= C (1 + e), e ~ N(0, sigma) drawn per probe")
    print("| sigma | search | mean probes | within ±10 % of C | claims more than C |")
    print("|---|---|---|---|---|")
    for sigma, by in result["noise"].items():
        for name, r in by.items():
            print(
                f"| {float(sigma):.0%} | {name} | {r['mean_probes']} | {r['within_precision']:.1%} "
                f"| {r['over_claimed']:.1%} |"
            )


def _num(v: Any) -> str:
    return "-" if v is None else f"{float(v):,.0f}"


if __name__ == "__main__":
    main()
