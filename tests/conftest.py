"""Shared fixtures: real sandbox JupyterHubs (started once per session) and hub helpers."""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote

import psutil
import pytest

from hubstress_ext.sandbox.hub import Sandbox

pytest_plugins = ["pytest_jupyter.jupyter_server"]


# Two test processes (pytest-xdist) share the machine. A test marked `alone` saturates the cores
# on purpose (a busy hub, a busy proxy) and would starve whatever ran beside it (a light-load
# test of the batching endpoint refused requests for their age; a notebook timed out), so it
# runs with no other test beside it: every test holds the "room" lock shared, an `alone` test
# holds it exclusively. The turnstile lets an `alone` test that waits keep new tests out, so it
# gets its turn as soon as the tests already running end (no starving it).


@contextlib.contextmanager
def _flock(path, mode: int):
    with open(path, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def room(folder, alone: bool):
    """Hold the room shared (any test) or alone (an `alone` test) across test processes."""
    folder.mkdir(parents=True, exist_ok=True)
    turnstile, hall = folder / "turnstile.lock", folder / "room.lock"
    with contextlib.ExitStack() as held:
        with _flock(turnstile, fcntl.LOCK_EX):
            held.enter_context(_flock(hall, fcntl.LOCK_EX if alone else fcntl.LOCK_SH))
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Set-up, call and tear-down of each test inside the room (only with several processes)."""
    if not hasattr(item.config, "workerinput"):
        return (yield)
    folder = item.config.rootpath / ".pytest_cache" / "hubstress-room"
    with room(folder, alone=item.get_closest_marker("alone") is not None):
        return (yield)


class SharedHub:
    """One real JupyterHub (sim spawner) for many tests, checked before each of them.

    A hub that went bad (its process gone, its API not answering through the proxy) fails the
    test about to get it, with the hub's, the proxy's and the simulated server's logs and the
    test that had it last; the next test gets a fresh hub instead of the same failure."""

    def __init__(self) -> None:
        self.sandbox: Sandbox | None = None
        self.last_user = "(none yet)"

    def _start(self) -> Sandbox:
        # slow_spawn_timeout=1: 'slow' profile spawns (3-5 s) answer 202 and go through progress
        self.sandbox = Sandbox("sim", sim_delay=(0.05, 0.2), slow_spawn_timeout=1).start()
        return self.sandbox

    def for_test(self, name: str) -> Sandbox:
        if self.sandbox is None:
            return self._note(self._start(), name)
        problem = self.sandbox.health_problem()
        if problem is None:
            return self._note(self.sandbox, name)
        logs = self.sandbox.diagnostics()
        previous = self.last_user
        self.sandbox.stop()
        self.sandbox = None
        self.last_user = "(none yet)"
        pytest.fail(
            f"the shared sandbox hub is unhealthy before this test: {problem}\n"
            f"the last test that used it: {previous}\n{logs}\n"
            "(the next test gets a fresh hub)",
            pytrace=False,
        )

    def _note(self, sandbox: Sandbox, name: str) -> Sandbox:
        self.last_user = name
        return sandbox

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()


@pytest.fixture(scope="session")
def shared_hub():
    hub = SharedHub()
    yield hub
    hub.close()


@pytest.fixture
def sim_hub(shared_hub, request):
    """A real JupyterHub (sim spawner) shared by the integration tests, healthy when handed over."""
    return shared_hub.for_test(request.node.nodeid)


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
    # a server still stopping makes DELETE answer 400 ("please wait"): retry, bounded
    give_up = time.monotonic() + 30
    while (left := hub_admin.group() or []) and time.monotonic() < give_up:
        for name in left:
            user = quote(name, safe="")
            # the hub refuses to delete a user whose named server is active: stop those first
            _, model = hub_admin.call("GET", f"/users/{user}")
            for server in (model or {}).get("servers") or {}:
                if server:
                    hub_admin.call("DELETE", f"/users/{user}/servers/{quote(server, safe='')}")
            hub_admin.call("DELETE", f"/users/{user}")
        time.sleep(0.2)
    hub_admin.call("DELETE", "/groups/hubstress")


def children_of_pytest() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]


def hubstress_popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The `hubstress` command as a user starts it, in its own process (for real signals)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hubstress_ext", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
