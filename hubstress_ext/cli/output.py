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
    if run.status == "aborted" or (opts.keep and run.scenario != "purge"):
        print("users were left on the hub; `hubstress purge` removes them")


def print_saved_report(saved: SavedRun) -> None:
    meta = saved.meta
    print(f"hubstress {saved.scenario}: {meta.get('status')} (saved run {saved.path})")
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
