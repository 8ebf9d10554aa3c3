"""Saved runs: a directory with ``meta.json`` (options minus the token), ``records.csv``,
and ``users.csv`` for hub scenarios. ``load_run`` reads it back for reports and comparisons.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hubstress_ext import __version__

if TYPE_CHECKING:
    from hubstress_ext.engine.run import Run

META = "meta.json"
RECORDS = "records.csv"
USERS = "users.csv"
CELLS = "cells.csv"


def save_run(run: Run, directory: str | Path) -> Path:
    """Write the run under ``directory/<timestamp>-<scenario>/`` and return that path."""
    stamp = dt.datetime.fromtimestamp(run.started_at or 0).strftime("%Y%m%d-%H%M%S")
    base = Path(directory)
    path = base / f"{stamp}-{run.scenario}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{run.scenario}-{n}"
    path.mkdir(parents=True)
    meta = {
        "tool": "hubstress",
        "version": __version__,
        "scenario": run.scenario,
        "status": run.status,
        "error": run.error,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "options": run.options.public(),
        "meta": run.meta,
    }
    text = json.dumps(meta, indent=2, default=str)
    token = getattr(run.options, "token", None)
    if token and token in text:  # defence in depth: a token must never reach disk
        text = text.replace(token, "***")
    (path / META).write_text(text + "\n")
    for stem, frame in run.frames().items():
        if not frame.empty:
            frame.to_csv(path / f"{stem}.csv", index=False)
    return path


@dataclass
class SavedRun:
    path: Path
    meta: dict[str, Any]
    df: pd.DataFrame
    users_df: pd.DataFrame = field(default_factory=pd.DataFrame)
    cells_df: pd.DataFrame = field(default_factory=pd.DataFrame)  # a sweep's cells

    @property
    def scenario(self) -> str:
        return self.meta.get("scenario", "?")

    def _repr_html_(self) -> str:
        import html

        from hubstress_ext.notebook.live import summary_html

        head = f"<b>hubstress {html.escape(self.scenario)}</b>: {html.escape(str(self.meta.get('status')))}"
        where = html.escape(str(self.path))
        return f"<div class='hubstress-run'><p>{head} (saved run {where})</p>{summary_html(self)}</div>"

    def summary(self) -> pd.DataFrame:
        """The same table the live run shows: phases for a spawn storm, else per operation."""
        from hubstress_ext.results.phases import phase_table
        from hubstress_ext.results.summary import summarize

        if self.scenario == "stress-test" and not self.users_df.empty:
            return phase_table(self.df, self.users_df)
        if self.scenario == "bench":
            return pd.DataFrame([self.meta.get("meta", {}).get("stats", {})])
        if self.scenario == "sweep":
            return self.cells_df
        return summarize(self.df)


def load_run(path: str | Path) -> SavedRun:
    path = Path(path)
    meta_file = path / META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved hubstress run (no {META})")
    meta = json.loads(meta_file.read_text())
    df = pd.read_csv(path / RECORDS) if (path / RECORDS).is_file() else pd.DataFrame()
    if "will_retry" in df:
        df["will_retry"] = df["will_retry"].astype(bool)
    if "status" in df:
        df["status"] = df["status"].astype("Int64")
    users = pd.read_csv(path / USERS) if (path / USERS).is_file() else pd.DataFrame()
    cells = pd.read_csv(path / CELLS) if (path / CELLS).is_file() else pd.DataFrame()
    return SavedRun(path, meta, df, users, cells)
