"""Options of ``bench`` and ``sweep``: one declaration each (see ``engine.spec``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hubstress_ext.engine.options import RunOptions, ShardOptions, timed_run_duration
from hubstress_ext.engine.spec import option, parse_int_list
from hubstress_ext.errors import OptionError
from hubstress_ext.loadgen.body import parse_template

ENV_SERVER_TOKEN = "JUPYTER_TOKEN"  # the Jupyter server's token (the extension's endpoint)
DEFAULT_DURATION = 10.0
MAX_SCHEDULED = 20_000_000  # open loop: rate x duration, kept in memory as send times
METHODS = ("GET", "POST", "PUT", "PATCH")


@dataclass
class EndpointOptions(RunOptions, ShardOptions):
    """What every load on one URL takes: where, what to send, how long one request may take."""

    url: str = option(
        "",
        "the endpoint, e.g. http://127.0.0.1:8765/hubstress/batch",
        positional=True,
        panel=True,
        label="endpoint URL",
    )
    template: dict[str, Any] | str | None = option(
        None, 'request body: a JSON object (or @file); "ts" is set to now (ms) per request', metavar="JSON"
    )
    method: str = option("POST", "HTTP method (GET sends no body)", choices=METHODS)
    request_timeout: float = option(
        10.0,
        "timeout of one request (not of the run: --duration, --requests)",
        low=0,
        above=True,
        unit="seconds",
        aliases=("--timeout",),
    )
    token: str | None = option(
        None, "Jupyter server token; never printed", env=ENV_SERVER_TOKEN, secret=True, panel=True
    )

    def __post_init__(self) -> None:
        if isinstance(self.method, str):
            self.method = self.method.upper()  # --method get is GET

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def validate(self) -> None:
        parts = urlsplit(self.url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OptionError(
                f"URL must be an http(s) URL such as http://127.0.0.1:8765/hubstress/batch (got {self.url!r})"
            )
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise OptionError(f"URL has an invalid port: {self.url!r}") from None
        if isinstance(self.template, str):
            try:
                self.template = parse_template(self.template)
            except ValueError as exc:
                raise OptionError(f"--template: {exc}") from None


@dataclass
class LoadOptions(EndpointOptions):
    """What one load (a bench, or one sweep cell) needs."""

    workers: int = option(64, "closed loop: concurrent workers", low=1, panel=True)
    duration: float | None = timed_run_duration()
    requests: int | None = option(None, "stop after this many requests", low=1)
    rate: float | None = option(
        None, "open loop: schedule this many requests per second", low=0, above=True, panel=True
    )
    arrival: str = option(
        "constant", "open loop: evenly spaced or Poisson arrivals", choices=("constant", "poisson")
    )
    max_connections: int = option(
        1000, "open loop: connections at most; beyond, requests wait (and that counts)", low=1
    )
    seed: int = option(0, "open loop: random seed of Poisson arrivals")
    warmup: float = option(
        0.0, "seconds of the same load first, left out of every figure", low=0, unit="seconds"
    )

    def validate(self) -> None:
        super().validate()
        if self.duration is None and self.requests is None:
            self.duration = DEFAULT_DURATION
        if self.rate is not None:
            scheduled = min(self.requests or math.inf, self.rate * self.time_limit)
            if scheduled > MAX_SCHEDULED:
                raise OptionError(
                    f"--rate x --duration schedules over {MAX_SCHEDULED:,} requests; shorten it"
                )

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def time_limit(self) -> float:
        """Every load is bounded in time: --duration, or a cap for a --requests run."""
        if self.duration is not None:
            return self.duration
        return 3600.0


def _workers(text: str) -> list[int]:
    return parse_int_list(text, "--workers")


def _batch_sizes(text: str) -> list[int]:
    return parse_int_list(text, "--batch-sizes")


@dataclass
class SweepOptions(EndpointOptions):
    workers: list[int] = option(
        [8, 32, 128], "worker counts, comma-separated", parse=_workers, metavar="N,N,...", panel=True
    )
    batch_sizes: list[int] | None = option(
        None,
        "the endpoint's batch sizes, comma-separated (set through its config API); "
        "default: leave it as it is",
        flag="--batch-sizes",
        aliases=("--batch-size",),
        parse=_batch_sizes,
        metavar="N,N,...",
        panel=True,
        label="batch sizes",
    )
    duration: float = option(5.0, "measured seconds per cell", low=0, above=True, unit="seconds", panel=True)
    warmup: float = option(1.0, "warm-up seconds per cell", low=0, unit="seconds")
    max_p99_ms: float | None = option(
        None, "best cell: the highest QPS with p99 under this", low=0, above=True
    )

    def validate(self) -> None:
        super().validate()
        if not self.workers:
            raise OptionError("--workers needs at least one value, e.g. 8,32,128")
        for w in self.workers:
            _whole("--workers", w)
        if self.batch_sizes is not None:
            if not self.batch_sizes:
                raise OptionError("--batch-size needs at least one value, e.g. 1,5,10")
            for b in self.batch_sizes:
                _whole("--batch-sizes", b)

    def cell(self, workers: int, duration: float | None = None) -> LoadOptions:
        """One cell's load: the endpoint options as given (every one of them, by name), these
        workers, this long; nothing of the run's own (saving, the verdict, the cluster)."""
        endpoint = {name: getattr(self, name) for name in ENDPOINT_FIELDS}
        seconds = self.duration if duration is None else duration
        return LoadOptions(**endpoint, workers=workers, duration=seconds)


def _whole(flag: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionError(f"{flag} must be at least 1 (got {value!r})")


# what a load on one URL takes, beyond what every run takes: copied into each sweep cell
ENDPOINT_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(EndpointOptions)
    if f.name not in {g.name for g in (*dataclasses.fields(RunOptions), *dataclasses.fields(ShardOptions))}
)
