"""session-test: rehearse a class. Simulated students arrive over time, each starts a server,
opens a kernel through the proxy, runs code with think time in between, and leaves.

Each student, from their arrival in the plan (:mod:`hubstress_ext.hub.arrivals`):

1. starts their server (as in stress-test: the spawn request, then the progress stream);
2. signs in: a token made for them through the admin API, or the hub's login form and the
   OAuth redirect to their server (``--login form``);
3. through the proxy's public URL ``/user/<name>/``: starts a kernel, opens its websocket,
   runs the code (``--runs`` times, or until the session ends) with think time between runs,
   checks each output (``--expect-output``), and polls contents/kernels/sessions in the
   background as an open JupyterLab tab does;
4. leaves: shuts the kernel down, stops the server and deletes the user (unless ``--keep``),
   while the rest of the class goes on.

A stop (Ctrl-C, ``run.stop()``) ends every session: kernels still open are shut down first,
then servers are stopped and users deleted (teardown).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hubstress_ext.engine.options import ShardOptions
from hubstress_ext.engine.record import RunRecord
from hubstress_ext.engine.spec import option
from hubstress_ext.errors import OptionError
from hubstress_ext.http.client import gather_limited
from hubstress_ext.hub.api import HubAPI, HubError
from hubstress_ext.hub.arrivals import ARRIVALS, Student, plan_class
from hubstress_ext.hub.options import ServerOptions
from hubstress_ext.hub.scenario import UserScenario
from hubstress_ext.hub.singleuser import SessionStepError, UserServer
from hubstress_ext.hub.spawn import ServerStarter
from hubstress_ext.hub.teardown import delete_user, delete_users, stop_server, stop_servers
from hubstress_ext.hub.timing import Span, parse_duration, parse_rate, parse_span, span_normalizer
from hubstress_ext.results import charts
from hubstress_ext.results.sessions import (
    SessionRow,
    SessionTable,
    active_over_time,
    execute_over_time,
    failures_by_reason,
    peak_active,
    step_table,
)
from hubstress_ext.results.summary import format_table, percentiles

DEFAULT_PASSWORD = "hubstress"  # --login form without --password (dummy authenticators take any)
TOKEN_MARGIN_S = 3600  # a student's token outlives their session by this much (then expires)


@dataclass
class SessionOptions(ServerOptions, ShardOptions):
    arrival: str = option(
        "poisson",
        "how students arrive: all at once (burst), evenly over --period, at random at --rate "
        "(poisson), or --wave-size at a time every --wave-every (batches)",
        choices=ARRIVALS,
        panel=True,
    )
    rate: float = option(
        1.0,
        "poisson (and even without --period): arrivals per second, or written as 60/min, 300/h",
        parse=parse_rate("--rate"),
        low=0,
        above=True,
        metavar="RATE",
        panel=True,
        label="arrivals per second",
    )
    period: float = option(
        0.0,
        "even: spread the arrivals over this long (s/m suffix; default: count / rate)",
        parse=parse_duration("--period"),
        low=0,
        unit="seconds",
    )
    wave_size: int = option(10, "batches: students arriving together", low=1)
    wave_every: float = option(
        30.0,
        "batches: time between waves (s/m suffix)",
        parse=parse_duration("--wave-every"),
        low=0,
        unit="seconds",
    )
    seed: int = option(0, "seed of the plan: arrivals, session lengths and think times")
    session: Span = option(
        Span(60.0, 120.0),
        "how long a student stays once their server is ready: SECONDS or MIN-MAX, s/m suffixes (2-5m)",
        parse=parse_span("--session"),
        normalize=span_normalizer("--session"),
        metavar="MIN-MAX",
        panel=True,
        panel_default=Span(20.0, 40.0),
    )
    think: Span = option(
        Span(5.0, 20.0),
        "pause between runs of the code: SECONDS or MIN-MAX",
        parse=parse_span("--think"),
        normalize=span_normalizer("--think"),
        metavar="MIN-MAX",
        panel=True,
        panel_default=Span(2.0, 5.0),
    )
    runs: int | None = option(
        None, "run the code this many times, then leave (default: until the session ends)", low=1
    )
    code: str = option("1 + 1", "the code each student runs; @FILE reads it from a file", panel=True)
    expect_output: str | None = option(
        None, "what each run must print or return (else it fails: output mismatch)", panel=True
    )
    poll_interval: float = option(
        10.0,
        "seconds between a student's background polls of contents, kernels and sessions (0: off)",
        parse=parse_duration("--poll-interval"),
        low=0,
        unit="seconds",
    )
    login: str = option(
        "token",
        "how students sign in: a token made per user (admin API, needs the tokens scope), "
        "or the hub's login form and OAuth as a browser does (dummy/native-style authenticators)",
        choices=("token", "form"),
        panel=True,
    )
    password: str | None = option(
        None, f"--login form: the students' password (default {DEFAULT_PASSWORD!r})", secret=True
    )
    kernel_name: str = option("python3", "the kernel each student starts")
    execute_timeout: float = option(
        60.0, "seconds one run of the code may take", low=0, above=True, unit="seconds"
    )

    def validate(self) -> None:
        super().validate()
        if self.code.startswith("@"):
            path = Path(self.code[1:]).expanduser()
            try:
                self.code = path.read_text()
            except OSError as exc:
                raise OptionError(f"--code {self.code}: cannot read it ({exc.strerror or exc})") from None
        if not self.code.strip():
            raise OptionError("--code is empty: give the code each student runs")
        if self.arrival == "even" and not self.period:
            self.period = self.count / self.rate
        if self.arrival == "batches" and not self.wave_every and self.wave_size < self.count:
            raise OptionError("--wave-every must be above 0 when there is more than one wave")

    def plan(self) -> list[Student]:
        return plan_class(
            self.arrival,
            self.count,
            self.session,
            self.seed,
            rate=self.rate,
            period=self.period,
            wave_size=self.wave_size,
            wave_every=self.wave_every,
        )

    def describe_plan(self) -> str:
        how = {
            "burst": "all at once",
            "even": f"evenly over {self.period:g}s",
            "poisson": f"at random, {self.rate * 60:g}/min",
            "batches": f"{self.wave_size} every {self.wave_every:g}s",
        }[self.arrival]
        return (
            f"{self.count} students arrive {how} (seed {self.seed}); sessions {self.session}s, "
            f"think {self.think}s, "
            + (f"{self.runs} runs" if self.runs else "running until the session ends")
        )


class SessionRun(UserScenario):
    """rehearse a class: students arrive, run code in a kernel through the proxy, and leave"""

    scenario = "session-test"
    options_type = SessionOptions
    options: SessionOptions
    heartbeat_s = 5.0  # students in session talk to their servers, not the hub: watch it anyway
    shard_phase = "sessions"

    def __init__(self, options: SessionOptions) -> None:
        super().__init__(options)
        self.plan = options.plan()
        self.meta["plan"] = options.describe_plan()
        self.sessions = SessionTable()
        self.open_servers: dict[str, UserServer] = {}  # students still in class (their browser tabs)
        self.starter: ServerStarter | None = None
        self.public_url = ""

    # -- the class -----------------------------------------------------------------------------

    async def preflight(self, api: HubAPI) -> None:
        opts = self.options
        if opts.login == "token" and api.scopes and not any(s.split("!")[0] == "tokens" for s in api.scopes):
            raise HubError(
                "--login token makes a token for each student: the admin token needs the tokens scope "
                "(or use --login form on a hub with a login form)"
            )
        if opts.sandbox and opts.sandbox_spawner == "real" and not opts.dry_run:
            # the sandbox's real servers run here: their kernels are this environment's
            from jupyter_client.kernelspec import KernelSpecManager

            specs = KernelSpecManager().find_kernel_specs()
            if opts.kernel_name not in specs:
                found = ", ".join(sorted(specs)) or "none"
                raise HubError(
                    f"--kernel-name {opts.kernel_name}: the sandbox's real servers have no such kernel "
                    f"here (found: {found}); `pip install ipykernel` installs python3"
                )

    async def load(self, api: HubAPI) -> None:
        opts = self.options
        if api.client.dry_run:
            self.print_plan(opts.describe_plan())
            for student in self.plan:
                self.print_plan(student.describe())
        names = await self.create_users(api)
        if api.client.dry_run:
            self.print_plan(
                "each student: POST /users/NAME/server (then its progress), POST /users/NAME/tokens; "
                "through the proxy /user/NAME/: POST api/kernels, websocket api/kernels/ID/channels, "
                "execute_request with think time, GET api/contents|kernels|sessions every "
                f"{opts.poll_interval:g}s; DELETE api/kernels/ID, "
                "DELETE /users/NAME/server, DELETE /users/NAME"
            )
            return
        self.meta["class_started"] = time.time()
        await self.load_users(api, names)

    async def work(self, api: HubAPI, names: list[str], indices: list[int], t0: float | None) -> None:
        """The students ``names`` (student ``indices[k]`` of the plan), arriving from ``t0``."""
        self.public_url = api.hub_url.removesuffix("/hub")
        self.starter = ServerStarter(api, self.users, self.options)
        students = [(self.plan[i], name) for i, name in zip(indices, names, strict=True)]
        self.progress.begin("ready", len(students))
        self.progress.begin("sessions", len(students))
        t0 = asyncio.get_running_loop().time() if t0 is None else t0
        await asyncio.gather(*(self.student(api, s, name, t0) for s, name in students))

    async def student(self, api: HubAPI, plan: Student, name: str, t0: float) -> None:
        opts = self.options
        loop = asyncio.get_running_loop()
        row = self.sessions.add(SessionRow(name, plan.arrive, plan.session))
        wait = t0 + plan.arrive - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        row.arrived = time.time()
        assert self.starter is not None
        ready = await self.starter.start(name)
        self.progress.advance("ready", failed=not ready)
        if not ready:
            row.reason, row.ended = self.users[name].reason, time.time()
            self.progress.advance("sessions", failed=True)
            return
        row.started = self.users[name].ready
        leave_at = loop.time() + plan.session
        try:
            server = await self._sign_in(api, name)
            await server.start_kernel(opts.kernel_name)
            row.kernel_started = time.time()
            await server.connect(opts.execute_timeout)
            row.connected = time.time()
            await self._work(server, row, plan, leave_at)
        except SessionStepError as exc:
            row.reason = row.reason or exc.reason
        await self._leave(name)
        row.ended = time.time()
        if not opts.keep:  # stop as you go: the class keeps going while this student leaves
            await stop_server(api, name, self.users, opts.stop_timeout, opts.server_name)
            await delete_user(api, name, self.users)
        self.progress.advance("sessions", failed=row.reason is not None)

    async def _sign_in(self, api: HubAPI, name: str) -> UserServer:
        opts = self.options
        token = None
        if opts.login == "token":
            expires = int(self.options.session.hi + TOKEN_MARGIN_S)
            resp = await api.create_token(name, expires)
            token = (resp.json() or {}).get("token") if resp.ok else None
            if not token:
                raise SessionStepError(f"token failed: {resp.reason()}")
        server = UserServer(
            self.public_url,
            name,
            self.sink,
            token=token,
            request_timeout=opts.request_timeout,
            max_attempts=opts.max_retries + 1,
            deadline=api.client.deadline,
        )
        self.open_servers[name] = await server.open()
        if opts.login == "form":
            await server.login_form(opts.password or DEFAULT_PASSWORD)
        return server

    async def _work(self, server: UserServer, row: SessionRow, plan: Student, leave_at: float) -> None:
        """Run the code with think time until the session ends, polling in the background."""
        opts = self.options
        loop = asyncio.get_running_loop()
        rng = random.Random(plan.seed)
        poller = (
            asyncio.ensure_future(self._poll(server, rng.random(), leave_at)) if opts.poll_interval else None
        )
        assert server.channel is not None
        try:
            while loop.time() < leave_at and (opts.runs is None or row.executes < opts.runs):
                outcome = await server.channel.execute(opts.code, opts.expect_output)
                row.executes += 1
                if outcome.error is not None:
                    row.execute_failures += 1
                    row.reason = row.reason or outcome.error
                    if outcome.error.startswith(("websocket", "execute timed out")):
                        return  # the kernel is out of reach: this student gives up
                remaining = leave_at - loop.time()
                if remaining <= 0 or (opts.runs is not None and row.executes >= opts.runs):
                    return
                await asyncio.sleep(min(rng.uniform(opts.think.lo, opts.think.hi), remaining))
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)

    async def _poll(self, server: UserServer, phase: float, leave_at: float) -> None:
        """What an open Lab tab asks in the background (the first poll at a random offset)."""
        loop = asyncio.get_running_loop()
        interval = self.options.poll_interval
        await asyncio.sleep(phase * interval)
        while loop.time() < leave_at:
            await server.poll()
            await asyncio.sleep(interval)

    async def _leave(self, name: str) -> None:
        """Close the student's tab: shut their kernel down (a server never stops under it)."""
        server = self.open_servers.get(name)
        if server is None:
            return
        row = self.sessions[name]
        if not await server.stop_kernel():
            row.reason = row.reason or "kernel stop failed"
        await server.close()
        self.open_servers.pop(name, None)

    async def shard_cleanup(self) -> None:
        """A stopped shard closes its students' tabs: kernels shut down before the coordinator
        stops their servers."""
        if self.open_servers:
            await gather_limited(
                self.options.batch_size, [lambda n=n: self._leave(n) for n in list(self.open_servers)]
            )
        for server in list(self.open_servers.values()):
            await server.close()
        self.open_servers.clear()

    def shard_counts(self) -> tuple[int, int]:
        rows = self.sessions.rows()
        return sum(r.ended is not None for r in rows), sum(r.reason is not None for r in rows)

    # -- teardown (after a stop, or what stop-as-you-go could not finish) ----------------------

    async def teardown(self, api: HubAPI) -> None:
        opts = self.options
        if self.open_servers:
            await gather_limited(
                opts.batch_size, [lambda n=n: self._leave(n) for n in list(self.open_servers)]
            )
        running = [
            n
            for n in self.created
            if self.users[n].spawn_requested is not None and self.users[n].stopped is None
        ]
        if running:
            await stop_servers(
                api, running, opts.batch_size, self.users, self.progress, opts.stop_timeout, opts.server_name
            )
        left = [n for n in self.created if self.users[n].deleted is None]
        if left:
            await delete_users(api, left, opts.batch_size, self.users, self.progress)
        elif self.created and not await api.group_members():
            await api.delete_group()

    async def main(self) -> None:
        try:
            await super().main()
        finally:  # kept users (or an abandoned run): their tabs still close
            for server in list(self.open_servers.values()):
                await server.close()
            self.open_servers.clear()

    def _completed(self) -> int:
        """Sessions that ran code, ended, and never failed."""
        return sum(r.reason is None and r.ended is not None and r.executes > 0 for r in self.sessions.rows())

    def failure_rate(self) -> float | None:
        """Students whose session failed (or never happened), of those asked for."""
        return (self.options.count - self._completed()) / self.options.count

    def succeeded(self) -> bool:
        return self.options.dry_run or self._completed() == self.options.count

    # -- results -----------------------------------------------------------------------------

    @property
    def sessions_df(self) -> pd.DataFrame:
        """One row per student: planned arrival and length, when each step happened, failures."""
        return self.sessions.to_frame()

    def frame_sources(self) -> dict[str, Callable[[], pd.DataFrame]]:
        return {**super().frame_sources(), "sessions": lambda: self.sessions_df}

    def failures(self) -> pd.DataFrame:
        return failures_by_reason(self.sessions_df)

    def active(self) -> pd.DataFrame:
        """Active sessions per second over the class."""
        return active_over_time(self.sessions_df, self.users_df)

    def report_json(self) -> dict[str, Any]:
        sessions = self.sessions_df
        ex = self.df[self.df["op"] == "execute"] if not self.df.empty else self.df
        return {
            **super().report_json(),
            "sessions": len(sessions),
            "failed_sessions": int(sessions["reason"].notna().sum()) if not sessions.empty else 0,
            "peak_active": peak_active(sessions, self.users_df),
            "executes": len(ex),
            "execute": percentiles(ex["latency_ms"] if not ex.empty else [], "_ms", 1),
            "failures": self.failures()["sessions"].to_dict(),
        }

    def chart_data(self) -> dict[str, pd.DataFrame]:
        return {
            "active": self.active(),
            "execute": execute_over_time(self.df),
            "resources": self.resources_df,
        }

    figure = staticmethod(charts.sessions_figure)

    @classmethod
    def summary_of(cls, record: RunRecord) -> pd.DataFrame:
        """Each step of a student's session (login, spawn, kernel, execute...): count, latency."""
        return step_table(record.frame("records"), record.frame("users"))

    @classmethod
    def extra_lines(cls, record: RunRecord) -> list[str]:
        plan = record.meta.get("plan", "")
        return session_lines(record.frame("records"), record.frame("users"), record.frame("sessions"), plan)


def session_lines(records: pd.DataFrame, users: pd.DataFrame, sessions: pd.DataFrame, plan: str) -> list[str]:
    """The class in a few lines: sessions, peak, executes, failures by reason."""
    lines = ["", plan] if plan else [""]
    if sessions.empty:
        return lines
    ok = int(sessions["reason"].isna().sum())
    ended = int(sessions["ended"].notna().sum())
    lines.append(
        f"sessions: {ok} of {len(sessions)} without a failure ({ended} ended); "
        f"peak active {peak_active(sessions, users)}"
    )
    ex = records[records["op"] == "execute"] if not records.empty else records
    if not ex.empty:
        figures = percentiles(ex["latency_ms"], "", 1)
        failed = int(ex["error"].notna().sum())
        lines.append(
            f"executes: {len(ex)} ({failed} failed); latency "
            + "  ".join(f"{k}={v:,.1f}ms" for k, v in figures.items())
        )
    failures = failures_by_reason(sessions)
    if not failures.empty:
        lines += ["", "failures by reason:", format_table(failures)]
    return lines
