"""Does load from two Dask shards scale where the generator is the bottleneck?

The target is the cheapest server we can write (an asyncio protocol in its own process)
answering every POST with the same precomputed JSON document of ``--kb`` KB (rows of small
numbers): sending it costs the server one write, while the generator must read and parse it
(the load generator parses JSON answers for ``ts_diff``), so the generator, not the server,
limits the rate. On a 2-core machine the server's CPU comes out of what two shards could use.
The same closed-loop bench then runs on ``--dask local:1`` (one shard) and ``--dask local:2``
(two shards) -- the same code path -- alternating, ``--rounds`` times each; the ratio of the
medians is the scaling figure.
A plain run without Dask is measured once per round too, as the reference for Dask's cost.

    python benchmarks/dask_scaling.py [--rounds 3] [--seconds 5] [--kb 120] [--workers 8]

``--gc`` measures instead what freezing the garbage collector during a load is worth (the
load generator does it, ``loadgen.run.run_load``): plain runs with and without, alternating.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request

import psutil

from hubstress_ext import make_run
from hubstress_ext.http.ports import free_port

SERVER = r"""
import asyncio, json, re, sys
# small arrays of small numbers: the costliest JSON to parse per byte (an object per number)
BODY = json.dumps({"rows": [[i % 10, 1] for i in range(int(sys.argv[2]) * 1024 // 8)]}).encode()
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
ANSWER = HEAD % len(BODY) + BODY
LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)

class Answer(asyncio.Protocol):
    # the cheapest server that speaks keep-alive HTTP/1.1: one precomputed answer per request
    def connection_made(self, transport):
        self.transport, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            m = LENGTH.search(self.buf, 0, end)
            total = end + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < total:
                return
            self.buf = self.buf[total:]
            self.transport.write(ANSWER)

async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(Answer, "127.0.0.1", int(sys.argv[1]))
    print("ready", len(BODY), flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def settle(limit_s: float = 15.0) -> None:
    """Wait until the machine is quiet (the last round's worker processes have gone)."""
    give_up = time.monotonic() + limit_s
    while psutil.cpu_percent(interval=0.5) > 15.0 and time.monotonic() < give_up:
        pass


def bench(url: str, seconds: float, workers: int, dask: str | None, server: psutil.Process) -> dict:
    settle()
    before = sum(server.cpu_times()[:2])
    run = make_run("bench", url=url, duration=seconds, workers=workers, dask=dask).execute()
    server_cpu = (sum(server.cpu_times()[:2]) - before) / run.stats["elapsed_s"] * 100.0
    if run.status != "finished":
        raise SystemExit(f"bench {dask or 'local'} {run.status}: {run.error}")
    s = run.stats
    return {
        "qps": s["qps"],
        "p50_ms": s["p50_ms"],
        "cpu_pct": s.get("client_cpu_pct"),
        "server_cpu_pct": round(server_cpu, 1),
        "requests": s["requests"],
    }


def gc_rounds(url: str, args: argparse.Namespace, server: psutil.Process) -> None:
    """Plain runs with the generator's gc.freeze and with it disabled, alternating."""
    import types

    from hubstress_ext.loadgen import run as run_module

    real_gc = run_module.gc
    off = types.SimpleNamespace(freeze=lambda: None, unfreeze=lambda: None)
    rounds: dict[str, list[float]] = {"gc frozen": [], "gc not frozen": []}
    for r in range(args.rounds):
        for name, module in (("gc not frozen", off), ("gc frozen", real_gc)):
            run_module.gc = module
            try:
                out = bench(url, args.seconds, args.workers, None, server)
            finally:
                run_module.gc = real_gc
            rounds[name].append(out["qps"])
            print(f"round {r + 1} {name:13s} {out['qps']:8.1f} req/s", flush=True)
    med = {name: statistics.median(v) for name, v in rounds.items()}
    print(
        f"\nmedian req/s: frozen {med['gc frozen']:.1f}, not frozen {med['gc not frozen']:.1f}: "
        f"{med['gc frozen'] / med['gc not frozen']:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--kb", type=int, default=120)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--gc", action="store_true", help="measure the generator's gc.freeze instead")
    args = ap.parse_args()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(args.kb)], stdout=subprocess.PIPE, text=True
    )
    ready = server.stdout.readline().split()
    url = f"http://127.0.0.1:{port}/big"
    try:
        body = urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=5).read()
        print(
            f"target: {url}, answers {int(ready[1]) // 1024} KB of JSON "
            f"({len(json.loads(body)['rows'])} rows)"
        )
        if args.gc:
            gc_rounds(url, args, psutil.Process(server.pid))
            return
        rounds: dict[str, list[dict]] = {"plain": [], "1 shard": [], "2 shards": []}
        for r in range(args.rounds):
            for name, dask in (("1 shard", "local:1"), ("2 shards", "local:2"), ("plain", None)):
                out = bench(url, args.seconds, args.workers, dask, psutil.Process(server.pid))
                rounds[name].append(out)
                print(
                    f"round {r + 1} {name:9s} {out['qps']:8.1f} req/s  p50 {out['p50_ms']:.2f} ms  "
                    f"generator CPU {out['cpu_pct']}% server {out['server_cpu_pct']}% of a core",
                    flush=True,
                )
        med = {name: statistics.median(o["qps"] for o in outs) for name, outs in rounds.items()}
        ratio = med["2 shards"] / med["1 shard"]
        print()
        print(
            f"median req/s: plain {med['plain']:.1f}, 1 shard {med['1 shard']:.1f}, "
            f"2 shards {med['2 shards']:.1f}"
        )
        print(f"2 shards / 1 shard: {ratio:.2f}x   (1 shard / plain: {med['1 shard'] / med['plain']:.2f})")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {"rounds": rounds, "median_qps": med, "ratio": ratio, "args": vars(args)}, f, indent=2
                )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"({time.time() - t0:.0f} s)")
