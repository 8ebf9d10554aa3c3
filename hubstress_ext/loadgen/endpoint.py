"""The batching endpoint's control API, as the sweep uses it: config (GET/PATCH) and stats.

Found from the load URL: ``.../hubstress/batch`` -> ``.../hubstress/batch/config`` and
``/stats``; the seed's alias ``/testB`` -> ``/hubstress/batch/...`` on the same server. Any other
URL, or one whose config answer is not ours, has no control API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from yarl import URL

from hubstress_ext.errors import RunError

AUTH_STATUSES = (401, 403)


class EndpointAuthError(RunError):
    """The endpoint refused us (401/403): the message says which token to pass."""


def auth_hint(status: int, had_token: bool) -> str:
    """What a 401/403 means here and what to do: one line for every front end."""
    if had_token:
        return f"{status} from the endpoint: the token was refused (check --token or JUPYTER_TOKEN)"
    return f"{status} from the endpoint (a Jupyter server wants its token): pass --token or set JUPYTER_TOKEN"


def control_base(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/hubstress/batch"):
        base = path
    elif path.endswith("/testB"):
        base = path[: -len("/testB")] + "/hubstress/batch"
    else:
        base = path + "/hubstress/batch"  # unlikely to exist; probe() says so
    return urlunsplit((parts.scheme, parts.netloc, base, "", ""))


class EndpointControl:
    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> None:
        self.base = control_base(url)
        self._headers = headers or {}
        self._had_token = "Authorization" in self._headers
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EndpointControl:
        self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def probe(self) -> dict[str, Any] | None:
        """The endpoint's settings, or None when the URL has no hubstress control API."""
        try:
            config = await self._call("GET", "/config")
        except EndpointAuthError:
            raise  # a refusal is not "no config API": say what happened
        except (RunError, aiohttp.ClientError, TimeoutError):
            return None
        return config if isinstance(config, dict) and "batch_size" in config else None

    async def set_batch_size(self, size: int) -> dict[str, Any]:
        return await self._call("PATCH", "/config", {"batch_size": size})

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats")

    async def stats_or_none(self) -> dict[str, Any] | None:
        """``stats()``, or None where it cannot be read: a figure beside the run's own, never a
        reason for the run to fail."""
        try:
            return await self.stats()
        except (RunError, aiohttp.ClientError, TimeoutError):
            return None

    async def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        assert self._session is not None, "use EndpointControl as an async context manager"
        url = self.base + path
        # encoded=True: keep the path as given (a base URL like /a%40b/ must not become /a@b/)
        async with self._session.request(method, URL(url, encoded=True), json=body) as resp:
            if resp.status in AUTH_STATUSES:
                raise EndpointAuthError(auth_hint(resp.status, self._had_token))
            try:
                doc = await resp.json(content_type=None)
            except ValueError:
                raise RunError(f"{method} {url}: {resp.status}, not a JSON answer") from None
            if resp.status >= 400:
                message = doc.get("message") if isinstance(doc, dict) else None
                raise RunError(f"{method} {url}: {resp.status} {message or ''}".rstrip())
            return doc


def endpoint_cpu_pct(before: dict[str, Any] | None, after: dict[str, Any] | None) -> float | None:
    """The endpoint process's CPU over the time between two ``/stats`` answers, in % of one
    core; None when either is missing or the process changed between them (a restart)."""
    if not before or not after or before.get("pid") != after.get("pid"):
        return None
    wall = after["time"] - before["time"]
    if wall <= 0:
        return None
    return (after["cpu_seconds"] - before["cpu_seconds"]) / wall * 100.0
