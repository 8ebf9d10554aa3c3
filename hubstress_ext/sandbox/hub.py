"""Start and stop the sandbox hub: temp dir, free loopback ports, a fresh admin service token.

Every process the sandbox starts (hub, proxy, single-user or simulated servers) is tracked
and killed on stop, even if the hub itself dies first: the sandbox never outlives its command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from hubstress_ext.errors import RunError
from hubstress_ext.http.ports import free_port
from hubstress_ext.sandbox.simserver import ENV_SECRET as SIM_SECRET

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")
SPAWN_BUCKETS = "0.025,0.05,0.1,0.2,0.5,1,2,5,10,15,30,60,120,300,600,inf"
START_TIMEOUT = 90.0


def usable_cores() -> int:
    """The cores this process may run on (a container's affinity, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SandboxError(RunError):
    """The sandbox hub could not start (or went away): one readable line."""


class SandboxAborted(SandboxError):
    """Start-up was cut short by a stop; everything started so far has been removed."""


class Sandbox:
    """A real JupyterHub on 127.0.0.1. Use as a (sync or async) context manager."""

    def __init__(
        self,
        spawner: str = "real",
        *,
        concurrent_spawn_limit: int = 100,
        active_server_limit: int = 0,
        throttle_retry: tuple[float, float] = (2, 5),
        sim_delay: tuple[float, float] | None = None,
        sim_exec_time: float = 0.05,
        slow_spawn_timeout: float = 10.0,
        port: int | None = None,
        log_level: str = "INFO",
        default_url: str | None = None,
    ) -> None:
        if spawner not in ("real", "sim"):
            raise ValueError(f"spawner must be 'real' or 'sim' (got {spawner!r})")
        self.spawner = spawner
        self.concurrent_spawn_limit = concurrent_spawn_limit
        self.active_server_limit = active_server_limit
        self.throttle_retry = throttle_retry
        self.sim_delay = sim_delay
        self.sim_exec_time = sim_exec_time
        self.slow_spawn_timeout = slow_spawn_timeout
        self.port = port or free_port()
        self.log_level = log_level
        self.default_url = default_url  # the page a real server opens (e.g. /tree); its own default
        self.token = secrets.token_hex(32)
        # a second admin token with every scope the tool uses except read:metrics
        self.token_without_metrics = secrets.token_hex(32)
        self.workdir: Path | None = None
        self.hub: subprocess.Popen | None = None
        self.simserver: subprocess.Popen | None = None
        self.sim_url: str | None = None  # the simulated servers' stand-in, when spawner == "sim"
        self._tracked: dict[int, psutil.Process] = {}
        self._abort = threading.Event()

    def abort(self) -> None:
        """Cut a start-up or a graceful stop short (thread-safe): the hub goes away at once."""
        self._abort.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "jupyterhub.log"

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "spawner": self.spawner,
            "workdir": str(self.workdir),
            "concurrent_spawn_limit": self.concurrent_spawn_limit,
            "active_server_limit": self.active_server_limit,
            "sim_start_time": list(self.sim_delay) if self.sim_delay is not None else None,
            "cpu_count": usable_cores(),  # what its processes share (the bottleneck rules)
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Sandbox:
        self.workdir = Path(tempfile.mkdtemp(prefix="hubstress-sandbox-"))
        env = dict(os.environ)
        hub_port = free_port()
        env.update(
            HUBSTRESS_SANDBOX_DIR=str(self.workdir),
            HUBSTRESS_SANDBOX_PORT=str(self.port),
            HUBSTRESS_SANDBOX_HUB_PORT=str(hub_port),
            HUBSTRESS_SANDBOX_PROXY_API_PORT=str(free_port()),
            HUBSTRESS_SANDBOX_TOKEN=self.token,
            HUBSTRESS_SANDBOX_NO_METRICS_TOKEN=self.token_without_metrics,
            HUBSTRESS_SANDBOX_SPAWNER=self.spawner,
            HUBSTRESS_SANDBOX_SPAWN_LIMIT=str(self.concurrent_spawn_limit),
            HUBSTRESS_SANDBOX_ACTIVE_LIMIT=str(self.active_server_limit),
            # spawn-duration buckets fine enough that the hub's own p50 can be compared with
            # the measured one (JupyterHub's defaults start at 0.5 s)
            JUPYTERHUB_SERVER_SPAWN_DURATION_SECONDS_BUCKETS=SPAWN_BUCKETS,
            HUBSTRESS_SANDBOX_THROTTLE_RETRY=json.dumps(list(self.throttle_retry)),
            HUBSTRESS_SANDBOX_LOG_LEVEL=self.log_level,
            HUBSTRESS_SANDBOX_SLOW_SPAWN=str(self.slow_spawn_timeout),
        )
        if self.default_url:
            env["HUBSTRESS_SANDBOX_DEFAULT_URL"] = self.default_url
        for leaked in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_ENDPOINT", "JUPYTERHUB_API_URL"):
            env.pop(leaked, None)
        try:
            if self.spawner == "sim":
                sim_port = free_port()
                self.sim_url = env["HUBSTRESS_SIM_URL"] = f"http://127.0.0.1:{sim_port}"
                env[SIM_SECRET] = secrets.token_hex(16)
                if self.sim_delay is not None:
                    env["HUBSTRESS_SIM_DELAY"] = json.dumps(list(self.sim_delay))
                self.simserver = self._spawn(
                    [
                        sys.executable,
                        "-m",
                        "hubstress_ext.sandbox.simserver",
                        "--port",
                        str(sim_port),
                        "--hub-api",
                        f"http://127.0.0.1:{hub_port}/hub/api",
                        "--exec-time",
                        str(self.sim_exec_time),
                    ],
                    env,
                    "simserver.log",
                )
            self.hub = self._spawn(
                [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)], env, "jupyterhub.log"
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, cmd: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen:
        assert self.workdir is not None
        with open(self.workdir / log_name, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._tracked[proc.pid] = psutil.Process(proc.pid)
        return proc

    def _wait_ready(self) -> None:
        assert self.hub is not None
        give_up = time.monotonic() + START_TIMEOUT
        while time.monotonic() < give_up:
            if self._abort.is_set():
                raise SandboxAborted("sandbox start-up interrupted")
            if self.hub.poll() is not None:
                raise SandboxError(f"the sandbox hub exited at start:\n{self.log_tail()}")
            try:
                req = urllib.request.Request(
                    self.api_url + "/user", headers={"Authorization": f"token {self.token}"}
                )
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        self._track_children()
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise SandboxError(f"the sandbox hub did not answer within {START_TIMEOUT:.0f}s:\n{self.log_tail()}")

    def _track_children(self) -> None:
        for proc in list(self._tracked.values()):
            try:
                for child in proc.children(recursive=True):
                    self._tracked.setdefault(child.pid, child)
            except psutil.Error:
                pass

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Live processes by role: hub, proxy, servers (single-user or the simulated one)."""
        self._track_children()
        roles: dict[str, list[psutil.Process]] = {"hub": [], "proxy": [], "servers": []}
        for proc in self._tracked.values():
            try:
                cmd = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if self.hub and proc.pid == self.hub.pid:
                roles["hub"].append(proc)
            elif "hubstress_ext.sandbox.proxy" in cmd or "configurable-http-proxy" in cmd:
                roles["proxy"].append(proc)
            else:
                roles["servers"].append(proc)
        return roles

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user+system) used so far by each role's live processes."""
        totals: dict[str, float] = {}
        for role, procs in self.processes().items():
            total = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    pass
            totals[role] = total
        return totals

    def log_tail(self, lines: int = 30, name: str = "jupyterhub.log", grep: str = "") -> str:
        """The last ``lines`` of one of the sandbox's logs (only lines containing ``grep``),
        tokens masked. The proxy writes into the hub's log (the hub starts it)."""
        try:
            assert self.workdir is not None
            text = (self.workdir / name).read_text(errors="replace").splitlines()
        except (OSError, AssertionError):
            return f"(no {name})"
        text = [line for line in text if grep in line][-lines:]
        return "\n".join(text).replace(self.token, "***").replace(self.token_without_metrics, "***")

    def health_problem(self, timeout: float = 10.0) -> str | None:
        """None when the hub answers its API through the proxy; else what is wrong, in one line.
        For whoever shares one sandbox between many runs (the test suite): a hub that went bad
        is named at once, with its logs, instead of failing every run after it."""
        for name, proc in (("hub", self.hub), ("simulated server", self.simserver)):
            if proc is not None and proc.poll() is not None:
                return f"the sandbox's {name} process exited with {proc.returncode}"
        if not any(p.is_running() for p in self.processes()["proxy"]):
            return "the sandbox's proxy process is gone"
        req = urllib.request.Request(self.api_url + "/user", headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as err:
            return f"GET /hub/api/user through the proxy answered HTTP {err.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            return f"GET /hub/api/user through the proxy failed: {err}"
        return None

    def diagnostics(self, lines: int = 40) -> str:
        """The hub's and the proxy's log tails (the last requests among them) and the simulated
        server's: what a failed health check shows."""
        parts = [
            f"--- hub log (last {lines} lines) ---\n{self.log_tail(lines)}",
            f"--- proxy (last {lines} lines) ---\n{self.log_tail(lines, grep='configurable_http_proxy')}",
        ]
        if self.simserver is not None:
            parts.append(
                f"--- simulated server (last {lines} lines) ---\n{self.log_tail(lines, 'simserver.log')}"
            )
        return "\n".join(parts)

    def stop(self, grace: float = 15.0) -> None:
        """Stop the hub (it stops its servers and proxy), then kill anything left behind."""
        self._track_children()
        if self.hub is not None and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGTERM)
            give_up = time.monotonic() + grace
            while self.hub.poll() is None and time.monotonic() < give_up and not self._abort.is_set():
                time.sleep(0.05)
        self._track_children()
        procs = [p for p in self._tracked.values() if p.is_running()]
        for proc in procs:
            try:
                proc.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=0.5 if self._abort.is_set() else 3)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=3)
        for proc in (self.hub, self.simserver):
            if proc is not None:
                try:
                    proc.wait(1)
                except subprocess.TimeoutExpired:
                    pass
        self._tracked.clear()
        if self.workdir is not None and not os.environ.get("HUBSTRESS_KEEP_SANDBOX"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Sandbox:
        # start() runs in a thread; a cancelled run must not leave it starting a hub nobody
        # will stop: abort it and wait for it to clean up after itself
        starting = asyncio.ensure_future(asyncio.to_thread(self.start))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            self.abort()
            with contextlib.suppress(BaseException):
                await starting
            raise

    async def __aexit__(self, *exc: object) -> None:
        # shielded: a cancelled run must still take its hub down
        await asyncio.shield(asyncio.to_thread(self.stop))
