"""Spawn-storm benchmark: hubstress vs the original script's approach, and 1,000 sim users.

Part 1 runs the same storm (sim spawner, start times 0.5-3 s) with both tools against one
sandbox hub and compares wall time and *accuracy*: each tool's per-user spawn latency minus
the hub's own figure for that user (its log line "User X took N seconds to start").
Part 2 runs 1,000 simulated users and reports wall time and CPU seconds of hub, proxy and tool.

    python benchmarks/spawn_storm.py [--count 100] [--big 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from original_approach import run as run_original  # noqa: E402

from hubstress_ext.hub.options import StressOptions  # noqa: E402
from hubstress_ext.hub.stress import StressTestRun  # noqa: E402
from hubstress_ext.sandbox.hub import Sandbox  # noqa: E402

HUB_TOOK = re.compile(r"User (\S+) took ([\d.]+) seconds to start")


def hub_spawn_seconds(sandbox: Sandbox) -> dict[str, float]:
    text = sandbox.log_path.read_text(errors="replace")
    return {m.group(1).rstrip("/"): float(m.group(2)) for m in HUB_TOOK.finditer(text)}


def error_stats(measured: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    diffs = np.array([measured[n] - truth[n] for n in measured if n in truth]) * 1000.0
    return {
        "users_compared": int(diffs.size),
        "err_p50_ms": float(np.percentile(np.abs(diffs), 50)),
        "err_p99_ms": float(np.percentile(np.abs(diffs), 99)),
        "err_max_ms": float(np.abs(diffs).max()),
    }


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ours(sandbox: Sandbox, count: int, batch: int, prefix: str) -> tuple[StressTestRun, float, float]:
    opts = StressOptions(
        endpoint=sandbox.api_url, token=sandbox.token, count=count, batch_size=batch, prefix=prefix
    ).resolve({})
    c0, t0 = cpu_self(), time.time()
    run = StressTestRun(opts).execute()
    return run, time.time() - t0, cpu_self() - c0


def part1(count: int, batch: int) -> dict:
    with Sandbox("sim", sim_delay=(0.5, 3.0)) as sandbox:
        run, wall, _ = ours(sandbox, count, batch, "new-")
        assert run.exit_code == 0, run.failures()
        truth = hub_spawn_seconds(sandbox)
        users = run.users_df.set_index("user")
        measured = users["spawn_latency_s"].dropna().to_dict()
        spawn_wall = float(users[["ready"]].max().iloc[0] - run.started_at)
        new = {"wall_s": wall, "spawn_wall_s": spawn_wall, **error_stats(measured, truth)}
        orig = run_original(sandbox.api_url, sandbox.token, count, batch)
        truth = hub_spawn_seconds(sandbox)
        old = {
            "wall_s": orig["wall_s"],
            "spawn_wall_s": orig["spawn_wall_s"],
            **error_stats(orig["latency_s"], truth),
        }
    return {"count": count, "batch_size": batch, "hubstress": new, "original": old}


def part2(count: int, batch: int) -> dict:
    with Sandbox("sim", concurrent_spawn_limit=max(100, batch), log_level="WARN") as sandbox:
        hub0 = sandbox.cpu_seconds()
        run, wall, tool_cpu = ours(sandbox, count, batch, "big-")
        hub1 = sandbox.cpu_seconds()
        ready = int(run.users_df["ready"].notna().sum())
    return {
        "count": count,
        "batch_size": batch,
        "ready": ready,
        "wall_s": wall,
        "phases": run.phases()[["count", "errors", "p50_ms", "p99_ms", "wall_s"]].round(1).to_dict("index"),
        "cpu_s": {
            "hub": hub1["hub"] - hub0["hub"],
            "proxy": hub1["proxy"] - hub0["proxy"],
            "sim_server": hub1["servers"] - hub0["servers"],
            "hubstress": tool_cpu,
        },
        "tool_cpu_ms_per_request": tool_cpu * 1000.0 / max(len(run.df), 1),
        "requests": len(run.df),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--big", type=int, default=1000)
    parser.add_argument("--big-batch-size", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = {"part1": part1(args.count, args.batch_size), "part2": part2(args.big, args.big_batch_size)}
    p1 = result["part1"]
    print(f"\nSpawn storm, {p1['count']} sim users (start 0.5-3 s), batch size {p1['batch_size']}:")
    print(f"{'tool':<12}{'wall_s':>9}{'to_ready_s':>12}{'|err| p50':>11}{'|err| p99':>11}{'|err| max':>11}")
    for tool in ("hubstress", "original"):
        r = p1[tool]
        print(
            f"{tool:<12}{r['wall_s']:>9.1f}{r['spawn_wall_s']:>12.1f}{r['err_p50_ms']:>9.0f}ms"
            f"{r['err_p99_ms']:>9.0f}ms{r['err_max_ms']:>9.0f}ms"
        )
    ratio = p1["original"]["wall_s"] / p1["hubstress"]["wall_s"]
    print(f"wall-time ratio original/hubstress: {ratio:.2f}x")
    p2 = result["part2"]
    print(
        f"\n{p2['count']} sim users, batch size {p2['batch_size']}: "
        f"{p2['ready']} ready, wall {p2['wall_s']:.1f} s"
    )
    print("CPU seconds: " + ", ".join(f"{k}={v:.1f}" for k, v in p2["cpu_s"].items()))
    print(
        f"hubstress CPU per recorded request: {p2['tool_cpu_ms_per_request']:.2f} ms "
        f"({p2['requests']} requests)"
    )
    for phase, row in p2["phases"].items():
        print(f"  {phase:<7} {row}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
