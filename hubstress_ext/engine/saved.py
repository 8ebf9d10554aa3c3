"""A saved run read back: the same tables and report the live run gave, from its files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hubstress_ext.engine import registry
from hubstress_ext.results.store import read_run


@dataclass
class SavedRun:
    path: Path
    meta: dict[str, Any]
    df: pd.DataFrame
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # every saved CSV by stem

    @property
    def scenario(self) -> str:
        return self.meta.get("scenario", "?")

    @property
    def status(self) -> str:
        return str(self.meta.get("status"))

    @property
    def error(self) -> str | None:
        return self.meta.get("error")

    @property
    def users_df(self) -> pd.DataFrame:
        return self.frames.get("users", pd.DataFrame())

    @property
    def cells_df(self) -> pd.DataFrame:
        """A sweep's cells."""
        return self.frames.get("cells", pd.DataFrame())

    def _run_class(self) -> Any:
        try:
            return registry.scenario(self.scenario)
        except ValueError:  # saved by a scenario this installation does not have
            from hubstress_ext.engine.run import Run

            return Run

    def summary(self) -> pd.DataFrame:
        """The same table the live run showed (its scenario's ``saved_summary``)."""
        return self._run_class().saved_summary(self)

    def report(self) -> str:
        """The closing report, as ``hubstress report DIR`` prints it."""
        head = f"hubstress {self.scenario}: {self.status} (saved run {self.path})"
        return head + "\n" + self._run_class().saved_report(self)

    def __repr__(self) -> str:
        return f"<SavedRun {self.scenario}: {self.status} at {self.path}>"


def load_run(path: str | Path) -> SavedRun:
    """Read a run saved with ``--save`` / ``run.save()``; FileNotFoundError if it is not one."""
    path, meta, frames = read_run(path)
    return SavedRun(path, meta, frames.get("records", pd.DataFrame()), frames)
