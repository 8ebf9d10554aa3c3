"""Saved runs on disk: a directory with ``meta.json`` (options minus the token) and one CSV
per frame the run saves (``records.csv``; ``users.csv`` for hub scenarios, ``cells.csv`` for a
sweep). ``hubstress_ext.load_run`` (``engine.saved``) reads one back as a ``SavedRun``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd

from hubstress_ext.version import __version__

META = "meta.json"


def save_run(run: Any, directory: str | Path) -> Path:
    """Write the run's record (``run.record()``) under ``directory/<timestamp>-<scenario>/``
    and return that path. Each frame's column types go into ``meta.json`` so that reading it
    back gives the frames the live report read (a CSV alone loses them)."""
    record = run.record()
    stamp = dt.datetime.fromtimestamp(record.started_at or 0).strftime("%Y%m%d-%H%M%S")
    base = Path(directory)
    path = base / f"{stamp}-{record.scenario}"
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{record.scenario}-{n}"
    path.mkdir(parents=True)
    frames = {stem: frame for stem, frame in record.frames.items() if not frame.empty}
    meta = {
        "tool": "hubstress",
        "version": __version__,
        "scenario": record.scenario,
        "status": record.status,
        "error": record.error,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "options": record.options,
        "meta": record.meta,
        "dtypes": {stem: {str(c): str(t) for c, t in frame.dtypes.items()} for stem, frame in frames.items()},
    }
    text = json.dumps(meta, indent=2, default=str)
    for secret in getattr(run, "secrets", []):  # defence in depth: no secret ever reaches disk
        text = text.replace(secret, "***")
    (path / META).write_text(text + "\n")
    for stem, frame in frames.items():
        frame.to_csv(path / f"{stem}.csv", index=False)
    return path


def read_run(path: str | Path) -> tuple[Path, dict[str, Any], dict[str, pd.DataFrame]]:
    """(path, meta, frames by file stem) of a saved run; FileNotFoundError if it is not one."""
    path = Path(path)
    meta_file = path / META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved hubstress run (no {META})")
    meta = json.loads(meta_file.read_text())
    frames = {}
    for csv in sorted(path.glob("*.csv")):
        df = pd.read_csv(csv)
        types = meta.get("dtypes", {}).get(csv.stem)
        frames[csv.stem] = _typed(df, types) if types else _guess_types(df)
    return path, meta, frames


def _typed(df: pd.DataFrame, types: dict[str, str]) -> pd.DataFrame:
    """Each column back to the type it had when saved; a text column's blanks back to None."""
    for column, kind in types.items():
        if column not in df:
            continue
        if kind == "object":
            df[column] = df[column].astype(object).where(df[column].notna(), None)
            continue
        try:
            df[column] = df[column].astype(kind)
        except (TypeError, ValueError):  # a type the CSV cannot bring back: left as read
            pass
    return df


def _guess_types(df: pd.DataFrame) -> pd.DataFrame:
    """Runs saved before the types were: the two columns whose type the reports rely on."""
    if "will_retry" in df:
        df["will_retry"] = df["will_retry"].astype(bool)
    if "status" in df and pd.api.types.is_numeric_dtype(df["status"]):  # HTTP statuses
        df["status"] = df["status"].astype("Int64")
    return df
