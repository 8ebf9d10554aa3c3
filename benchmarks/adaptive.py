"""The adaptive mode (``latency_slo_ms``) against the best fixed batch size, every figure from one run.

The MLP model (its cost per item falls with the batch size). Steps:
1. capacity at batch size 1 (closed loop, 64 workers);
2. ``hubstress sweep`` over batch sizes x workers with ``--max-p99-ms SLO``: the best fixed cell
   whose p99 meets the SLO;
3. the adaptive mode (``latency_slo_ms=SLO``, batch sizes up to 64) under the same closed-loop
   load as that best cell: its throughput against the cell's (target: within 10 %), its p99;
4. open loop, Poisson, at 1.5x the batch-size-1 capacity (batch size 1 cannot keep up): fixed
   batch size 1 against the adaptive mode: p99 against the SLO and goodput.

    python benchmarks/adaptive.py [--seconds 8] [--slo-ms 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from batching import free_port, pin_self, start, stop  # noqa: E402
from overload import bench, configure, stats  # noqa: E402

from hubstress_ext.loadgen.options import SweepOptions  # noqa: E402
from hubstress_ext.loadgen.sweep import SweepRun  # noqa: E402

SIZES = [1, 4, 16, 64]
WORKERS = [16, 64]


def measure(seconds: float, slo_ms: float) -> dict:
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
        configure(base, batch_size=64, latency_slo_ms=slo_ms, max_delay_ms=0)
        workers = int(best["workers"]) if best else 16
        bench(base, 2, workers=workers)  # let the batch size settle
        out["adaptive_closed"] = bench(base, seconds, workers=workers)
        out["adaptive_closed"]["effective"] = stats(base)["effective"]
        rate = 1.5 * out["bs1_capacity"]
        out["open_rate"] = rate
        out["adaptive_open"] = bench(base, seconds, rate=rate)
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
            f"{best['batch_size']}: {best['qps']:,.0f} req/s, p99 {best['p99_ms']:.1f} ms"
        )
        print(
            f"  adaptive, same {best['workers']} workers: {ad['qps']:,.0f} req/s, p99 {ad['p99_ms']:.1f} ms, "
            f"chose batch size {ad['effective']['batch_size']} -> {ad['qps'] / best['qps']:.2f} of the best "
            f"fixed cell (target >= 0.90)"
        )
    print(f"  open loop at {r['open_rate']:,.0f}/s (1.5x batch size 1 capacity):")
    for name, x in (("fixed batch size 1", bs1), ("adaptive", ado)):
        print(
            f"    {name:<19} goodput {x['qps']:,.0f}/s, p99 {x['p99_ms']:.1f} ms "
            f"(meets {slo:g} ms: {x['p99_ms'] <= slo}), failed {x['failed']:,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--slo-ms", type=float, default=50.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.seconds, args.slo_ms)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
