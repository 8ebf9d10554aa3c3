"""Run options shared by every front end, with validation that names the bad option.

The token is a field like any other but is excluded from ``repr`` and from
:meth:`HubOptions.public` (what saved runs and logs see).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ENV_ENDPOINT = "JUPYTERHUB_ENDPOINT"
ENV_TOKEN = "JUPYTERHUB_API_TOKEN"
DEFAULT_PREFIX = "hubstress-"


class OptionError(ValueError):
    """Bad user input: the message is one line naming the option and what is wrong."""


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
class HubOptions:
    """Options common to every hub scenario (the original script's global flags)."""

    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    dry_run: bool = False
    keep: bool = False
    count: int = 100
    batch_size: int = 10
    workers: int = 10
    prefix: str = DEFAULT_PREFIX
    sandbox: bool = False
    sandbox_spawner: str = "real"
    sandbox_spawn_limit: int = 100  # the sandbox hub's concurrent_spawn_limit
    request_timeout: float = 30.0
    timeout: float = 1800.0  # whole-run deadline (seconds); teardown gets its own
    max_retries: int = 5
    scrape_metrics: float = 0.0  # seconds between scrapes of the hub's /hub/metrics; 0 = off

    def resolve(self, env: dict[str, str] | None = None) -> HubOptions:
        """Fill endpoint/token from the environment and validate; returns self."""
        env = os.environ if env is None else env
        if not self.endpoint and not self.sandbox:
            self.endpoint = env.get(ENV_ENDPOINT) or None
        if not self.token and not self.sandbox:
            self.token = env.get(ENV_TOKEN) or None
        self.validate()
        return self

    def validate(self) -> None:
        _at_least("--count", self.count, 1)
        _at_least("--batch-size", self.batch_size, 1)
        _at_least("--workers", self.workers, 1)
        _at_least("--max-retries", self.max_retries, 0)
        _at_least("--spawn-limit", self.sandbox_spawn_limit, 0)
        _positive("--timeout", self.timeout)
        _positive("--request-timeout", self.request_timeout)
        if self.scrape_metrics is None or self.scrape_metrics < 0:
            raise OptionError(
                f"--scrape-metrics must be a number of seconds >= 0 (got {self.scrape_metrics})"
            )
        if self.sandbox_spawner not in ("real", "sim"):
            raise OptionError(f"--sandbox-spawner must be 'real' or 'sim' (got {self.sandbox_spawner!r})")
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
            raise OptionError(f"missing token: pass --token or set {ENV_TOKEN} (or use --sandbox)")

    def public(self) -> dict[str, Any]:
        """Everything but the token: safe to save, log and display."""
        data = dataclasses.asdict(self)
        data.pop("token", None)
        data["token_set"] = bool(self.token)
        return data


@dataclass
class StressOptions(HubOptions):
    profile: str | None = None
    server_name: str = ""
    ramp: float = 0.0  # seconds over which spawn requests are spread (0 = burst)
    spawn_timeout: float = 600.0
    stop_timeout: float = 300.0
    user_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        if self.ramp < 0:
            raise OptionError(f"--ramp must be 0 or more seconds (got {self.ramp})")
        _positive("--spawn-timeout", self.spawn_timeout)

    def spawn_options(self) -> dict[str, Any]:
        opts = dict(self.user_options)
        if self.profile:
            opts["profile"] = self.profile
        return opts


@dataclass
class ActivityOptions(HubOptions):
    duration: float | None = None
    requests: int | None = None
    probe_interval: float = 0.1

    def validate(self) -> None:
        super().validate()
        if self.duration is None and self.requests is None:
            self.duration = 10.0
        if self.duration is not None:
            _positive("--duration", self.duration)
        if self.requests is not None:
            _at_least("--requests", self.requests, 1)
        _positive("--probe-interval", self.probe_interval)


@dataclass
class PurgeOptions(HubOptions):
    pass


def parse_user_options(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionError(f"--user-options must be a JSON object ({exc.msg})") from None
    if not isinstance(value, dict):
        raise OptionError('--user-options must be a JSON object, e.g. \'{"image": "x"}\'')
    return value


def _at_least(name: str, value: int, low: int) -> None:
    if value is None or value < low:
        raise OptionError(f"{name} must be at least {low} (got {value})")


def _positive(name: str, value: float) -> None:
    if value is None or value <= 0:
        raise OptionError(f"{name} must be a positive number of seconds (got {value})")
