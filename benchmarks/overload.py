"""The batching endpoint under overload: admission on time, every figure from one run.

For each model: capacity (closed loop, 64 workers), the unloaded p99 (open loop, Poisson, at
0.1x capacity), then open loop Poisson at 0.5x and 2x capacity. Reported: goodput against
capacity, accepted requests' p99 against the unloaded p99 and the deadline, the server-side
time to refuse (arrival to answer, from the endpoint's stats), and the books: what the
client counted against what the server counted once it had settled (accepted = served + timed
out + failed + cancelled; refused = 503s seen; every 200 seen = one served, the server serving
at most the requests the client abandoned unanswered when the load ended besides).

Models:
- ``device-sim`` (the model is the limit, as on a GPU: its time leaves the CPU free);
- ``echo`` (no work: the HTTP stack is the limit; refusing costs about as much as serving,
  so no admission rule can keep goodput at 2x; shown for the record).

    python benchmarks/overload.py [--seconds 10] [--rounds 3] [--models device-sim,echo] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from endpoints import free_port, median_round, pin_self, start, stop  # noqa: E402

from hubstress_ext.loadgen.options import LoadOptions  # noqa: E402
from hubstress_ext.loadgen.run import BenchRun  # noqa: E402

CONFIGS = {
    "device-sim": [
        "--model",
        "device-sim",
        "--batch-size",
        "8",
        "--max-wait-ms",
        "5",
        "--max-delay-ms",
        "15",
    ],
    "echo": ["--model", "echo", "--batch-size", "8", "--max-wait-ms", "5", "--max-delay-ms", "20"],
}


def rounds_for(model: str, rounds: int) -> int:
    """echo misses every target by construction (see above): one round is its record."""
    return 1 if model == "echo" else rounds


COUNTERS = ("accepted", "served", "rejected", "timed_out", "cancelled", "errors")


def stats(base: str) -> dict:
    with urllib.request.urlopen(base + "/stats") as r:
        return json.loads(r.read())


def configure(base: str, **changes: float) -> dict:
    req = urllib.request.Request(base + "/config", json.dumps(changes).encode(), method="PATCH")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def bench(url: str, seconds: float, rate: float | None = None, workers: int = 64) -> dict:
    opts = LoadOptions(
        url=url, duration=seconds, rate=rate, arrival="poisson", workers=workers, seed=int(time.time())
    )
    run = BenchRun(opts.resolve()).execute()
    return dict(run.stats)


def settled(base: str, give_up_s: float = 20.0) -> dict:
    """The endpoint's stats once it has finished what it had read: nothing in flight and the
    counters unchanged for 0.3 s (an overloaded server is still draining when the client ends)."""
    last = stats(base)
    end = time.monotonic() + give_up_s
    while time.monotonic() < end:
        time.sleep(0.3)
        now = stats(base)
        if now["in_flight"] == 0 and all(now[k] == last[k] for k in COUNTERS):
            return now
        last = now
    return last


def phase(base: str, seconds: float, rate: float) -> dict:
    before = stats(base)
    t0 = time.monotonic()
    out = bench(base, seconds, rate)
    wall = time.monotonic() - t0
    after = settled(base)
    server = {k: after[k] - before[k] for k in COUNTERS}
    errors = out["errors"]
    client_busy = errors.get("busy", 0)
    out["server"] = server
    out["server_cpu_pct"] = round((after["cpu_seconds"] - before["cpu_seconds"]) / wall * 100, 1)
    out["refusal_ms"] = after["refusal_ms"]
    out["unread_ms"] = after["unread_ms"]  # the last 10,000 requests' time unread in their sockets
    out["refused_by_reason"] = {
        reason: n - before["refused_by_reason"].get(reason, 0)
        for reason, n in after["refused_by_reason"].items()
        if n - before["refused_by_reason"].get(reason, 0)
    }
    out["refused_at_headers"] = after["refused_at_headers"] - before["refused_at_headers"]
    out["effective"] = after["effective"]
    out["client_timeouts"] = errors.get(
        "timeout", 0
    )  # given up by the client: the server may still serve them
    # Requests still unanswered when the load ended are abandoned by the client ("unfinished");
    # the server may still serve some of them after it left. Every 200 the client saw is one
    # served, every 503 one refused, and nothing is counted twice or lost on either side.
    abandoned = errors.get("unfinished", 0)
    late = out["served_after_client_left"] = server["served"] - out["ok"]
    out["books_agree"] = (
        0 <= late <= abandoned
        and server["rejected"] == client_busy
        and server["accepted"]
        == server["served"] + server["timed_out"] + server["errors"] + server["cancelled"]
        and out["requests"] == out["ok"] + sum(errors.values())
    )
    return out


def one_round(base: str, args: list[str], seconds: float) -> dict:
    # capacity with time-based admission off: what the model sustains with a deep queue
    delay = configure(base, max_delay_ms=0)
    assert delay["max_delay_ms"] == 0
    bench(base, 2)  # warm-up
    capacity = bench(base, max(seconds / 2, 3))["qps"]
    configure(base, max_delay_ms=float(args[args.index("--max-delay-ms") + 1]))
    unloaded = phase(base, max(seconds / 2, 3), 0.1 * capacity)
    half = phase(base, seconds, 0.5 * capacity)
    double = phase(base, seconds, 2.0 * capacity)
    return {"capacity": capacity, "unloaded": unloaded, "half": half, "double": double}


def measure(name: str, args: list[str], seconds: float, rounds: int = 3) -> dict:
    """``rounds`` rounds (capacity, 0.1x, 0.5x, 2x each, so every ratio has its own capacity);
    the round with the median 2x goodput ratio is reported in full, every round's ratio beside
    it: one round on this shared machine swings by +-0.05."""
    pin_self()  # the load generator (this process) on CPU 0, the server on CPU 1
    port = free_port()
    base = f"http://127.0.0.1:{port}/hubstress/batch"
    proc = start(
        [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(port), "--max-queue", "10000", *args],
        port,
    )
    try:
        done = [one_round(base, args, seconds) for _ in range(rounds)]
    finally:
        stop(proc)
    for r in done:
        r["ratio"] = r["double"]["qps"] / r["capacity"]
    median = median_round(done, key=lambda r: r["ratio"])
    return {"model": name, "args": args, **median, "rounds": [round(r["ratio"], 3) for r in done]}


def report(r: dict) -> None:
    cap, un, half, dbl = r["capacity"], r["unloaded"], r["half"], r["double"]
    bound = 5 * un["p99_ms"]
    print(f"\n{r['model']} ({' '.join(r['args'])}): capacity {cap:,.0f} req/s (closed loop, 64 workers)")
    print(f"  unloaded (0.1x, open loop Poisson): p99 {un['p99_ms']:.1f} ms")
    print(
        f"  0.5x: offered {half['offered_rate']:,.0f}/s, goodput {half['qps']:,.0f}/s, "
        f"refused {half['server']['rejected']}, p99 {half['p99_ms']:.1f} ms"
    )
    print(
        f"  2x:   offered {dbl['offered_rate']:,.0f}/s, goodput {dbl['qps']:,.0f}/s = "
        f"{dbl['qps'] / cap:.2f} of capacity (target >= 0.90); server CPU {dbl['server_cpu_pct']}%, "
        f"client {dbl.get('client_cpu_pct')}%"
    )
    ratios = ", ".join(f"{x:.2f}" for x in r["rounds"])
    print(f"        2x goodput / capacity by round: {ratios} (the median round is shown)")
    print(
        f"        accepted p99 {dbl['p99_ms']:.1f} ms (5x unloaded p99 = {bound:.1f}: "
        f"{dbl['p99_ms'] <= bound}); refused {dbl['server']['rejected']:,} "
        f"{dbl['refused_by_reason']} ({dbl['refused_at_headers']:,} at headers), "
        f"server-side refusal p99 {dbl['refusal_ms']['p99']} ms"
    )
    print(
        f"        time unread in the sockets (kernel stamp to headers read), last 10,000 at 2x: "
        f"p50 {dbl['unread_ms']['p50']} ms, p99 {dbl['unread_ms']['p99']} ms"
    )
    print(
        f"        books agree (client vs server counts): {dbl['books_agree'] and half['books_agree']}"
        f" (client timeouts at 2x: {dbl['client_timeouts']:,}; abandoned by the client at the end: "
        f"{dbl['errors'].get('unfinished', 0):,}, of which the server served "
        f"{dbl['served_after_client_left']:,} after it left)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--models", default=",".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [
        measure(name, CONFIGS[name], args.seconds, rounds_for(name, args.rounds))
        for name in args.models.split(",")
    ]
    for r in results:
        report(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
