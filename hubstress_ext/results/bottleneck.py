"""One sentence naming the most likely limit of a hub run, from explicit evidence.

The rules are few and checked in this order; the first that holds is the answer:

1. hub full: spawns refused by ``active_server_limit`` (429 without Retry-After);
2. throttled: spawns refused by ``concurrent_spawn_limit`` (429 with Retry-After);
3. hub CPU: the hub process at >= 90 % of a core for >= 3 s (and >= 20 % of the sampled time),
   counting the time it was ready to run but waited for a core (a machine whose cores are
   shared with the load generator never gives a saturated process all of one);
4. proxy: the proxy process likewise, or the hub's ``proxy_add`` p99 above 1 s;
5. event loop: the hub's own event-loop interval p99 above 0.5 s;
6. spawner: spawns failed in the spawner (or timed out);
7. the machine: the sandbox's processes together asked for >= 90 % of every core of the
   machine for >= 3 s (e.g. 20 real single-user servers starting at once on 2 cores): the
   machine the sandbox runs on, not the hub, set the pace;
otherwise "no limit reached", with the hub's CPU peak when it was sampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from hubstress_ext.results.hub_figures import HubFigures
from hubstress_ext.results.resources import busy_seconds, demand_pct, seconds_at_or_above

BUSY_PCT = 90.0
BUSY_MIN_S = 3.0
BUSY_MIN_SHARE = 0.2
PROXY_ADD_SLOW_S = 1.0
LOOP_LAG_S = 0.5


@dataclass
class Evidence:
    figures: HubFigures | None  # the hub's own account (None without read:metrics)
    users: pd.DataFrame  # lifecycle rows, with ``cause`` for failed spawns
    resources: pd.DataFrame  # sandbox process samples (empty against a hub of one's own)
    spawn_limit: int | None = None  # known for a sandbox hub
    active_limit: int | None = None
    cores: int | None = None  # of the machine the sandbox ran on


def _count_cause(users: pd.DataFrame, cause: str) -> int:
    return int((users["cause"] == cause).sum()) if not users.empty and "cause" in users else 0


def _long_enough(busy_s: float, span_s: float) -> bool:
    """Busy long enough to be the limit: BUSY_MIN_S and BUSY_MIN_SHARE of the sampled time."""
    return busy_s >= BUSY_MIN_S and span_s > 0 and busy_s / span_s >= BUSY_MIN_SHARE


def _busy(resources: pd.DataFrame, role: str) -> str | None:
    """ "CPU at P % for S s" (with the wait for a core when there was one) when the role asked
    for a whole core long enough to be the limit."""
    if resources is None or resources.empty or role not in set(resources["role"]):
        return None
    rows = resources[resources["role"] == role].sort_values("time")
    busy = busy_seconds(resources, role, BUSY_PCT)
    if not _long_enough(busy, rows["time"].max() - rows["time"].min()):
        return None
    text = f"CPU at {rows['cpu_pct'].max():.0f} %"
    saturated = rows.iloc[1:][demand_pct(rows).iloc[1:] >= BUSY_PCT]
    wait = float(saturated["wait_pct"].mean()) if "wait_pct" in saturated else 0.0
    if wait >= 1.0:
        text += f" (+{wait:.0f} % waiting for a core: the machine's cores are shared)"
    return f"{text} for {busy:.0f} s"


def _saturated_machine(resources: pd.DataFrame, cores: int | None) -> str | None:
    """The sandbox's processes together asking for the whole machine, long enough to matter."""
    if resources is None or resources.empty or not cores:
        return None
    rows = resources.assign(demand=demand_pct(resources))
    per_sample = rows.groupby("time")["demand"].sum().sort_index()
    busy = seconds_at_or_above(per_sample, BUSY_PCT * cores)
    if not _long_enough(busy, per_sample.index[-1] - per_sample.index[0]):
        return None
    saturated = per_sample.iloc[1:][per_sample.iloc[1:] >= BUSY_PCT * cores]
    during = rows[rows["time"].isin(saturated.index)]
    by_role = during.groupby("role")[["cpu_pct", "demand"]].mean().sort_values("demand", ascending=False)
    top, top_row = by_role.index[0], by_role.iloc[0]
    waited = top_row["demand"] - top_row["cpu_pct"]
    return (
        f"this machine's {cores} cores were saturated for {busy:.0f} s, mostly by the {top} "
        f"(CPU {top_row['cpu_pct']:.0f} %, +{waited:.0f} % waiting for a core): the machine "
        "running the sandbox, not the hub, set the pace"
    )


def bottleneck(ev: Evidence) -> str:
    f = ev.figures
    hub_full = max(f.hub_full if f else 0, _count_cause(ev.users, "hub full"))
    if hub_full:
        limit = f"={ev.active_limit}" if ev.active_limit else ""
        return (
            f"the hub is full: {hub_full} spawn(s) refused by active_server_limit{limit} "
            "(429 without Retry-After): raise the limit or cull idle servers"
        )
    throttled = f.throttled if f else _count_cause(ev.users, "throttled")
    if throttled:
        limit = f"={ev.spawn_limit}" if ev.spawn_limit else ""
        return (
            f"{throttled} 429s from concurrent_spawn_limit{limit}: spawns queued behind the limit; "
            "raise it or spread arrivals"
        )
    hub = _busy(ev.resources, "hub")
    if hub:
        return f"hub {hub}: the hub process is the limit"
    proxy = _busy(ev.resources, "proxy")
    if proxy:
        return f"proxy {proxy}: the proxy is the limit"
    if f and not math.isnan(f.proxy_add_p99_s) and f.proxy_add_p99_s > PROXY_ADD_SLOW_S:
        return f"proxy p99 {f.proxy_add_p99_s:.1f} s (adding routes): the proxy is the limit"
    if f and not math.isnan(f.event_loop_p99_s) and f.event_loop_p99_s > LOOP_LAG_S:
        return f"the hub's event loop lagged (p99 {f.event_loop_p99_s:.2f} s): the hub process is the limit"
    failed = _count_cause(ev.users, "spawner error") + _count_cause(ev.users, "spawn timeout")
    if failed:
        return f"{failed} spawn(s) failed in the spawner: see failures by cause"
    machine = _saturated_machine(ev.resources, ev.cores)
    if machine:
        return machine
    if ev.resources is not None and not ev.resources.empty and "hub" in set(ev.resources["role"]):
        peak = float(ev.resources[ev.resources["role"] == "hub"]["cpu_pct"].max())
        return f"no limit reached: the hub kept up (hub CPU peak {peak:.0f} %)"
    return "no limit reached: the hub kept up"
