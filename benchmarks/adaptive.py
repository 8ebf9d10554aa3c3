"""The adaptive mode (``latency_slo_ms``) against the best fixed batch size, every figure from one run.

The MLP model (its cost per item falls with the batch size). Steps:
1. capacity at batch size 1 (closed loop, 64 workers);
2. ``hubstress sweep`` over batch sizes x workers with ``--max-p99-ms SLO``: the best fixed cell
   whose p99 meets the SLO;
3. the adaptive mode (``latency_slo_ms=SLO``, batch sizes up to 64) under the same closed-loop
   load as that best cell, in rounds alternating with the cell itself: its throughput against
   the cell's (target: within 10 %; the median round), its p99;
4. open loop, Poisson, at 1.5x the batch-size-1 capacity (batch size 1 cannot keep up): the
   adaptive mode in rounds (the median p99 against the SLO) and fixed batch size 1 once.

    python benchmarks/adaptive.py [--seconds 8] [--slo-ms 50] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from endpoints import free_port, median_round, pin_self, start, stop  # noqa: E402
from overload import bench, configure, stats  # noqa: E402

from hubstress_ext.loadgen.options import SweepOptions  # noqa: E402
from hubstress_ext.loadgen.sweep import SweepRun  # noqa: E402

SIZES = [1, 4, 16, 64]
WORKERS = [16, 64]


def measure(seconds: float, slo_ms: float, rounds: int = 3) -> dict:
    pin_self()  # the load generator (this process) on CPU 0, the server on CPU 1
    port = free_port()
    base = f"http://127.0.0.1:{port}/hubstress/batch"
    cmd = [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(port), "--model", "mlp"]
    proc = start(
        [*cmd, "--batch-size", "1", "--max-wait-ms", "5", "--max-queue", "10000", "--max-delay-ms", "0"], port
    )
    out: dict = {"slo_ms": slo_ms}
    try:
        bench(base, 2)  # warm-up
        out["bs1_capacity"] = bench(base, seconds / 2)["qps"]
        sweep = SweepRun(
            SweepOptions(
                url=base,
                workers=WORKERS,
                batch_sizes=SIZES,
                duration=seconds / 2,
                warmup=1.0,
                max_p99_ms=slo_ms,
            )
        ).execute()
        out["cells"] = sweep.df[["workers", "batch_size", "qps", "p99_ms"]].to_dict("records")
        best = sweep.best()
        out["best_fixed"] = best
        workers = int(best["workers"]) if best else 16
        # closed loop: the best fixed cell and the adaptive mode in alternating rounds (one
        # round on this shared machine swings by 10 %), the median round's ratio reported
        out["closed_rounds"] = []
        for _ in range(rounds):
            fixed = None
            if best:
                configure(base, batch_size=int(best["batch_size"]), latency_slo_ms=0)
                fixed = bench(base, seconds, workers=workers)
            configure(base, batch_size=64, latency_slo_ms=slo_ms, max_delay_ms=0)
            bench(base, 2, workers=workers)  # let the batch size settle
            adaptive = bench(base, seconds, workers=workers)
            adaptive["effective"] = stats(base)["effective"]
            ratio = adaptive["qps"] / fixed["qps"] if fixed else float("nan")
            out["closed_rounds"].append({"fixed": fixed, "adaptive": adaptive, "ratio": ratio})
        out["adaptive_closed"] = median_round(out["closed_rounds"], key=lambda r: r["ratio"])
        rate = 1.5 * out["bs1_capacity"]
        out["open_rate"] = rate
        opens = [bench(base, seconds, rate=rate) for _ in range(rounds)]  # still adaptive
        out["open_p99_rounds"] = [o["p99_ms"] for o in opens]
        out["adaptive_open"] = median_round(opens, key=lambda o: o["p99_ms"])
        out["adaptive_open"]["effective"] = stats(base)["effective"]
        configure(base, batch_size=1, latency_slo_ms=0, max_delay_ms=1000)
        out["fixed_bs1_open"] = bench(base, seconds, rate=rate)
    finally:
        stop(proc)
    return out


def report(r: dict) -> None:
    slo, best, ad, ado, bs1 = (
        r["slo_ms"],
        r["best_fixed"],
        r["adaptive_closed"],
        r["adaptive_open"],
        r["fixed_bs1_open"],
    )
    print(f"\nadaptive mode, MLP model, latency_slo_ms={slo:g}:")
    print(f"  batch size 1 capacity (closed loop, 64 workers): {r['bs1_capacity']:,.0f} req/s")
    print(
        "  sweep cells (workers, batch size, req/s, p99 ms): "
        + "; ".join(
            f"{c['workers']}/{c['batch_size']}: {c['qps']:,.0f}, {c['p99_ms']:.0f}" for c in r["cells"]
        )
    )
    if best:
        print(
            f"  best fixed cell within p99 <= {slo:g} ms: {best['workers']} workers, batch size "
            f"{best['batch_size']}: {best['qps']:,.0f} req/s, p99 {best['p99_ms']:.1f} ms (in the sweep)"
        )
        fixed, adaptive = ad["fixed"], ad["adaptive"]
        ratios = ", ".join(f"{x['ratio']:.2f}" for x in r["closed_rounds"])
        print(
            f"  alternating rounds, {best['workers']} workers: that cell {fixed['qps']:,.0f} req/s "
            f"(p99 {fixed['p99_ms']:.1f} ms), adaptive {adaptive['qps']:,.0f} req/s (p99 "
            f"{adaptive['p99_ms']:.1f} ms, chose batch size {adaptive['effective']['batch_size']}) -> "
            f"{ad['ratio']:.2f} of the best fixed cell (target >= 0.90); rounds {ratios}, median shown"
        )
    print(f"  open loop at {r['open_rate']:,.0f}/s (1.5x batch size 1 capacity):")
    for name, x in (("fixed batch size 1", bs1), ("adaptive", ado)):
        print(
            f"    {name:<19} goodput {x['qps']:,.0f}/s, p99 {x['p99_ms']:.1f} ms "
            f"(meets {slo:g} ms: {x['p99_ms'] <= slo}), failed {x['failed']:,}"
        )
    p99s = ", ".join(f"{p:.1f}" for p in r["open_p99_rounds"])
    print(f"    adaptive p99 by round: {p99s} ms (the median round is shown)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--slo-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.seconds, args.slo_ms, args.rounds)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
