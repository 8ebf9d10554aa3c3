"""CPU and memory of the sandbox's processes (hub, proxy, servers), sampled during a run.

The sandbox started them, so it knows them; a run against a hub of one's own has no such
view (its operators' monitoring has). One row per role per sample: CPU % of one core over
the last interval, CPU seconds so far, and resident memory.
"""

from __future__ import annotations

import asyncio
import time

import pandas as pd
import psutil

from hubstress_ext.sandbox.hub import Sandbox

RESOURCE_COLUMNS = ["time", "role", "cpu_pct", "cpu_s", "rss_mb"]


class ResourceSampler:
    def __init__(self, sandbox: Sandbox, interval: float = 1.0) -> None:
        self.sandbox = sandbox
        self.interval = interval
        self.rows: list[tuple[float, str, float, float, float]] = []
        self._last: dict[str, tuple[float, float]] = {}  # role -> (time, cpu seconds)
        # every process ever seen, with its CPU seconds when last seen: single-user servers
        # come and go during a run, and a stopped one's CPU still counts for its role
        self._seen: dict[int, tuple[str, float]] = {}

    def sample(self) -> None:
        now = time.time()
        for role, procs in self.sandbox.processes().items():
            rss = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    self._seen[proc.pid] = (role, times.user + times.system)
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            cpu = sum(used for r, used in self._seen.values() if r == role)
            before = self._last.get(role)
            pct = 100.0 * (cpu - before[1]) / (now - before[0]) if before and now > before[0] else 0.0
            self._last[role] = (now, cpu)
            self.rows.append((now, role, max(pct, 0.0), cpu, rss / 2**20))

    async def run(self) -> None:
        """Sample every ``interval`` until cancelled (in a thread: psutil reads /proc)."""
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=RESOURCE_COLUMNS)
