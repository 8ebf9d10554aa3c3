"""Launch the pure-Python configurable-http-proxy with a production-like client pool.

The proxy forwards with Tornado's ``AsyncHTTPClient``, whose default pool is 10 concurrent
upstream requests (the rest queue, then fail with 503 after 20 s). The Node proxy that real
deployments run has no such cap, and a spawn storm holds one long request per pending spawn
(its progress stream), so the sandbox raises the pool before handing over to the proxy's own CLI.
"""

from __future__ import annotations

import sys

from tornado.httpclient import AsyncHTTPClient

MAX_UPSTREAM = 5000


def main() -> None:
    AsyncHTTPClient.configure(None, max_clients=MAX_UPSTREAM)
    from configurable_http_proxy.cli import main as chp_main

    sys.argv[0] = "configurable-http-proxy"
    chp_main()


if __name__ == "__main__":
    main()
