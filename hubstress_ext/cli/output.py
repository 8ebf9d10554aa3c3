"""Terminal output: live progress bars per phase (the report is the run's own ``report()``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from hubstress_ext.engine.progress import PhaseProgress
    from hubstress_ext.engine.run import Run


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
