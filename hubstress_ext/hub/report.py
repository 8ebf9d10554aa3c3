"""The text report of a hub scenario: its table, then what that scenario adds."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hubstress_ext.results.bottleneck import Evidence, bottleneck
from hubstress_ext.results.hub_figures import HubFigures, client_429s, comparison_table
from hubstress_ext.results.phases import failures_by_reason, spawn_latency_ms
from hubstress_ext.results.resources import resource_summary
from hubstress_ext.results.summary import format_table


def tables(summary: pd.DataFrame) -> list[str]:
    if summary.empty:
        return ["(no requests recorded)"]
    return ["", format_table(summary)]


def spawn_lines(users: pd.DataFrame) -> list[str]:
    """Spawn latency percentiles and failures by reason (a spawn storm's addition)."""
    if users.empty:
        return []
    lat = spawn_latency_ms(users)
    ready = int(users["ready"].notna().sum())
    lines = [
        "",
        f"spawn latency (request -> ready), {ready}/{len(users)} ready: "
        + "  ".join(f"{k.removesuffix('_ms')}={v / 1000:.2f}s" for k, v in lat.items() if pd.notna(v)),
    ]
    failures = failures_by_reason(users)
    if not failures.empty:
        if failures.index.nlevels > 1:  # (cause, reason): the cause as the row label
            failures = failures.reset_index().set_index("cause")
        lines += ["", "failures by cause:", format_table(failures)]
    return lines


def no_load_lines(error: str | None, status: str) -> list[str]:
    """A run that never got to its load: nothing to account for, no limit to name."""
    why = error or f"the run was {status} before its load began"
    return [f"no load was sent: {why}"]


def hub_account_lines(
    figures: HubFigures | None, records: pd.DataFrame, users: pd.DataFrame, error: str | None
) -> list[str]:
    """The hub's own figures beside the client's, and whether the two counts of 429s agree."""
    if figures is None:
        why = error or "no scrape of /hub/metrics"
        return ["", f"the hub's own figures are not available ({why}); the verdict uses the client's"]
    lines = ["", "the hub's account (its /hub/metrics, before and after the load) beside hubstress's:"]
    lines.append(format_table(comparison_table(figures, records, users)))
    seen = client_429s(records)
    refused = figures.throttled + figures.hub_full
    if refused or seen:
        same = "they agree" if refused == seen else "they differ"
        lines.append(f"spawns refused with 429: the hub counted {refused}, hubstress saw {seen}: {same}")
    return lines


def resource_lines(summary: pd.DataFrame) -> list[str]:
    if summary.empty:
        return []
    return [
        "",
        "sandbox processes (CPU % of one core, sampled every second):",
        format_table(summary.round(1)),
    ]


def evidence(
    figures: HubFigures | None,
    users: pd.DataFrame,
    resources: pd.DataFrame,
    meta: dict[str, Any],
    records: pd.DataFrame | None = None,
    sessions: pd.DataFrame | None = None,
) -> Evidence:
    """What the bottleneck rules look at (the sandbox's limits when the run started one)."""
    sandbox = meta.get("sandbox", {})
    return Evidence(
        figures,
        users,
        resources,
        sandbox.get("concurrent_spawn_limit"),
        sandbox.get("active_server_limit"),
        sandbox.get("cpu_count"),
        records if records is not None else pd.DataFrame(),
        sessions if sessions is not None else pd.DataFrame(),
    )


def account_lines(
    figures: HubFigures | None,
    records: pd.DataFrame,
    users: pd.DataFrame,
    resources: pd.DataFrame,
    meta: dict[str, Any],
    sessions: pd.DataFrame | None = None,
) -> list[str]:
    """The hub's account, the sandbox's processes and the bottleneck line (live or saved)."""
    lines = hub_account_lines(figures, records, users, meta.get("metrics_error"))
    lines += resource_lines(resource_summary(resources))
    line = bottleneck(evidence(figures, users, resources, meta, records, sessions))
    return lines + ["", f"bottleneck: {line}"]
