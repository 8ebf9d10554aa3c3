"""The hub's options: the hub and its token, the sandbox, the users a run creates, spawning.

Declared next to the hub's code, as each JupyterHub ``Configurable`` declares its traits; the
engine's ``RunOptions`` / ``ShardOptions`` (saving, the verdict, Dask) are mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hubstress_ext.engine.options import Options, RunOptions, ShardOptions, timed_run_duration
from hubstress_ext.engine.spec import json_object, option
from hubstress_ext.errors import OptionError
from hubstress_ext.hub.timing import Span, parse_span, span_normalizer

ENV_ENDPOINT = "JUPYTERHUB_ENDPOINT"
ENV_HUB_TOKEN = "JUPYTERHUB_API_TOKEN"  # a hub API token (admin scopes); not JUPYTER_TOKEN
DEFAULT_PREFIX = "hubstress-"
SPAWNERS = ("real", "sim")


def normalize_endpoint(endpoint: str) -> str:
    """``http://host:8000`` and ``http://host:8000/hub/api/`` both mean the hub's API root."""
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OptionError(
            f"--endpoint must be an http(s) URL such as http://127.0.0.1:8000/hub/api (got {endpoint!r})"
        )
    url = endpoint.strip().rstrip("/")
    if not url.endswith("/hub/api"):
        url += "/hub/api"
    return url


@dataclass
class SandboxOptions(Options):
    """The throwaway JupyterHub (``--sandbox`` runs and ``hubstress sandbox``). In a run, each
    of these needs ``--sandbox`` (declared by ``needs``: every front end refuses them alone)."""

    sandbox_spawner: str = option(
        "real",
        "sandbox servers: real jupyterhub-singleuser, or simulated (thousands fit)",
        choices=SPAWNERS,
        panel=True,
        panel_default="sim",
        label="sandbox servers",
        needs="sandbox",
    )
    sandbox_spawn_limit: int = option(
        100, "the sandbox hub's concurrent_spawn_limit", flag="--spawn-limit", low=0, needs="sandbox"
    )
    sandbox_active_limit: int = option(
        0,
        "the sandbox hub's active_server_limit (0: none)",
        flag="--active-server-limit",
        low=0,
        needs="sandbox",
    )
    sim_exec_time: float = option(
        0.05,
        "simulated servers: seconds a kernel takes to run a cell",
        low=0,
        unit="seconds",
        needs="sandbox",
    )
    sim_start_time: Span | None = option(
        None,
        "simulated servers: seconds a start takes, SECONDS or MIN-MAX (default 0.05-0.3); a fixed "
        "time T with --spawn-limit L caps the hub at L/T starts per second",
        parse=parse_span("--sim-start-time"),
        normalize=lambda v: None if v is None else span_normalizer("--sim-start-time")(v),
        metavar="SECONDS",
        needs="sandbox",
    )


@dataclass
class HubOptions(RunOptions, SandboxOptions):
    """What every hub scenario takes: the hub, the token, limits, the tool's marker."""

    before_command = True

    endpoint: str | None = option(
        None,
        "hub API URL, e.g. http://127.0.0.1:8000/hub/api",
        flags=("-e",),
        env=ENV_ENDPOINT,
        panel=True,
        label="hub endpoint",
    )
    token: str | None = option(
        None,
        "admin API token; never logged or saved",
        flags=("-t",),
        env=ENV_HUB_TOKEN,
        secret=True,
        panel=True,
    )
    sandbox: bool = option(
        False,
        "run against a throwaway JupyterHub started for this run",
        panel=True,
        panel_default=True,
        label="sandbox hub",
    )
    dry_run: bool = option(False, "print the requests the run would send, send nothing")
    log_to_file: str | None = option(
        None, "also log (at debug level) to PATH, or to a timestamped temp file", metavar="PATH", bare=""
    )
    prefix: str = option(DEFAULT_PREFIX, "name prefix of the users this tool creates")
    batch_size: int = option(
        10,
        "users created / servers started or stopped at a time",
        flags=("-b",),
        low=1,
        panel=True,
        panel_default=5,
    )
    run_timeout: float = option(
        1800.0,
        "deadline of the whole run (not of one request: --request-timeout)",
        low=0,
        above=True,
        unit="seconds",
        aliases=("--timeout",),
    )
    request_timeout: float = option(30.0, "timeout of one HTTP request", low=0, above=True, unit="seconds")
    max_retries: int = option(5, "retries per request on 429/503/504/connection errors", low=0)

    def uses_env(self) -> bool:
        return not self.sandbox  # the sandbox brings its own endpoint and token

    def validate(self) -> None:
        if not self.prefix or not self.prefix[0].isalpha() or self.prefix != self.prefix.lower():
            raise OptionError(f"--prefix must start with a lowercase letter (got {self.prefix!r})")
        if self.sandbox:
            return
        if not self.endpoint:
            if self.dry_run:
                self.endpoint = "http://127.0.0.1:8000/hub/api"
            else:
                raise OptionError(
                    f"missing endpoint: pass --endpoint or set {ENV_ENDPOINT} (or use --sandbox)"
                )
        self.endpoint = normalize_endpoint(self.endpoint)
        if not self.token and not self.dry_run:
            raise OptionError(f"missing token: pass --token or set {ENV_HUB_TOKEN} (or use --sandbox)")


@dataclass
class UserLoadOptions(HubOptions):
    """Scenarios that create their own users and load the hub with them."""

    count: int = option(100, "number of users", flags=("-c",), low=1, panel=True, panel_default=20)
    keep: bool = option(
        False, "keep the users/servers the run created", flags=("-k",), panel=True, label="keep users"
    )
    scrape_metrics: float = option(
        0.0,
        "scrape the hub's /hub/metrics every SECONDS during the run (needs read:metrics; 0 = off)",
        low=0,
        unit="seconds",
        metavar="SECONDS",
    )


@dataclass
class ServerOptions(UserLoadOptions):
    """Scenarios that start their users' servers (a spawn storm, a class of students)."""

    profile: str | None = option(
        None, "profile name sent as the spawn's user options ({'profile': NAME})", flags=("-p",)
    )
    server_name: str = option("", "start a named server instead of the default")
    user_options: dict[str, Any] = option(
        {},
        "extra user options (a JSON object) sent with each spawn",
        parse=json_object("--user-options"),
        metavar="JSON",
    )
    spawn_timeout: float = option(
        600.0, "seconds to wait for one server to become ready", low=0, above=True, unit="seconds"
    )
    stop_timeout: float = option(
        300.0, "seconds to wait for servers to stop", low=0, above=True, unit="seconds"
    )

    def spawn_options(self) -> dict[str, Any]:
        opts = dict(self.user_options)
        if self.profile:
            opts["profile"] = self.profile
        return opts


@dataclass
class StressOptions(ServerOptions, ShardOptions):
    ramp: float = option(
        0.0, "spread spawn requests evenly over SECONDS (0: burst)", low=0, unit="seconds", metavar="SECONDS"
    )


@dataclass
class ActivityOptions(UserLoadOptions):
    workers: int = option(10, "concurrent activity senders", low=1)
    duration: float | None = timed_run_duration()
    requests: int | None = option(None, "stop after this many activity posts", low=1)
    probe_interval: float = option(0.1, "seconds between latency probes", low=0, above=True, unit="seconds")

    def validate(self) -> None:
        super().validate()
        if self.duration is None and self.requests is None:
            self.duration = 10.0


@dataclass
class PurgeOptions(HubOptions):
    """purge: the hub options alone (it finds its users by prefix and marker group)."""


@dataclass
class SandboxCommandOptions(SandboxOptions):
    """``hubstress sandbox``: a hub in the foreground."""

    port: int | None = option(None, "public port (default: a free one)", low=1)


def parse_user_options(text: str) -> dict[str, Any]:
    return json_object("--user-options")(text)
