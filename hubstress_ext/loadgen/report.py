"""The text report of ``bench`` and ``sweep``: the figures table, failures, honest warnings."""

from __future__ import annotations

import pandas as pd

from hubstress_ext.results.summary import format_table
from hubstress_ext.results.summary import shard_lines as summary_shard_lines


def shard_lines(meta: dict) -> list[str]:
    """A --dask run: where it ran, one row per shard, and what a shard says about the result."""
    if not meta.get("dask"):
        return []
    shards = pd.DataFrame(meta["shards"]) if meta.get("shards") else None
    return summary_shard_lines(meta["dask"]["cluster"], shards, meta.get("warnings", []))


def bench_lines(stats: dict) -> list[str]:
    if not stats.get("requests"):
        return ["(no requests recorded)"]
    rows = [
        ("requests", stats["requests"]),
        ("ok", stats["ok"]),
        ("failed", stats["failed"]),
        ("QPS (ok/s" + (" during the schedule)" if "window_s" in stats else ")"), stats["qps"]),
        ("latency p50 / p90 / p99 / max ms", _slash(stats, "p50_ms", "p90_ms", "p99_ms", "max_ms")),
        ("server ts_diff mean / p99 ms", _slash(stats, "ts_diff_mean_ms", "ts_diff_p99_ms")),
        ("elapsed s", stats["elapsed_s"]),
        ("client CPU % / µs per request", _slash(stats, "client_cpu_pct", "client_cpu_us_per_request")),
    ]
    if "endpoint_cpu_pct" in stats:  # a hubstress endpoint's own, from its /stats
        rows.append(("endpoint CPU %", stats["endpoint_cpu_pct"]))
    if "batch_size_mean" in stats:
        rows.append(("server batch size (mean)", stats["batch_size_mean"]))
    if "target_rate" in stats:
        window = stats.get("window_s")
        rows.append(
            (
                "open loop: asked / offered rate",
                f"{stats['target_rate']:g} / {stats['send_rate']:g} per s"
                + (f" over the {window:g} s schedule" if window is not None else ""),
            )
        )
        if "drain_s" in stats:
            rows.append(
                (
                    "open loop: after the schedule",
                    f"{stats['ok_after_window']} ok in a {stats['drain_s']:g} s drain (not in QPS)",
                )
            )
        rows.append(("open loop: scheduler lag p99 ms", stats["scheduler_lag_p99_ms"]))
        rows.append(("open loop: waited for a connection", stats["waited_for_connection"]))
    lines = [format_table(pd.DataFrame(rows, columns=["", "value"]).set_index(""))]
    if stats["errors"]:
        lines += ["", "failures by reason:"]
        lines += [f"  {r}: {n}" for r, n in sorted(stats["errors"].items(), key=lambda kv: -kv[1])]
    if stats.get("generator_behind"):
        lines += ["", "WARNING: " + generator_warning(stats)]
    return lines


def generator_warning(stats: dict) -> str:
    """Which way the generator fell behind its schedule: late sends, or too few of them."""
    lag, offered, target = stats["scheduler_lag_p99_ms"], stats["send_rate"], stats["target_rate"]
    if offered < 0.97 * target:
        return (
            f"the generator offered only {offered:g}/s of the asked {target:g}/s (scheduler lag p99 "
            f"{lag:g} ms); latencies still count from the intended send times"
        )
    return (
        f"the generator's scheduler ran late (lag p99 {lag:g} ms): it offered the asked "
        f"{target:g}/s, but sends left up to that much after their intended times; latencies "
        "count from the intended times, so they include this lateness (a busy client machine)"
    )


def sweep_lines(cells: pd.DataFrame, best: dict | None, max_p99_ms: float | None) -> list[str]:
    if cells.empty:
        return ["(no cell finished)"]
    lines = ["", format_table(cells.drop(columns=["errors_by_reason"], errors="ignore"))]
    if best is None:
        lines.append(f"\nno cell had p99 <= {max_p99_ms:g} ms" if max_p99_ms else "\nno cell succeeded")
    else:
        where = f" with p99 <= {max_p99_ms:g} ms" if max_p99_ms else ""
        p99 = f", p99 {best['p99_ms']:g} ms" if best.get("p99_ms") is not None else ""
        lines.append(
            f"\nbest{where}: workers={best['workers']} batch_size={best['batch_size']} "
            f"-> {best['qps']:g} QPS{p99}"
        )
    return lines


def _slash(stats: dict, *keys: str) -> str:
    return " / ".join("-" if stats.get(k) is None else f"{stats[k]:g}" for k in keys)
