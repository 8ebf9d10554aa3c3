"""A re-creation of the original hub-stress-test.py's *approach*, for side-by-side benchmarks.

requests + urllib3 Retry (429/503/504, backoff 0.5) + ThreadPoolExecutor(batch_size) to start
servers, then each user polled one after another with ``GET /users/{name}`` every second until
ready; the same for stopping. (Written from the seed document's description, not its code;
``allowed_methods`` replaces the ``method_whitelist`` that crashes on urllib3 2.)
Ready time is when the poll *observed* readiness, so its resolution is the 1 s poll interval.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

POLL = 1.0
TIMEOUT = 300


def session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"token {token}"
    retry = Retry(total=20, backoff_factor=0.5, status_forcelist=[429, 503, 504], allowed_methods=False)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=100)
    s.mount("http://", adapter)
    return s


def run(endpoint: str, token: str, count: int, batch_size: int, prefix: str = "orig-") -> dict:
    s = session(token)
    names = [f"{prefix}{i}" for i in range(count)]
    t_start = time.time()
    for i in range(0, count, batch_size):
        s.post(f"{endpoint}/users", json={"usernames": names[i : i + batch_size]}).raise_for_status()
    requested: dict[str, float] = {}

    def start(name: str) -> None:
        requested[name] = time.time()
        s.post(f"{endpoint}/users/{name}/server")

    with ThreadPoolExecutor(batch_size) as pool:
        list(pool.map(start, names))
    ready: dict[str, float] = {}
    for name in names:  # one user after another, 1 s apart
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            server = s.get(f"{endpoint}/users/{name}").json().get("servers", {}).get("")
            if server and server.get("ready"):
                ready[name] = time.time()
                break
            time.sleep(POLL)
    t_ready = time.time()
    with ThreadPoolExecutor(batch_size) as pool:
        list(pool.map(lambda n: s.delete(f"{endpoint}/users/{n}/server"), names))
    for name in names:
        while s.get(f"{endpoint}/users/{name}").json().get("servers"):
            time.sleep(POLL)
    with ThreadPoolExecutor(batch_size) as pool:
        list(pool.map(lambda n: s.delete(f"{endpoint}/users/{n}"), names))
    return {
        "wall_s": time.time() - t_start,
        "spawn_wall_s": t_ready - t_start,
        "latency_s": {n: ready[n] - requested[n] for n in ready},
    }
