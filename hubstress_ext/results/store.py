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
    for secret in getattr(run, "secrets", []):  # defence in depth: no secret ever reaches disk
        text = text.replace(secret, "***")
    (path / META).write_text(text + "\n")
    for stem, frame in run.frames().items():
        if not frame.empty:
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
        if "will_retry" in df:
            df["will_retry"] = df["will_retry"].astype(bool)
        if "status" in df and pd.api.types.is_numeric_dtype(df["status"]):  # HTTP statuses
            df["status"] = df["status"].astype("Int64")
        frames[csv.stem] = df
    return path, meta, frames
