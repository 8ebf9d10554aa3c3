"""Shared fixtures: real sandbox JupyterHubs (started once per session) and hub helpers."""

from __future__ import annotations

import json
import urllib.request

import psutil
import pytest

from hubstress_ext.sandbox.hub import Sandbox

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(scope="session")
def sim_hub():
    """A real JupyterHub (sim spawner) shared by the integration tests."""
    # slow_spawn_timeout=1: 'slow' profile spawns (3-5 s) answer 202 and go through progress
    with Sandbox("sim", sim_delay=(0.05, 0.2), slow_spawn_timeout=1) as sandbox:
        yield sandbox


class HubAdmin:
    """Direct, synchronous hub calls for arranging and checking state outside the tool."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.sandbox.api_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.sandbox.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            return err.code, None

    def users(self) -> set[str]:
        return {u["name"] for u in self.call("GET", "/users?limit=1000")[1]}

    def group(self, name: str = "hubstress") -> list[str] | None:
        status, body = self.call("GET", f"/groups/{name}")
        return body["users"] if status == 200 else None

    def active(self) -> set[str]:
        return {u["name"] for u in self.call("GET", "/users?state=active&limit=1000")[1]}


@pytest.fixture
def hub_admin(sim_hub):
    return HubAdmin(sim_hub)


@pytest.fixture
def clean_hub(hub_admin):
    """Each test starts and ends with no users of this tool on the shared hub."""
    hub_admin.call("DELETE", "/groups/hubstress")
    yield hub_admin
    for name in hub_admin.group() or []:
        hub_admin.call("DELETE", f"/users/{name}")
    hub_admin.call("DELETE", "/groups/hubstress")


def children_of_pytest() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
