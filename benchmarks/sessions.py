"""A class of simulated students on the sim spawner: can one process hold 300 sessions?

300 students arrive evenly over ``--period`` seconds, stay ``--session`` seconds, and run a
cell every ``--think`` seconds over their kernel's websocket, through the sandbox's real hub
and proxy (the pure-Python configurable-http-proxy), polling as a Lab tab does. A sampler
thread reads each process's CPU time once a second; the figures reported are over the window
in which every session was active, so the spawns at the start and the stops at the end do not
blur what holding a class costs.

    python benchmarks/sessions.py [--count 300] [--session 60] [--think 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

import numpy as np
import psutil

from hubstress_ext import make_run
from hubstress_ext.results.resources import resource_summary
from hubstress_ext.results.sessions import active_over_time
from hubstress_ext.sandbox.hub import Sandbox
from hubstress_ext.sandbox.resources import ResourceSampler


class WithTool:
    """The sandbox's processes by role, plus this process (the tool) as its own role."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.me = psutil.Process()

    def processes(self) -> dict[str, list[psutil.Process]]:
        return {"tool": [self.me], **self.sandbox.processes()}


class CpuSampler(threading.Thread):
    """The sandbox's ResourceSampler once a second, in a thread beside the run's event loop."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(daemon=True)
        self.sampler = ResourceSampler(WithTool(sandbox))  # type: ignore[arg-type]
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            self.sampler.sample()

    def percent_between(self, start: float, end: float) -> dict[str, float]:
        rows = self.sampler.to_frame()
        return resource_summary(rows[rows["time"].between(start, end)])["cpu_mean_pct"].to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--period", type=float, default=20.0, help="arrivals spread over this long")
    parser.add_argument("--session", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=2.0)
    parser.add_argument("--poll", type=float, default=10.0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    with Sandbox("sim", concurrent_spawn_limit=100, sim_delay=(0.05, 0.3), log_level="WARN") as sandbox:
        sampler = CpuSampler(sandbox)
        sampler.start()
        run = make_run(
            "session-test",
            endpoint=sandbox.api_url,
            token=sandbox.token,
            count=args.count,
            batch_size=50,
            arrival="even",
            period=args.period,
            session=args.session,
            think=args.think,
            code="5*4",
            expect_output="20",
            poll_interval=args.poll,
        ).execute()
        sampler.halt.set()
        sampler.join()

    df, sessions, users = run.df, run.sessions_df, run.users_df
    active = active_over_time(sessions, users)
    t0 = float(sessions["arrived"].min())
    full = active[active["active"] >= args.count]
    window = (t0 + float(full["t"].min()), t0 + float(full["t"].max())) if not full.empty else (0.0, 0.0)
    cpu = sampler.percent_between(*window)
    window_s = window[1] - window[0]
    ex = df[df["op"] == "execute"]
    in_window = ex[(ex["start"] >= window[0]) & (ex["end"] <= window[1])]
    figures = {
        "students": args.count,
        "sessions_ok": int(sessions["reason"].isna().sum()),
        "websockets_held": int(sessions["connected"].notna().sum()),
        "peak_active": int(active["active"].max()),
        "all_active_for_s": round(window_s, 1),
        "connection_errors": int(df["error"].notna().sum() - (df["error"] == "output mismatch").sum()),
        "proxy_503s": int((df["status"] == 503).sum()),
        "executes": len(ex),
        "executes_per_s_all_active": round(len(in_window) / window_s, 1) if window_s else None,
        "execute_p50_ms": round(float(np.percentile(ex["latency_ms"], 50)), 1),
        "execute_p99_ms": round(float(np.percentile(ex["latency_ms"], 99)), 1),
        "cpu_pct_of_one_core_all_active": {k: round(v, 1) for k, v in cpu.items()},
        "exit_code": run.exit_code,
    }
    for key, value in figures.items():
        print(f"{key:>34}: {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0 if run.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
