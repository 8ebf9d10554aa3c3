"""SimSpawner: a spawner with no process per user, so thousands of users fit on a laptop.

The hub, proxy and database still do all their real work (spawn bookkeeping, readiness
check over HTTP, proxy routes, activity); only the single-user server is replaced by one
shared lightweight HTTP server (``hubstress_ext.sandbox.simserver``).

Profiles (chosen with ``--profile``, sent as the ``profile`` user option) simulate the
cases an operator wants to see in a report: ``slow`` and ``fail``; ``slow-stop`` servers take
1-2 s to stop, so a teardown lasts long enough to be interrupted on purpose.
"""

from __future__ import annotations

import asyncio
import json
import os
import random

from jupyterhub.spawner import Spawner
from tornado.httpclient import AsyncHTTPClient
from traitlets import Dict, Float, Tuple, Unicode, default

from hubstress_ext.sandbox.simserver import ENV_SECRET


class SimSpawner(Spawner):
    server_url = Unicode(config=True, help="URL of the shared simulated single-user server.")
    start_delay = Tuple(
        Float(),
        Float(),
        default_value=(0.05, 0.3),
        config=True,
        help="Uniform range (seconds) a simulated start takes.",
    )
    stop_delay = Tuple(Float(), Float(), default_value=(0.0, 0.05), config=True)
    profiles = Dict(
        config=True,
        help="profile name -> {'start_delay': [lo, hi]}, {'stop_delay': [lo, hi]}, {'fail': 'reason'}.",
    )

    @default("server_url")
    def _default_server_url(self) -> str:
        return os.environ.get("HUBSTRESS_SIM_URL", "")

    @default("profiles")
    def _default_profiles(self) -> dict:
        return {
            "slow": {"start_delay": [3.0, 5.0]},
            "fail": {"fail": "simulated spawn failure: image pull back-off"},
            "slow-stop": {"stop_delay": [1.0, 2.0]},
        }

    _running = False

    def _profile(self) -> dict | None:
        profile = (self.user_options or {}).get("profile") or ""
        return self.profiles.get(profile) if profile else {}

    async def start(self) -> str:
        profile = (self.user_options or {}).get("profile") or ""
        spec = self._profile()
        if spec is None:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ValueError(f"unknown profile {profile!r} (known: {known})")
        lo, hi = spec.get("start_delay", self.start_delay)
        await asyncio.sleep(random.uniform(lo, hi))
        if "fail" in spec:
            raise RuntimeError(spec["fail"])
        if not self.server_url:
            raise RuntimeError("SimSpawner.server_url is not set")
        await self._register()
        self._running = True
        return self.server_url

    async def _register(self) -> None:
        """Give the stand-in this server's OAuth client, so a browser-style login works."""
        env = self.get_env()
        body = {
            "user": self.user.name,
            "client_id": env["JUPYTERHUB_CLIENT_ID"],
            "client_secret": env["JUPYTERHUB_API_TOKEN"],
            "callback": env["JUPYTERHUB_OAUTH_CALLBACK_URL"],
            "hub_prefix": self.hub.base_url,
        }
        await self._tell_stand_in("POST", "", body=json.dumps(body))

    async def _unregister(self) -> None:
        try:
            await self._tell_stand_in("DELETE", f"?user={self.user.name}", raise_error=False)
        except OSError:
            pass  # the stand-in is gone (the sandbox is stopping): nothing to forget

    async def _tell_stand_in(self, method: str, query: str, **kw) -> None:
        await AsyncHTTPClient().fetch(
            self.server_url.rstrip("/") + "/_sim/servers" + query,
            method=method,
            headers={"Authorization": f"secret {os.environ.get(ENV_SECRET, '')}"},
            **kw,
        )

    async def poll(self) -> int | None:
        return None if self._running else 0

    async def stop(self, now: bool = False) -> None:
        lo, hi = (self._profile() or {}).get("stop_delay", self.stop_delay)
        await asyncio.sleep(random.uniform(lo, hi))
        if self._running and self.server_url:
            await self._unregister()
        self._running = False

    def get_state(self) -> dict:
        state = super().get_state()
        if self._running:
            state["sim_running"] = True
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self._running = bool(state.get("sim_running"))

    def clear_state(self) -> None:
        super().clear_state()
        self._running = False
