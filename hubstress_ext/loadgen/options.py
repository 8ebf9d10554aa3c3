"""Options of ``bench`` and ``sweep``, validated once for every front end."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hubstress_ext.engine.options import OptionError
from hubstress_ext.loadgen.body import parse_template

ENV_TOKEN = "JUPYTER_TOKEN"  # the Jupyter server's token, for the extension's endpoint
DEFAULT_DURATION = 10.0
MAX_SCHEDULED = 20_000_000  # open loop: rate x duration, kept in memory as send times


class _EndpointAuth:
    """The endpoint token both option sets carry: from the environment, as a header, hidden."""

    token: str | None

    def _token_from_env(self) -> None:
        if self.token is None:
            self.token = os.environ.get(ENV_TOKEN) or None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def public(self) -> dict[str, Any]:
        """The options as saved and logged: never the token."""
        out = asdict(self)  # type: ignore[call-overload]
        out["token"] = "***" if self.token else None
        return out


@dataclass
class LoadOptions(_EndpointAuth):
    """What one load (a bench, or one sweep cell) needs."""

    url: str = ""
    workers: int = 64
    duration: float | None = None
    requests: int | None = None
    rate: float | None = None  # set: open loop
    arrival: str = "constant"  # open loop: constant or poisson
    max_connections: int = 1000  # open loop
    method: str = "POST"
    template: dict[str, Any] | str | None = None  # JSON object, its text, or "@file"
    timeout: float = 10.0  # one request
    token: str | None = None
    seed: int = 0

    def resolve(self) -> LoadOptions:
        """Fill defaults (duration, token from the environment) and validate."""
        self._token_from_env()
        if self.duration is None and self.requests is None:
            self.duration = DEFAULT_DURATION
        self.validate()
        return self

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
        _positive_int("--workers", self.workers)
        if self.requests is not None:
            _positive_int("--requests", self.requests)
        if self.duration is not None and not (_number(self.duration) and self.duration > 0):
            raise OptionError(f"--duration must be a positive number of seconds (got {self.duration!r})")
        if self.rate is not None:
            if not (_number(self.rate) and self.rate > 0):
                raise OptionError(
                    f"--rate must be a positive number of requests per second (got {self.rate!r})"
                )
            scheduled = min(self.requests or math.inf, self.rate * self.time_limit)
            if scheduled > MAX_SCHEDULED:
                raise OptionError(
                    f"--rate x --duration schedules over {MAX_SCHEDULED:,} requests; shorten it"
                )
        if self.arrival not in ("constant", "poisson"):
            raise OptionError(f"--arrival must be constant or poisson (got {self.arrival!r})")
        _positive_int("--max-connections", self.max_connections)
        if self.method.upper() not in ("GET", "POST", "PUT", "PATCH"):
            raise OptionError(f"--method must be GET, POST, PUT or PATCH (got {self.method!r})")
        if not (_number(self.timeout) and self.timeout > 0):
            raise OptionError(f"--timeout must be a positive number of seconds (got {self.timeout!r})")
        if isinstance(self.template, str):
            try:
                self.template = parse_template(self.template)
            except ValueError as exc:
                raise OptionError(f"--template: {exc}") from None

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def time_limit(self) -> float:
        """Every load is bounded in time: --duration, or a cap for a --requests run."""
        if self.duration is not None:
            return self.duration
        return 3600.0


@dataclass
class SweepOptions(_EndpointAuth):
    url: str = ""
    workers: list[int] = field(default_factory=lambda: [8, 32, 128])
    batch_sizes: list[int] | None = None  # None: leave the endpoint's batch size alone
    duration: float = 5.0  # measured seconds per cell
    warmup: float = 1.0  # seconds per cell before measuring
    max_p99_ms: float | None = None
    method: str = "POST"
    template: dict[str, Any] | str | None = None
    timeout: float = 10.0
    token: str | None = None

    def resolve(self) -> SweepOptions:
        self._token_from_env()
        self.validate()
        return self

    def validate(self) -> None:
        cell = self.cell(self.workers[0] if self.workers else 1)
        cell.validate()  # URL, method, timeout, duration, template: as for one bench
        self.template = cell.template  # parsed
        if not self.workers:
            raise OptionError("--workers needs at least one value, e.g. 8,32,128")
        for w in self.workers:
            _positive_int("--workers", w)
        if self.batch_sizes is not None:
            if not self.batch_sizes:
                raise OptionError("--batch-size needs at least one value, e.g. 1,5,10")
            for b in self.batch_sizes:
                _positive_int("--batch-size", b)
        if not (_number(self.warmup) and self.warmup >= 0):
            raise OptionError(f"--warmup must be a number of seconds >= 0 (got {self.warmup!r})")
        if self.max_p99_ms is not None and not (_number(self.max_p99_ms) and self.max_p99_ms > 0):
            raise OptionError(f"--max-p99-ms must be a positive number (got {self.max_p99_ms!r})")

    def cell(self, workers: int, duration: float | None = None) -> LoadOptions:
        return LoadOptions(
            url=self.url,
            workers=workers,
            duration=self.duration if duration is None else duration,
            method=self.method,
            template=self.template,
            timeout=self.timeout,
            token=self.token,
        )


def parse_int_list(text: str, flag: str) -> list[int]:
    """``8,32,128`` -> [8, 32, 128], with an error naming the flag and the bad value."""
    values = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(int(part))
        except ValueError:
            raise OptionError(
                f"{flag} takes whole numbers separated by commas, e.g. 1,5,10 (got {part!r})"
            ) from None
    if not values:
        raise OptionError(f"{flag} needs at least one value")
    return values


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _positive_int(flag: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionError(f"{flag} must be a whole number >= 1 (got {value!r})")
