"""Terminal output: live progress bars per phase and the closing report."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd
from tqdm import tqdm

from hubstress_ext.results.phases import failures_by_reason, spawn_latency_ms
from hubstress_ext.results.summary import format_table

if TYPE_CHECKING:
    from hubstress_ext.engine.progress import PhaseProgress
    from hubstress_ext.engine.run import Run
    from hubstress_ext.results.store import SavedRun


@contextlib.contextmanager
def attach_progress_bars(run: Run) -> Iterator[None]:
    """One tqdm bar per phase on stderr (only on a terminal, so logs and CI stay clean)."""
    bars: dict[str, tqdm] = {}
    enabled = sys.stderr.isatty()

    def on_progress(phase: PhaseProgress) -> None:
        if not enabled:
            return
        bar = bars.get(phase.name)
        if bar is None:
            bar = bars[phase.name] = tqdm(
                total=phase.total or None,
                desc=f"{phase.name:>8}",
                unit="",
                leave=True,
                position=len(bars),
                file=sys.stderr,
                dynamic_ncols=True,
            )
        bar.n = phase.done
        bar.set_postfix_str(f"failed={phase.failed}" if phase.failed else "", refresh=False)
        bar.refresh()

    run.progress.subscribe(on_progress)
    try:
        yield
    finally:
        for bar in bars.values():
            bar.close()


def print_report(run: Run) -> None:
    opts = run.options
    print()
    line = f"hubstress {run.scenario}: {run.status}"
    if run.meta.get("endpoint") and not opts.dry_run:
        line += f" against {run.meta['endpoint']}"
    if run.meta.get("hub_version"):
        line += f" (JupyterHub {run.meta['hub_version']})"
    print(line)
    if run.error:
        print(f"error: {run.error}")
    if opts.dry_run:
        print("dry run: nothing was sent")
        return
    _print_tables(run.scenario, run.summary(), run.users_df)
    if run.scenario == "purge":
        removed = getattr(run, "removed", [])
        print(f"removed {len(removed)} user(s)" + (f": {', '.join(removed)}" if removed else ""))
    if run.meta.get("leftover_note"):
        print(run.meta["leftover_note"])
    elif opts.keep and run.scenario != "purge" and not opts.sandbox:
        print("users were left on the hub; `hubstress purge` removes them")


def print_saved_report(saved: SavedRun) -> None:
    meta = saved.meta
    print(f"hubstress {saved.scenario}: {meta.get('status')} (saved run {saved.path})")
    if saved.scenario == "bench":
        _print_bench(meta.get("meta", {}).get("stats") or {"requests": 0, "ok": 0, "errors": {}})
        return
    if saved.scenario == "sweep":
        print(format_table(saved.cells_df.drop(columns=["errors_by_reason"], errors="ignore")))
        best = meta.get("meta", {}).get("best")
        if best:
            print(f"\nbest: workers={best['workers']} batch_size={best['batch_size']} -> {best['qps']:g} QPS")
        return
    opts = meta.get("options", {})
    shown = {k: opts[k] for k in ("count", "batch_size", "workers", "profile") if opts.get(k)}
    if shown:
        print("options: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    _print_tables(saved.scenario, saved.summary(), saved.users_df)


def _print_tables(scenario: str, summary: pd.DataFrame, users: pd.DataFrame) -> None:
    if summary.empty:
        print("(no requests recorded)")
        return
    print()
    print(format_table(summary))
    if scenario == "stress-test" and not users.empty:
        lat = spawn_latency_ms(users)
        ready = int(users["ready"].notna().sum())
        print()
        print(
            f"spawn latency (request -> ready), {ready}/{len(users)} ready: "
            + "  ".join(f"{k.removesuffix('_ms')}={v / 1000:.2f}s" for k, v in lat.items() if pd.notna(v))
        )
        failures = failures_by_reason(users)
        if not failures.empty:
            print()
            print("failures by reason:")
            print(format_table(failures))


def print_load_report(run, as_json: bool = False) -> None:
    """``bench`` / ``sweep`` results: a table, or one JSON object on stdout with ``--json``."""
    import json

    if run.scenario == "sweep":
        doc = {
            "status": run.status,
            "error": run.error,
            "cells": json.loads(run.df.to_json(orient="records")),
            "best": run.best(),
        }
    else:
        doc = {"status": run.status, "error": run.error, **run.stats}
    if as_json:
        print(json.dumps(doc, default=str))
        return
    print()
    print(f"hubstress {run.scenario}: {run.status} against {run.options.url}")
    if run.error:
        print(f"error: {run.error}")
    if run.scenario == "sweep":
        _print_sweep(run)
    elif run.stats:
        _print_bench(run.stats)


def _print_bench(stats: dict) -> None:
    if not stats.get("requests"):
        print("(no requests recorded)")
        return
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
    print(format_table(pd.DataFrame(rows, columns=["", "value"]).set_index("")))
    if stats["errors"]:
        print("\nfailures by reason:")
        for reason, count in sorted(stats["errors"].items(), key=lambda kv: -kv[1]):
            print(f"  {reason}: {count}")
    if stats.get("generator_behind"):
        print("\nWARNING: " + generator_warning(stats))


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


def _print_sweep(run) -> None:
    summary = run.summary()
    if summary.empty:
        print("(no cell finished)")
        return
    print()
    print(format_table(summary))
    best = run.best()
    limit = run.options.max_p99_ms
    if best is None:
        print(f"\nno cell had p99 <= {limit:g} ms" if limit else "\nno cell succeeded")
    else:
        where = f" with p99 <= {limit:g} ms" if limit else ""
        print(
            f"\nbest{where}: workers={best['workers']} batch_size={best['batch_size']} "
            f"-> {best['qps']:g} QPS, p99 {best['p99_ms']:g} ms"
        )


def _slash(stats: dict, *keys: str) -> str:
    return " / ".join("-" if stats.get(k) is None else f"{stats[k]:g}" for k in keys)
