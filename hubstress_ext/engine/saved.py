"""A saved run read back: the record its report was computed from, so it reports the same."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hubstress_ext.engine import registry
from hubstress_ext.engine.record import RunRecord
from hubstress_ext.errors import OptionError
from hubstress_ext.results.store import read_run


@dataclass
class SavedRun(RunRecord):
    path: Path | None = None
    version: str | None = None  # the hubstress that saved it

    @property
    def df(self) -> pd.DataFrame:
        """Every request attempt as a row (``records.csv``)."""
        return self.frame("records")

    @property
    def users_df(self) -> pd.DataFrame:
        return self.frame("users")

    @property
    def cells_df(self) -> pd.DataFrame:
        """A sweep's cells."""
        return self.frame("cells")

    @property
    def probes(self) -> pd.DataFrame:
        """A capacity search's probes, one row each."""
        return self.frame("probes")

    @property
    def capacity(self) -> float | None:
        """A capacity search's answer (the best grid value's), in the knob's unit."""
        value = self.meta.get("capacity")
        return float(value) if value is not None else None

    def probe(self, index: int) -> SavedRun:
        """A capacity search's probe ``index``, reopened from ``probes/NNN/``."""
        if self.path is None:
            raise FileNotFoundError("this run was not read from disk")
        folder = self.path / "probes" / f"{index:03d}"
        found = sorted(p for p in folder.glob("*") if p.is_dir()) if folder.is_dir() else []
        if not found:
            raise FileNotFoundError(f"{folder}: no saved probe {index} (the search ran {len(self.probes)})")
        return load_run(found[-1])

    def _run_class(self) -> Any:
        try:
            return registry.scenario(self.scenario)
        except OptionError:  # saved by a scenario this installation does not have
            from hubstress_ext.engine.run import Run

            return Run

    def summary(self) -> pd.DataFrame:
        """The table the live run showed (its scenario's ``summary_of``, from the same record)."""
        return self._run_class().summary_of(self)

    def report(self) -> str:
        """The closing report the live run printed (its scenario's ``report_of``)."""
        return self._run_class().report_of(self)

    def __repr__(self) -> str:
        return f"<SavedRun {self.scenario}: {self.status} at {self.path}>"


def load_run(path: str | Path) -> SavedRun:
    """Read a run saved with ``--save`` / ``run.save()``; FileNotFoundError if it is not one."""
    path, meta, frames = read_run(path)
    return SavedRun(
        scenario=meta.get("scenario", "?"),
        status=str(meta.get("status")),
        error=meta.get("error"),
        options=meta.get("options", {}),
        meta=meta.get("meta", {}),
        frames=frames,
        started_at=meta.get("started_at"),
        finished_at=meta.get("finished_at"),
        path=path,
        version=meta.get("version"),
    )
