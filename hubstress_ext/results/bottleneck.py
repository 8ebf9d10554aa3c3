"""One sentence naming the most likely limit of a hub run, from explicit evidence.

The evidence is the hub's own account when the token may read it (``read:metrics``), the
sandbox's processes when the run started the sandbox, and always what hubstress itself saw: the
429s and 5xx answers it got, its retries and the time it waited on Retry-After, the users and
sessions that failed and why. The rules are few and checked in this order; the first that holds
is the answer:

1. hub full: spawns refused by ``active_server_limit`` (429 without Retry-After);
2. throttled: spawns refused by ``concurrent_spawn_limit`` (429 with Retry-After), counted by the
   hub and by hubstress (N x 429, the seconds it waited on Retry-After);
3. a busy process: the hub or the proxy at >= 90 % of a core for >= 3 s (and >= 20 % of the
   sampled time), counting the time it was ready to run but waited for a core (a machine whose
   cores are shared with the load generator never gives a saturated process all of one); when
   both were, the one busy longer (the other is named beside it); or the hub's ``proxy_add`` p99
   above 1 s;
4. event loop: the hub's own event-loop interval p99 above 0.5 s;
5. spawner: spawns failed in the spawner (or timed out);
6. failures: users or sessions that failed, by their leading cause and where it happened (hub,
   proxy, single-user server, kernel), and 5xx answers hubstress got;
7. the machine: the sandbox's processes together asked for >= 90 % of every core of the
   machine for >= 3 s (e.g. 20 real single-user servers starting at once on 2 cores): the
   machine the sandbox runs on, not the hub, set the pace;
otherwise "no limit reached", with the hub's CPU peak when it was sampled. A run that sent no
load gets no bottleneck line at all (its report says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
    records: pd.DataFrame = field(default_factory=pd.DataFrame)  # every request hubstress sent
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)  # session-test's students


@dataclass
class ClientSaw:
    """What hubstress itself was answered: evidence with or without the hub's metrics."""

    spawn_429: int = 0  # spawn requests answered 429
    waited_s: float = 0.0  # from each retried attempt's end to its next attempt, summed
    status_5xx: dict[int, int] = field(default_factory=dict)  # 5xx answers by status

    @classmethod
    def of(cls, records: pd.DataFrame) -> ClientSaw:
        if records is None or records.empty:
            return cls()
        status = records["status"]
        waited = 0.0
        if "will_retry" in records and records["will_retry"].any():
            ordered = records.sort_values("start")
            nxt = ordered.groupby(["op", "method", "path", "user"], dropna=False)["start"].shift(-1)
            gaps = (nxt - ordered["end"])[ordered["will_retry"].astype(bool)]
            waited = float(gaps.clip(lower=0).sum())
        fives = status[(status >= 500) & status.notna()].astype(int).value_counts().sort_index()
        return cls(
            spawn_429=int(((records["op"] == "spawn") & (status == 429)).sum()),
            waited_s=waited,
            status_5xx={int(k): int(v) for k, v in fives.items()},
        )

    def throttle_text(self) -> str:
        text = f"hubstress got {self.spawn_429} x 429"
        if self.waited_s >= 0.05:
            text += f", waited {self.waited_s:.1f} s on Retry-After, summed over requests"
        return text


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


# where a session's failing step happened (its reason starts with the step's words)
STEP_PLACES = (
    ("token", "the hub"),
    ("login", "the hub's login"),
    ("oauth", "the hub's OAuth"),
    ("kernel", "the single-user server"),
    ("websocket", "the kernel's websocket"),
    ("execute", "the kernel"),
    ("output", "the kernel"),
    ("server", "the spawner"),
    ("spawn", "the spawner"),
)
CAUSE_PLACES = {
    "throttled": "the hub",
    "hub full": "the hub",
    "spawn timeout": "the spawner",
    "spawner error": "the spawner",
    "proxy error": "the proxy",
    "hub unreachable": "the hub (no answer)",
    "refused": "the hub",
}


def _place_of_step(reason: str) -> str:
    text = reason.lower()
    for word, place in STEP_PLACES:
        if text.startswith(word):
            return place
    return "the session"


def _failures(ev: Evidence, saw: ClientSaw) -> str | None:
    """Users or sessions that failed, by their leading cause and where; else 5xx answers."""
    users = ev.users
    if users is not None and not users.empty and "reason" in users:
        failed = users[users["reason"].notna()]
        if not failed.empty:
            causes = failed["cause"].fillna(failed["reason"]) if "cause" in failed else failed["reason"]
            counts = causes.value_counts()
            top, n = counts.index[0], int(counts.iloc[0])
            where = CAUSE_PLACES.get(top, "the hub")
            return (
                f"{len(failed)} of {len(users)} user(s) failed, {n} by {top} (in {where}): "
                "see failures by cause"
            )
    sessions = ev.sessions
    if sessions is not None and not sessions.empty and "reason" in sessions:
        failed = sessions[sessions["reason"].notna()]
        if not failed.empty:
            counts = failed["reason"].value_counts()
            top, n = counts.index[0], int(counts.iloc[0])
            return (
                f"{len(failed)} of {len(sessions)} session(s) failed, {n} with '{top}' "
                f"(in {_place_of_step(top)}): see failures by reason"
            )
    if saw.status_5xx:
        answers = ", ".join(f"{n} x {code}" for code, n in saw.status_5xx.items())
        return f"hubstress got {answers} (answers of the proxy or the hub under load): see the table"
    return None


def _busy_process(ev: Evidence) -> str | None:
    """The hub or the proxy, whichever was busy longer (both named when both were)."""
    found = {}
    for role in ("hub", "proxy"):
        text = _busy(ev.resources, role)
        if text:
            found[role] = (busy_seconds(ev.resources, role, BUSY_PCT), text)
    if not found:
        return None
    role = max(found, key=lambda r: (found[r][0], r == "hub"))
    limit = "the hub process is the limit" if role == "hub" else "the proxy is the limit"
    line = f"{role} {found[role][1]}: {limit}"
    other = [r for r in found if r != role]
    if other:
        line += f" (the {other[0]} was busy too, for {found[other[0]][0]:.0f} s)"
    return line


def bottleneck(ev: Evidence) -> str:
    f = ev.figures
    saw = ClientSaw.of(ev.records)
    hub_full = max(f.hub_full if f else 0, _count_cause(ev.users, "hub full"))
    if hub_full:
        limit = f"={ev.active_limit}" if ev.active_limit else ""
        return (
            f"the hub is full: {hub_full} spawn(s) refused by active_server_limit{limit} "
            "(429 without Retry-After): raise the limit or cull idle servers"
        )
    throttled = max(f.throttled if f else 0, saw.spawn_429, _count_cause(ev.users, "throttled"))
    if throttled:
        limit = f"={ev.spawn_limit}" if ev.spawn_limit else ""
        counted = (
            f"the hub counted {f.throttled}" if f else "the hub's count not visible without read:metrics"
        )
        return (
            f"{throttled} 429s from concurrent_spawn_limit{limit} ({counted}; {saw.throttle_text()}): "
            "spawns queued behind the limit; raise it or spread arrivals"
        )
    busy = _busy_process(ev)
    if busy:
        return busy
    if f and not math.isnan(f.proxy_add_p99_s) and f.proxy_add_p99_s > PROXY_ADD_SLOW_S:
        return f"proxy p99 {f.proxy_add_p99_s:.1f} s (adding routes): the proxy is the limit"
    if f and not math.isnan(f.event_loop_p99_s) and f.event_loop_p99_s > LOOP_LAG_S:
        return f"the hub's event loop lagged (p99 {f.event_loop_p99_s:.2f} s): the hub process is the limit"
    failed = _count_cause(ev.users, "spawner error") + _count_cause(ev.users, "spawn timeout")
    if failed:
        return f"{failed} spawn(s) failed in the spawner: see failures by cause"
    failures = _failures(ev, saw)
    if failures:
        return failures
    machine = _saturated_machine(ev.resources, ev.cores)
    if machine:
        return machine
    unseen = "" if f else "; the hub's own figures not visible without read:metrics"
    if ev.resources is not None and not ev.resources.empty and "hub" in set(ev.resources["role"]):
        peak = float(ev.resources[ev.resources["role"] == "hub"]["cpu_pct"].max())
        return f"no limit reached: the hub kept up (hub CPU peak {peak:.0f} %{unseen})"
    return f"no limit reached: the hub kept up{' (' + unseen[2:] + ')' if unseen else ''}"
