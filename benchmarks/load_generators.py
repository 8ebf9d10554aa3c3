"""Is the generator the bottleneck? Five load generators against the same plain Tornado
endpoint, one after another, in one run on this machine.

For each tool the run lasts ``--seconds`` + lead-in; the measurement window starts after the
lead-in (start-up and imports excluded) and ends a second before the tool stops. In that
window we take the tool process's CPU time (psutil) and the number of requests the *server*
answered (its /count), so every tool is judged by the same meter:

    rate            = answered requests / window
    CPU per request = generator CPU seconds / answered requests

    python benchmarks/load_generators.py [--seconds 10] [--json out.json]

Tools: hubstress bench (closed loop, 64 workers), wrk (Debian, 1 thread, 64 connections),
Locust FastHttpUser (64 users, headless), a bare aiohttp loop (64 coroutines, records
nothing) and the seed's client (requests + 127 threads).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from batching import LUA, free_port, start, stop

HERE = Path(__file__).parent
LEAD_IN = 4.0  # seconds: start-up, imports, Locust's user spawning


def count(base: str) -> int:
    with urllib.request.urlopen(base + "/count") as r:
        return json.loads(r.read())["requests"]


def cpu_of(proc: psutil.Process) -> float:
    """CPU seconds of the process and its children (Locust and wrk are single processes)."""
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def measure(name: str, cmd: list[str], base: str, seconds: float) -> dict:
    popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=HERE)
    proc = psutil.Process(popen.pid)
    time.sleep(LEAD_IN)
    cpu0, n0, t0 = cpu_of(proc), count(base), time.monotonic()
    time.sleep(seconds)
    cpu1, n1, t1 = cpu_of(proc), count(base), time.monotonic()
    out, _ = popen.communicate(timeout=60)
    answered = n1 - n0
    result = {
        "tool": name,
        "rps": answered / (t1 - t0),
        "cpu_us_per_request": (cpu1 - cpu0) / answered * 1e6 if answered else float("nan"),
        "cpu_pct": (cpu1 - cpu0) / (t1 - t0) * 100.0,
    }
    if name.startswith("hubstress"):
        doc = json.loads(out)
        result["self_reported_cpu_us_per_request"] = doc.get("client_cpu_us_per_request")
        result["recorded"] = doc["requests"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window per tool")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    locust = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    secs = args.seconds
    total = f"{LEAD_IN + secs + 1:g}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = base + "/hubstress/batch"
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(LUA)
    tools = [
        (
            "hubstress bench",
            [sys.executable, "-m", "hubstress_ext", "bench", url, "--workers", "64"]
            + ["--duration", total, "--json"],
        ),
        ("wrk", ["wrk", "-t1", "-c64", f"-d{total}s", "-s", str(script), url]),
        (
            "locust FastHttpUser",
            [locust, "-f", str(HERE / "locustfile.py"), "--headless", "-u", "64", "-r", "64"]
            + ["-t", f"{total}s", "--host", base, "--only-summary", "--loglevel", "ERROR"],
        ),
        ("bare aiohttp loop", [sys.executable, str(HERE / "aiohttp_loop.py"), url, total]),
        ("seed client", [sys.executable, str(HERE / "seed_client.py"), base + "/testB", total]),
    ]
    server = start([sys.executable, str(HERE / "plain_tornado.py"), str(port)], port)
    try:
        results = [measure(name, cmd, base, secs) for name, cmd in tools]
    finally:
        stop(server)
    print(f"\nplain Tornado endpoint; {secs:g} s window per tool (server-side counts); 2 cores shared")
    print(f"{'generator':<22}{'req/s':>9}{'CPU µs/req':>12}{'CPU %':>8}")
    for r in results:
        print(f"{r['tool']:<22}{r['rps']:>9.0f}{r['cpu_us_per_request']:>12.0f}{r['cpu_pct']:>8.0f}")
    ours = results[0]
    locust_r = next(r for r in results if r["tool"].startswith("locust"))
    print(
        f"hubstress / Locust rate: {ours['rps'] / locust_r['rps']:.2f}; "
        f"hubstress CPU per request {ours['cpu_us_per_request']:.0f} µs "
        f"(self-reported over its whole run, records included: {ours['self_reported_cpu_us_per_request']} µs)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
