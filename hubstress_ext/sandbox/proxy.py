"""Launch the pure-Python configurable-http-proxy with a production-like client pool.

The proxy forwards with Tornado's ``AsyncHTTPClient``, whose default pool is 10 concurrent
upstream requests (the rest queue, then fail with 503 after 20 s). The Node proxy that real
deployments run has no such cap, and a spawn storm holds one long request per pending spawn
(its progress stream), so the sandbox raises the pool before handing over to the proxy's own CLI.

``HUBSTRESS_SANDBOX_PROXY_COST_MS=N`` in the sandbox's environment makes the proxy spend N ms of
CPU on every request it forwards: a proxy that is the limit on purpose, whatever else the
machine is doing (the test of the bottleneck line's proxy rule), as ``--profile slow`` makes a
slow spawner.
"""

from __future__ import annotations

import os
import sys
import time

from tornado.httpclient import AsyncHTTPClient

MAX_UPSTREAM = 5000
COST_ENV = "HUBSTRESS_SANDBOX_PROXY_COST_MS"


def burn_per_request(cost_s: float) -> None:
    """Every proxied request first spends ``cost_s`` of CPU (a busy loop, on purpose)."""
    from configurable_http_proxy.handlers import ProxyHandler

    original = ProxyHandler.prepare

    def prepare(self):  # noqa: ANN001, ANN202 - tornado's hook
        end = time.perf_counter() + cost_s
        while time.perf_counter() < end:
            pass
        return original(self)

    ProxyHandler.prepare = prepare


def main() -> None:
    AsyncHTTPClient.configure(None, max_clients=MAX_UPSTREAM)
    cost_ms = float(os.environ.get(COST_ENV) or 0)
    if cost_ms > 0:
        burn_per_request(cost_ms / 1000.0)
    from configurable_http_proxy.cli import main as chp_main

    sys.argv[0] = "configurable-http-proxy"
    chp_main()


if __name__ == "__main__":
    main()
