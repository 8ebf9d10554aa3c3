"""A run as its report sees it: what was asked, how it ended, what it measured.

Every summary and report is computed from a ``RunRecord`` by its scenario's ``summary_of`` /
``report_of``, and by nothing else: a live run hands them ``run.record()``, a saved run is a
record read back from disk (``engine.saved``). So a reopened run prints what the live one
printed, by construction, and a scenario's report is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


class LazyFrames(Mapping[str, pd.DataFrame]):
    """Frames by file stem, each made on first use: a live table that reads only the records
    does not pay for the metrics, the resources and the sessions."""

    def __init__(self, makers: Mapping[str, Callable[[], pd.DataFrame]]) -> None:
        self._makers = dict(makers)
        self._made: dict[str, pd.DataFrame] = {}

    def __getitem__(self, stem: str) -> pd.DataFrame:
        if stem not in self._made:
            self._made[stem] = self._makers[stem]()
        return self._made[stem]

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


@dataclass
class RunRecord:
    scenario: str
    status: str
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the public options (no secrets)
    meta: dict[str, Any] = field(default_factory=dict)  # what the run noted as it went
    frames: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # by file stem
    started_at: float | None = None
    finished_at: float | None = None

    def frame(self, stem: str) -> pd.DataFrame:
        """A frame, or an empty one when the run has none by that name (not saved when empty)."""
        return self.frames[stem] if stem in self.frames else pd.DataFrame()

    @property
    def ended(self) -> bool:
        return self.finished_at is not None

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def elapsed(self, now: float) -> float:
        """Seconds from start to end (or to ``now`` while it runs); never zero."""
        end = self.finished_at or now
        return max(end - (self.started_at or end), 1e-9)
