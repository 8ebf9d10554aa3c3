"""What a bench reports: one flat dict (the ``--json`` object) computed from the records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hubstress_ext.loadgen.loops import UNFINISHED
from hubstress_ext.loadgen.recorder import OK
from hubstress_ext.results.summary import percentiles


def bench_stats(df: pd.DataFrame, elapsed_s: float, client_cpu_s: float | None = None) -> dict[str, Any]:
    """Counts, rates and latency percentiles over one load.

    ``requests`` counts every request sent (or scheduled, open loop); it always equals ``ok``
    plus the failures in ``errors`` (by reason). ``qps`` is successful answers per second,
    ``rps`` all answers per second, both over ``elapsed_s``. Latency counts from the
    intended send time (the same as the actual one in a closed loop).
    """
    outcomes = df["outcome"].astype(str).value_counts() if len(df) else pd.Series(dtype=int)
    ok = int(outcomes.get(OK, 0))
    errors = {str(k): int(v) for k, v in outcomes.items() if k != OK}
    answered = df[df["outcome"].astype(str) != UNFINISHED] if len(df) else df
    done_ok = df[df["outcome"].astype(str) == OK] if len(df) else df
    lat = done_ok["latency_ms"].to_numpy() if len(done_ok) else np.array([])
    ts_diff = done_ok["ts_diff_ms"].dropna().to_numpy() if len(done_ok) else np.array([])
    figures = percentiles(lat)
    p50, p90, p99 = figures["p50"], figures["p90"], figures["p99"]
    out: dict[str, Any] = {
        "requests": int(len(df)),
        "ok": ok,
        "failed": int(len(df)) - ok,
        "errors": errors,
        "elapsed_s": round(elapsed_s, 3),
        "qps": round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "rps": round(len(answered) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "mean_ms": _r(lat.mean()) if lat.size else None,
        "p50_ms": _r(p50),
        "p90_ms": _r(p90),
        "p99_ms": _r(p99),
        "max_ms": _r(lat.max()) if lat.size else None,
        "ts_diff_mean_ms": _r(ts_diff.mean()) if ts_diff.size else None,
        "ts_diff_p99_ms": _r(percentiles(ts_diff)["p99"]) if ts_diff.size else None,
    }
    sizes = done_ok["batch_size"].to_numpy() if len(done_ok) else np.array([])
    sizes = sizes[sizes > 0]
    if sizes.size:
        out["batch_size_mean"] = _r(sizes.mean())
    if client_cpu_s is not None:
        out["client_cpu_s"] = round(client_cpu_s, 3)
        out["client_cpu_pct"] = round(client_cpu_s / elapsed_s * 100.0, 1) if elapsed_s > 0 else None
        out["client_cpu_us_per_request"] = round(client_cpu_s / len(df) * 1e6, 1) if len(df) else None
    return out


def timeline(df: pd.DataFrame, bin_s: float = 1.0) -> pd.DataFrame:
    """Per-interval QPS and latency (by completion time, since the load's start): what the
    bench chart plots."""
    if df.empty:
        return pd.DataFrame(columns=["t", "qps", "errors_per_s", "p50_ms", "p99_ms"])
    bins = (df["t_done"] // bin_s).astype(int)
    ok = df["outcome"].astype(str) == OK
    grouped = df[ok].groupby(bins[ok])["latency_ms"]
    out = pd.DataFrame(
        {
            "qps": ok.groupby(bins).sum() / bin_s,
            "errors_per_s": (~ok).groupby(bins).sum() / bin_s,
            "p50_ms": grouped.quantile(0.5),
            "p99_ms": grouped.quantile(0.99),
        }
    )
    # the last interval is only partly covered (the run ended inside it): its rates are per
    # second of what it covers, and a sliver of an interval is left out, not drawn as a collapse
    last = out.index.max()
    covered = float(df["t_done"].max()) - last * bin_s
    if covered < 0.25 * bin_s and len(out) > 1:
        out = out.drop(index=last)
    elif 0 < covered < bin_s:
        out.loc[last, ["qps", "errors_per_s"]] *= bin_s / covered
    out.index = out.index * bin_s
    out.index.name = "t"
    return out.reset_index()


def _r(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 3)
