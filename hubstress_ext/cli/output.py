"""Terminal output: live progress bars per phase (the report is the run's own ``report()``)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from hubstress_ext.engine.progress import PhaseProgress
    from hubstress_ext.engine.run import Run


PLAIN_EVERY_S = 5.0  # a CI log or a pipe gets one plain progress line this often


def progress_line(run: Run, elapsed: float) -> str:
    """ "hubstress stress-test, 15 s: create 20/20, ready 12/20 (1 failed)": one plain line."""
    phases = ", ".join(
        f"{p.name} {p.done}/{p.total}" if p.total else f"{p.name} {p.done}"
        for p in list(run.progress.phases.values())
    )
    failed = sum(p.failed for p in list(run.progress.phases.values()))
    state = phases or getattr(run, "phase", None) or "starting"
    return f"hubstress {run.scenario}, {elapsed:.0f} s: {state}" + (f" ({failed} failed)" if failed else "")


@contextlib.contextmanager
def plain_progress_lines(run: Run, every: float = PLAIN_EVERY_S) -> Iterator[None]:
    """Where no terminal shows bars (CI logs, ``make demo | tee``): a line every few seconds,
    never a minute of silence."""
    done = threading.Event()
    t0 = time.monotonic()

    def tick() -> None:
        while not done.wait(every):
            print(progress_line(run, time.monotonic() - t0), file=sys.stderr, flush=True)

    thread = threading.Thread(target=tick, name="hubstress-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(1)


@contextlib.contextmanager
def attach_progress_bars(run: Run) -> Iterator[None]:
    """One tqdm bar per phase on stderr on a terminal; plain lines every few seconds elsewhere."""
    bars: dict[str, tqdm] = {}
    enabled = sys.stderr.isatty()
    if not enabled:
        with plain_progress_lines(run):
            yield
        return

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
