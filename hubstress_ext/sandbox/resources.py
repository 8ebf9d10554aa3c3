"""CPU and memory of the sandbox's processes (hub, proxy, servers), sampled during a run.

The sandbox started them, so it knows them; a run against a hub of one's own has no such
view (its operators' monitoring has). One row per role per sample: CPU % of one core over
the last interval, CPU seconds so far, resident memory, and the time its main threads spent
ready to run but waiting for a core (Linux ``/proc/PID/schedstat``; 0 elsewhere).

Why the wait: the sandbox shares the machine with the load generator. On 2 cores a saturated
single-threaded proxy gets 80 % of a core and spends the rest waiting in the run queue; its
CPU % alone would say it had room to spare. CPU + wait is what it asked for.
"""

from __future__ import annotations

import asyncio
import time

import pandas as pd
import psutil

from hubstress_ext.sandbox.hub import Sandbox

RESOURCE_COLUMNS = ["time", "role", "cpu_pct", "cpu_s", "rss_mb", "wait_pct", "wait_s"]


def run_queue_wait(pid: int) -> float:
    """Seconds the process's main thread has waited for a core since it started (0 when the
    kernel does not say)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class ResourceSampler:
    def __init__(self, sandbox: Sandbox, interval: float = 1.0) -> None:
        self.sandbox = sandbox
        self.interval = interval
        self.rows: list[tuple[float, str, float, float, float, float, float]] = []
        self._last: dict[str, tuple[float, float, float]] = {}  # role -> (time, cpu s, wait s)
        # every process ever seen, with its CPU and wait seconds when last seen: single-user
        # servers come and go during a run, and a stopped one's CPU still counts for its role
        self._seen: dict[int, tuple[str, float, float]] = {}

    def sample(self) -> None:
        now = time.time()
        for role, procs in self.sandbox.processes().items():
            rss = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    self._seen[proc.pid] = (role, times.user + times.system, run_queue_wait(proc.pid))
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            cpu = wait = 0.0
            for seen_role, used, waited in self._seen.values():
                if seen_role == role:
                    cpu, wait = cpu + used, wait + waited
            before = self._last.get(role)
            span = now - before[0] if before else 0.0
            pct = 100.0 * (cpu - before[1]) / span if before and span > 0 else 0.0
            wait_pct = 100.0 * (wait - before[2]) / span if before and span > 0 else 0.0
            self._last[role] = (now, cpu, wait)
            self.rows.append((now, role, max(pct, 0.0), cpu, rss / 2**20, max(wait_pct, 0.0), wait))

    async def run(self) -> None:
        """Sample every ``interval`` until cancelled (in a thread: psutil reads /proc)."""
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=RESOURCE_COLUMNS)
