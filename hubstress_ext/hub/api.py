"""Typed calls to the JupyterHub REST API (4.x-6.x) over the shared HttpClient.

Every method names its operation, so records group into the phases a report shows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from hubstress_ext.errors import RunError
from hubstress_ext.http.client import HttpClient, Response

MARKER_GROUP = "hubstress"  # every user this tool creates joins it; purge requires it
PAGE_LIMIT = 200  # JupyterHub's default api_page_max_limit
PREFLIGHT_CONNECT_S = 2.0  # a hub that cannot be connected to fails the pre-flight this fast
PREFLIGHT_ATTEMPTS = 3  # ...and one whose proxy answers 503 after ~1.5 s of backoff


class HubError(RunError):
    """A hub answer the run cannot continue from (bad token, unreachable hub...)."""


def _u(name: str) -> str:
    return quote(name, safe="")


class HubAPI:
    def __init__(self, client: HttpClient) -> None:
        self.client = client
        self.scopes: set[str] = set()  # the token's scopes, as the pre-flight read them

    # -- hub -----------------------------------------------------------------------------

    async def check_access(self) -> str:
        """Fail fast with one clear line if the hub is unreachable or the token is not good.

        Failures to connect are not retried here: retries are for a hub that was reachable.
        """
        resp = await self.client.request(
            "check",
            "GET",
            "/",
            retry_errors=False,
            attempts=PREFLIGHT_ATTEMPTS,
            connect_timeout=PREFLIGHT_CONNECT_S,
        )
        if not resp.ok:
            raise HubError(f"cannot reach the hub API at {self.client.base_url}: {resp.reason()}")
        version = (resp.json() or {}).get("version", "?") if resp.body else "?"
        resp = await self.client.request(
            "check", "GET", "/user", retry_errors=False, attempts=PREFLIGHT_ATTEMPTS
        )
        if resp.status in (401, 403):
            raise HubError(f"token rejected or lacks admin scopes: {resp.reason()}")
        if not resp.ok:
            raise HubError(f"token check failed: {resp.reason()}")
        scopes = set((resp.json() or {}).get("scopes", []))
        self.scopes = scopes
        if scopes and not _has_admin_user_scopes(scopes):
            raise HubError(
                "token rejected or lacks admin scopes: it needs admin:users and admin:servers "
                f"(it has {', '.join(sorted(scopes)[:8])}...)"
            )
        return version

    # -- users ---------------------------------------------------------------------------

    async def create_users(self, names: list[str]) -> Response:
        return await self.client.request("create", "POST", "/users", json={"usernames": names})

    async def delete_user(self, name: str) -> Response:
        # 404: gone already (a retried DELETE that had landed): what teardown wanted
        return await self.client.request("delete", "DELETE", f"/users/{_u(name)}", user=name, expect=(404,))

    @property
    def hub_url(self) -> str:
        """``.../hub`` (the API is ``.../hub/api``)."""
        base = self.client.base_url
        return base[: -len("/api")] if base.endswith("/api") else base

    @property
    def metrics_url(self) -> str:
        """The hub's Prometheus page: ``/hub/metrics`` next to ``/hub/api``."""
        return self.hub_url + "/metrics"

    @property
    def health_url(self) -> str:
        """``/hub/health``: answered by the hub process itself, without a token."""
        return self.hub_url + "/health"

    async def metrics(self) -> Response:
        return await self.client.request("metrics", "GET", self.metrics_url, retry=False)

    async def get_user(self, name: str, op: str = "get_user") -> Response:
        return await self.client.request(op, "GET", f"/users/{_u(name)}", user=name)

    async def list_users(self, *, prefix: str | None = None, state: str | None = None) -> list[dict]:
        """All users (paged); ``name_filter`` narrows it on hubs that support it (5.x+)."""
        users: list[dict] = []
        offset = 0
        while True:
            params = {"limit": str(PAGE_LIMIT), "offset": str(offset)}
            if state:
                params["state"] = state
            if prefix:
                params["name_filter"] = prefix
            resp = await self.client.request("list_users", "GET", "/users", params=params)
            if not resp.ok:
                raise HubError(f"listing users failed: {resp.reason()}")
            page = resp.json() or []
            if isinstance(page, dict):  # paginated form
                page = page.get("items", [])
            users.extend(u for u in page if not prefix or u["name"].startswith(prefix))
            if len(page) < PAGE_LIMIT or self.client.dry_run:
                return users
            offset += len(page)

    async def create_token(
        self, name: str, expires_in: int, note: str = "hubstress session-test"
    ) -> Response:
        """A token for ``name`` with the user's own permissions (needs the ``tokens`` scope).

        The token is in the response body only: never in a record, a log line or an error.
        """
        body = {"note": note, "expires_in": expires_in}
        return await self.client.request("token", "POST", f"/users/{_u(name)}/tokens", user=name, json=body)

    async def post_activity(self, name: str) -> Response:
        stamp = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        return await self.client.request(
            "activity",
            "POST",
            f"/users/{_u(name)}/activity",
            user=name,
            json={"last_activity": stamp},
        )

    # -- marker group --------------------------------------------------------------------

    async def ensure_group(self, group: str = MARKER_GROUP) -> None:
        resp = await self.client.request("group", "POST", f"/groups/{_u(group)}", expect=(409,))
        if not (resp.ok or resp.status == 409):
            raise HubError(f"could not create marker group {group!r}: {resp.reason()}")

    async def add_to_group(self, names: list[str], group: str = MARKER_GROUP) -> Response:
        return await self.client.request("group", "POST", f"/groups/{_u(group)}/users", json={"users": names})

    async def group_members(self, group: str = MARKER_GROUP) -> list[str]:
        resp = await self.client.request("group", "GET", f"/groups/{_u(group)}", expect=(404,))
        if resp.status == 404:  # no marker group yet: nothing of ours on this hub
            return []
        if not resp.ok:
            raise HubError(f"reading marker group {group!r} failed: {resp.reason()}")
        return list((resp.json() or {}).get("users", []))

    async def delete_group(self, group: str = MARKER_GROUP) -> Response:
        return await self.client.request("group", "DELETE", f"/groups/{_u(group)}")

    # -- servers -------------------------------------------------------------------------

    def _server_path(self, name: str, server: str) -> str:
        return f"/users/{_u(name)}/servers/{_u(server)}" if server else f"/users/{_u(name)}/server"

    async def start_server(
        self, name: str, server: str = "", options: dict[str, Any] | None = None
    ) -> Response:
        return await self.client.request(
            "spawn",
            "POST",
            self._server_path(name, server),
            user=name,
            json=options or {},
        )

    async def stop_server(self, name: str, server: str = "") -> Response:
        return await self.client.request("stop", "DELETE", self._server_path(name, server), user=name)

    def progress(self, name: str, server: str, timeout: float) -> AsyncIterator[dict[str, Any]]:
        path = self._server_path(name, server) + "/progress"
        return self.client.events("progress", path, user=name, timeout=timeout)


def _has_admin_user_scopes(scopes: set[str]) -> bool:
    """admin:users, or (expanded or filtered) users* and servers* scopes together."""
    return "admin:users" in scopes or (
        any(s.startswith("users") for s in scopes) and any(s.startswith("servers") for s in scopes)
    )
