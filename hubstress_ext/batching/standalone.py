"""``hubstress serve``: the batching endpoint as its own Tornado server (no Jupyter needed).

Paths: ``/hubstress/batch`` (and ``/testB``, the seed client's path), ``/hubstress/batch/config``,
``/hubstress/batch/stats``, ``/metrics``. No authentication: it binds to 127.0.0.1 by default.
Oversized requests get 413/414/431 and idle or slow connections are closed (``limits``).
While the batcher is busy, a batch request is admitted or refused as soon as its headers are
read (``_AdmittingDelegate``): a refusal then costs no handler, no JSON parse and no loop turn.
On SIGINT/SIGTERM it stops accepting connections, serves what is queued (up to ``grace``
seconds), refuses the rest with 503, then exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import httputil, routing, web

from hubstress_ext.batching.admission import Refused
from hubstress_ext.batching.arrival import waited_unread
from hubstress_ext.batching.batcher import BatchSettings
from hubstress_ext.batching.handlers import (
    DEADLINE_HEADER,
    SERVICE_KEY,
    BadInput,
    BatchMixin,
    ConfigMixin,
    StatsMixin,
    asked_deadline_ms,
    refusal_json,
)
from hubstress_ext.batching.limits import HttpLimits, LimitedHTTPServer
from hubstress_ext.batching.service import DEFAULT_MAX_BODY, BatchingService

log = logging.getLogger("hubstress.batching")


class BatchHandler(BatchMixin, web.RequestHandler):
    pass


class ConfigHandler(ConfigMixin, web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "PATCH")


class StatsHandler(StatsMixin, web.RequestHandler):
    pass


class MetricsHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest())


BATCH_PATHS = ("/hubstress/batch", "/testB")
# Tornado listens with a backlog of 128: a burst of new connections beyond it has its SYNs
# dropped and retried by the clients' kernels a second later, a stall no admission rule sees.
# The kernel caps this at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 2048
# an idle batcher admits without asking, unless the request already waited this long unread
IDLE_UNREAD_S = 0.001


class _Refusal(httputil.HTTPMessageDelegate):
    """Answers a request refused at its headers, once its body has been read (so that the
    connection stays usable), without reaching the application."""

    def __init__(self, refused: Refused, connection: Any, batcher: Any, arrived: float) -> None:
        self.refused, self.connection, self.batcher, self.arrived = refused, connection, batcher, arrived

    def data_received(self, chunk: bytes) -> None:
        return None  # the body of a refused request is read and dropped

    def finish(self) -> None:
        head = f"Content-Type: application/json\r\nRetry-After: {self.refused.retry_after_header}\r\n"
        body = refusal_json(self.refused).encode()
        self.connection.write_whole(self.batcher.settings.refuse_status, head, body)
        self.batcher.note_refusal(time.monotonic() - self.arrived, at_headers=True)


class _AdmittingDelegate(routing._RoutingDelegate):
    """Tornado's per-request router, deciding admission of a batch request from its headers
    while the batcher is busy, or when the request sat unread in its socket for a while (the
    kernel's receive stamp, ``arrival``: that time counts toward its deadline): a refusal then
    costs no handler, no JSON parse and no loop turn.

    An admitted request counts as queued ahead of later arrivals (``BatchingService.incoming``)
    until its handler submits it, a turn of the loop later; the handler judges it once more
    against the queue it joins, but not on its wait for the loop since its headers, so nearly
    every time-based refusal is answered within microseconds of reading the headers.
    """

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        if start_line.method == "POST" and start_line.path in BATCH_PATHS:
            conn = self.request_conn
            service = self.router.settings[SERVICE_KEY]  # type: ignore[attr-defined]
            batcher = service.batcher
            # how long the request sat unread in its socket before the server read it
            unread_s = conn.hubstress_unread_s = waited_unread(getattr(conn, "stamped", None))
            batcher.note_unread(unread_s)
            if batcher.pressed or unread_s > IDLE_UNREAD_S:
                try:
                    deadline_ms = asked_deadline_ms(
                        headers.get_list(DEADLINE_HEADER), batcher.settings.deadline_ms
                    )
                except BadInput:
                    deadline_ms = None  # the handler answers 400 with the reason
                if deadline_ms is not None:
                    arrived = time.monotonic()
                    # the requests read in this same turn of the loop count as ahead of it
                    refused = batcher.admit(deadline_ms / 1000.0, unread_s, len(service.incoming))
                    if refused is not None:
                        self.delegate = _Refusal(refused, conn, batcher, arrived)
                        return None
                    conn.hubstress_admitted = True  # read by the handler
                    service.incoming.add(conn)
        return super().headers_received(start_line, headers)


class EndpointApplication(web.Application):
    def start_request(self, server_conn: object, request_conn: Any) -> httputil.HTTPMessageDelegate:
        return _AdmittingDelegate(self, server_conn, request_conn)


def make_app(service: BatchingService) -> web.Application:
    return EndpointApplication(
        [
            *((path, BatchHandler) for path in BATCH_PATHS),
            (r"/hubstress/batch/config", ConfigHandler),
            (r"/hubstress/batch/stats", StatsHandler),
            (r"/metrics", MetricsHandler),
        ],
        log_function=lambda handler: None,  # per-request access logs would cost more than batching
        **{SERVICE_KEY: service},
    )


async def serve(
    port: int,
    address: str = "127.0.0.1",
    model: str = "echo",
    settings: BatchSettings | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    grace: float = 10.0,
    ready: asyncio.Event | None = None,
    limits: HttpLimits | None = None,
    loaded: Any = None,
) -> None:
    limits = limits or HttpLimits(max_body_bytes=max_body_bytes)
    service = BatchingService(model, settings, max_body_bytes=limits.max_body_bytes, loaded=loaded)
    server = LimitedHTTPServer(make_app(service), limits)
    server.listen(port, address, backlog=LISTEN_BACKLOG)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    s = service.batcher.settings
    print(
        f"hubstress batching endpoint on http://{address}:{port}/hubstress/batch "
        f"(model={model}, batch_size={s.batch_size}, max_wait_ms={s.max_wait_ms:g}, max_queue={s.max_queue})",
        flush=True,
    )
    if ready is not None:
        ready.set()
    # Everything allocated so far (tornado, numpy, the CLI's pandas...) lives for the whole
    # process: freezing it keeps the cyclic GC's full passes from re-walking it per request.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    await stop.wait()
    server.stop()  # no new connections
    refused = await service.batcher.close(grace)
    await asyncio.sleep(0.05)  # let the last responses flush
    await server.close_all_connections()
    print(f"stopped: {service.batcher.stats.served} served, {refused} refused at shutdown", flush=True)
