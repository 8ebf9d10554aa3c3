"""SweepRun: batch size x workers, one closed-loop load per cell, as a run object.

Per cell: set the endpoint's batch size through its config API (when sweeping batch sizes),
warm up, measure, and read the endpoint's own CPU seconds from its stats before and after
(CPU% the way ``top`` shows it: 100% = one core) next to the generator's. Cells finished
before a stop are kept; the endpoint's original batch size is put back at the end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from hubstress_ext.cluster.coordinator import degraded
from hubstress_ext.engine.record import RunRecord
from hubstress_ext.errors import RunError
from hubstress_ext.loadgen import report
from hubstress_ext.loadgen.connection import Target
from hubstress_ext.loadgen.endpoint import EndpointControl, endpoint_cpu_pct
from hubstress_ext.loadgen.options import SweepOptions
from hubstress_ext.loadgen.run import STOP_GRACE_S, LoadRun, check_reachable
from hubstress_ext.loadgen.summary import bench_stats
from hubstress_ext.results import charts

PHASE = "cells"
CELL_COLUMNS = [
    "workers",
    "batch_size",
    "qps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "ts_diff_mean_ms",
    "ts_diff_p99_ms",
    "requests",
    "ok",
    "errors",
    "server_cpu_pct",
    "client_cpu_pct",
]


class SweepRun(LoadRun):
    """measure QPS/latency/CPU over workers x endpoint batch size"""

    scenario = "sweep"
    options_type = SweepOptions
    options: SweepOptions

    def __init__(self, options: SweepOptions) -> None:
        super().__init__(options)
        self.cells: list[dict[str, Any]] = []
        self.records: list[pd.DataFrame] = []
        self.degraded_cells = 0  # --dask: cells in which a shard was lost

    def plan(self) -> list[tuple[int | None, int]]:
        sizes: list[int | None] = list(self.options.batch_sizes or [None])
        return [(bs, w) for bs in sizes for w in self.options.workers]

    async def main(self) -> None:
        opts = self.options
        await check_reachable(Target(opts.url), min(opts.request_timeout, 10.0))
        self.meta["url"] = opts.url
        plan = self.plan()
        self.progress.begin(PHASE, len(plan))
        control = EndpointControl(opts.url, opts.headers(), opts.request_timeout)
        async with self.shard_cluster(), control:
            config = await control.probe()
            self.meta["endpoint_config"] = config
            if opts.batch_sizes and config is None:
                raise RunError(
                    f"{opts.url} has no hubstress config API ({control.base}/config), so its batch size "
                    "cannot be set: sweep --workers only, or point at a hubstress batching endpoint"
                )
            original = config.get("batch_size") if config else None
            try:
                for batch_size, workers in plan:
                    if self._stops:
                        break
                    cell = await self._cell(control if config else None, batch_size, workers)
                    if cell is None:
                        break
                    self.cells.append(cell)
                    self.progress.advance(PHASE, failed=cell["ok"] == 0)
            finally:
                if opts.batch_sizes and original is not None:
                    await control.set_batch_size(original)
        self.meta["best"] = self.best()
        self.status = "interrupted" if self._stops else "degraded" if self.degraded_cells else "finished"

    async def _cell(
        self, control: EndpointControl | None, batch_size: int | None, workers: int
    ) -> dict | None:
        opts = self.options
        if batch_size is not None and control is not None:
            await control.set_batch_size(batch_size)
        actual_bs = batch_size
        if opts.warmup > 0:
            await self.execute_load(opts.cell(workers, opts.warmup), grace=STOP_GRACE_S)
            if self._stops:
                return None
        before = await control.stats() if control else None
        result = await self.execute_load(opts.cell(workers))
        if self._stops:
            return None  # a cut-short cell would mislead: only whole cells are kept
        after = await control.stats() if control else None
        frame = result.frame
        stats = bench_stats(frame, result.elapsed, result.cpu)
        if result.warnings:
            said = self.meta.setdefault("warnings", [])
            said.extend(f"cell {workers} workers: {w}" for w in result.warnings)
        if degraded(result.shards):
            self.degraded_cells += 1
        cpu = endpoint_cpu_pct(before, after)
        server_cpu = math.nan if cpu is None else cpu
        if cpu is not None and after:
            actual_bs = after.get("settings", {}).get("batch_size", actual_bs)
        frame.insert(0, "batch_size_setting", actual_bs)
        frame.insert(0, "workers", workers)
        self.records.append(frame)
        return {
            "workers": workers,
            "batch_size": actual_bs,
            "qps": stats["qps"],
            "p50_ms": stats["p50_ms"],
            "p90_ms": stats["p90_ms"],
            "p99_ms": stats["p99_ms"],
            "ts_diff_mean_ms": stats["ts_diff_mean_ms"],
            "ts_diff_p99_ms": stats["ts_diff_p99_ms"],
            "requests": stats["requests"],
            "ok": stats["ok"],
            "errors": stats["failed"],
            "errors_by_reason": stats["errors"],
            "server_cpu_pct": round(server_cpu, 1) if not math.isnan(server_cpu) else math.nan,
            "client_cpu_pct": stats.get("client_cpu_pct"),
            "client_cpu_us_per_request": stats.get("client_cpu_us_per_request"),
        }

    # -- results ----------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        """One row per finished cell."""
        frame = pd.DataFrame(self.cells)
        if frame.empty:
            return pd.DataFrame(columns=CELL_COLUMNS)
        return frame

    @property
    def records_df(self) -> pd.DataFrame:
        """Every measured request of every cell (warm-ups excluded)."""
        return pd.concat(self.records, ignore_index=True) if self.records else pd.DataFrame()

    @classmethod
    def summary_of(cls, record: RunRecord) -> pd.DataFrame:
        """One row per cell: workers, batch size, QPS, latency, CPU."""
        cells = record.frame("cells")
        if cells.empty:
            return pd.DataFrame(columns=CELL_COLUMNS)
        return cells[[c for c in CELL_COLUMNS if c in cells]]

    def best(self) -> dict[str, Any] | None:
        return best_cell(self.df, self.options.max_p99_ms)

    def frame_sources(self) -> dict[str, Callable[[], pd.DataFrame]]:
        return {"cells": self._cells_frame, "records": lambda: self.records_df}

    def _cells_frame(self) -> pd.DataFrame:
        df = self.df.copy()
        if "errors_by_reason" in df:  # a dict per cell, as text a CSV keeps
            df["errors_by_reason"] = df["errors_by_reason"].map(
                lambda d: ";".join(f"{k}={v}" for k, v in d.items())
            )
        return df

    def pivot(self, value: str = "qps") -> pd.DataFrame:
        """``value`` over workers (rows) x batch size (columns): what the heatmaps show."""
        return self.df.pivot_table(index="workers", columns="batch_size", values=value, dropna=False)

    def succeeded(self) -> bool:
        return self.status in ("finished", "degraded") and any(c["ok"] for c in self.cells)

    def chart_data(self) -> pd.DataFrame:
        return self.df

    figure = staticmethod(charts.sweep_figure)

    @classmethod
    def body_lines(cls, record: RunRecord) -> list[str]:
        max_p99_ms = record.option("max_p99_ms")
        best = record.meta["best"] if "best" in record.meta else best_cell(record.frame("cells"), max_p99_ms)
        return report.sweep_lines(cls.summary_of(record), best, max_p99_ms)

    def report_json(self) -> dict[str, Any]:
        cells = json.loads(self.df.to_json(orient="records"))
        return {**super().report_json(), "cells": cells, "best": self.best()}


def best_cell(cells: pd.DataFrame, max_p99_ms: float | None = None) -> dict[str, Any] | None:
    """The cell with the highest QPS, among those within ``max_p99_ms`` when given."""
    if cells.empty:
        return None
    ok = cells[cells["ok"] > 0]
    if max_p99_ms is not None:
        ok = ok[ok["p99_ms"] <= max_p99_ms]
    if ok.empty:
        return None
    row = ok.loc[ok["qps"].idxmax()]
    out: dict[str, Any] = {}
    for key in CELL_COLUMNS:
        value = row.get(key)
        value = value.item() if hasattr(value, "item") else value  # numpy -> plain, for JSON
        out[key] = None if isinstance(value, float) and math.isnan(value) else value
    return out
