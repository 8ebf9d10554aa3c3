"""Batching endpoint benchmark with wrk (Debian package), every figure from one run.

1. Throughput at 64 connections: hubstress serve (echo, batch_size=1, max_wait_ms=0, admission
   on) vs a plain Tornado handler that parses and encodes with the same JSON functions (the
   ceiling), in alternating rounds (median ratio reported), vs the seed service design.
2. Added latency: the same two servers under 2 connections, p50 and p99 side by side.
3. Idle CPU over 10 s: hubstress serve vs the seed service (its consumers busy-wait).
4. Latency below saturation: batch_size=4, max_wait_ms=10 under 2 connections; p99 vs
   max_wait + model p99 + 5 ms.
5. The NumPy MLP model: throughput per batch size (changed at runtime through the config API).
6. Overload (``overload.py``): admission on time at 0.5x and 2x capacity.
7. The adaptive mode (``adaptive.py``) against the best fixed cell of a sweep.

Where ``taskset`` and two CPUs are available, wrk runs on CPU 0 and every server on CPU 1, so
the two do not take turns on the same core (sharing, one round's ratio swung from 0.70 to 1.02).

    python benchmarks/batching.py [--seconds 10] [--rounds 5] [--skip overload,adaptive] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from endpoints import PIN, free_port, median_round, on_cpu, pin_self, start, stop  # noqa: E402, F401

HERE = Path(__file__).parent
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, '{"ts":' .. math.floor(os.time() * 1000) .. ',"url":"x"}')
end
"""


def wrk(url: str, conns: int, seconds: float, script: Path) -> dict:
    out = subprocess.run(
        on_cpu(
            0,
            ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url],
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def lat(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": lat("50"),
        "p90_ms": lat("90"),
        "p99_ms": lat("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def idle_cpu_pct(pid: int, seconds: float) -> float:
    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(seconds)
    return (sum(proc.cpu_times()[:2]) - before) / seconds * 100.0


def ours_cmd(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(port), *args]


def call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method)) as r:
        return json.loads(r.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5, help="alternating plain/hubstress rounds")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: overload, adaptive")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    secs = args.seconds
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(LUA)
    result: dict = {}

    # Both servers up at once (an idle one costs nothing), measured in alternating rounds so
    # that drift on this shared machine hits both alike; the ratio is the median of the rounds.
    plain_port, ours_port = free_port(), free_port()
    plain_proc = start([sys.executable, str(HERE / "plain_tornado.py"), str(plain_port)], plain_port)
    ours_proc = start(
        ours_cmd(ours_port, "--batch-size", "1", "--max-wait-ms", "0", "--max-queue", "10000"), ours_port
    )
    result["hubstress_idle_cpu_pct"] = idle_cpu_pct(ours_proc.pid, secs)
    wrk(f"http://127.0.0.1:{plain_port}/hubstress/batch", 64, 2, script)  # warm-up, not counted
    wrk(f"http://127.0.0.1:{ours_port}/hubstress/batch", 64, 2, script)
    rounds = []
    for _ in range(args.rounds):
        plain_r = wrk(f"http://127.0.0.1:{plain_port}/hubstress/batch", 64, secs, script)
        ours_r = wrk(f"http://127.0.0.1:{ours_port}/hubstress/batch", 64, secs, script)
        rounds.append({"plain": plain_r, "ours": ours_r, "ratio": ours_r["rps"] / plain_r["rps"]})
    # added latency: 2 connections, so neither server queues; alternating, medians of the rounds
    light_rounds = [
        (
            wrk(f"http://127.0.0.1:{plain_port}/hubstress/batch", 2, secs / 2, script),
            wrk(f"http://127.0.0.1:{ours_port}/hubstress/batch", 2, secs / 2, script),
        )
        for _ in range(3)
    ]
    result["added_latency"] = {
        f"{side}_{q}_ms": sorted(r[i][f"{q}_ms"] for r in light_rounds)[1]
        for i, side in enumerate(("plain", "ours"))
        for q in ("p50", "p99")
    }
    stop(plain_proc)
    stop(ours_proc)
    median = median_round(rounds, key=lambda r: r["ratio"])
    result["throughput_rounds"] = rounds
    result["plain_tornado"], result["hubstress_echo_bs1"] = median["plain"], median["ours"]

    port = free_port()
    p = start([sys.executable, str(HERE / "seed_service.py"), str(port), "10"], port)
    result["seed_idle_cpu_pct"] = idle_cpu_pct(p.pid, secs)
    result["seed_service"] = wrk(f"http://127.0.0.1:{port}/testB", 64, secs, script)
    stop(p)

    port = free_port()
    base = f"http://127.0.0.1:{port}/hubstress/batch"
    p = start(ours_cmd(port, "--batch-size", "4", "--max-wait-ms", "10"), port)
    light = wrk(base, 2, secs, script)
    model_p99 = call(base + "/stats")["model_ms"]["p99"]
    light.update(max_wait_ms=10, model_p99_ms=model_p99, bound_ms=10 + model_p99 + 5)
    result["below_saturation"] = light
    stop(p)

    port = free_port()
    base = f"http://127.0.0.1:{port}/hubstress/batch"
    p = start(ours_cmd(port, "--model", "mlp", "--max-wait-ms", "5", "--max-queue", "10000"), port)
    mlp = {}
    for bs in (1, 4, 16, 64):
        call(base + "/config", "PATCH", {"batch_size": bs})
        mlp[bs] = wrk(base, 64, max(round(secs * 0.6), 3), script)  # wrk takes whole seconds
    stop(p)
    result["mlp"] = mlp

    plain, ours, seed = result["plain_tornado"], result["hubstress_echo_bs1"], result["seed_service"]
    where = "wrk on CPU 0, servers on CPU 1" if PIN else "server and wrk share the CPUs"
    print(f"\nwrk, 1 thread, 64 connections, {secs:g} s each ({where}):")
    print(f"{'server':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, r in (
        ("plain Tornado handler (ceiling)", plain),
        ("hubstress serve (echo, bs=1)", ours),
        ("seed service design (bs=10)", seed),
    ):
        print(f"{name:<34}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['non_2xx']:>9}")
    ratios = ", ".join(f"{r['ratio']:.3f}" for r in result["throughput_rounds"])
    print(f"hubstress / plain per round: {ratios} (median round shown above)")
    print(
        f"hubstress / plain: {ours['rps'] / plain['rps']:.2f}   "
        f"hubstress / seed: {ours['rps'] / seed['rps']:.1f}x"
    )
    print(
        f"idle CPU over {secs:g} s: hubstress {result['hubstress_idle_cpu_pct']:.2f}%, "
        f"seed {result['seed_idle_cpu_pct']:.0f}%"
    )
    print(
        f"below saturation (bs=4, max_wait=10 ms, 2 connections): p99 {light['p99_ms']:.1f} ms "
        f"<= bound {light['bound_ms']:.1f} ms: {light['p99_ms'] <= light['bound_ms']}"
    )
    print("MLP model (max_wait 5 ms, 64 connections):")
    for bs, r in mlp.items():
        print(
            f"  batch_size={bs:<3} {r['rps']:>8.0f} req/s  p99 {r['p99_ms']:.1f} ms  "
            f"({r['rps'] / mlp[1]['rps']:.2f}x bs=1)"
        )
    lat = result["added_latency"]
    print(
        f"added latency, 2 connections (median of 3 rounds): p50 {lat['plain_p50_ms'] * 1000:.0f} -> "
        f"{lat['ours_p50_ms'] * 1000:.0f} us (+{(lat['ours_p50_ms'] - lat['plain_p50_ms']) * 1000:.0f} us), "
        f"p99 {lat['plain_p99_ms'] * 1000:.0f} -> {lat['ours_p99_ms'] * 1000:.0f} us "
        f"(+{(lat['ours_p99_ms'] - lat['plain_p99_ms']) * 1000:.0f} us)"
    )
    skip = set(filter(None, args.skip.split(",")))
    if "overload" not in skip:
        import overload

        result["overload"] = [
            overload.measure(name, cfg, secs, overload.rounds_for(name, 3))
            for name, cfg in overload.CONFIGS.items()
        ]
        for r in result["overload"]:
            overload.report(r)
    if "adaptive" not in skip:
        import adaptive

        result["adaptive"] = adaptive.measure(secs, 50.0)
        adaptive.report(result["adaptive"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
