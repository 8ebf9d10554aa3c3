"""``hubstress serve``: the batching endpoint as its own Tornado server (no Jupyter needed).

Paths: ``/hubstress/batch`` (and ``/testB``, the seed client's path), ``/hubstress/batch/config``,
``/hubstress/batch/stats``, ``/metrics``. No authentication: it binds to 127.0.0.1 by default.
Oversized requests get 413/414/431 and idle or slow connections are closed (``limits``).
On SIGINT/SIGTERM it stops accepting connections, serves what is queued (up to ``grace``
seconds), refuses the rest with 503, then exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from tornado import web

from hubstress_ext.batching.batcher import BatchSettings
from hubstress_ext.batching.handlers import SERVICE_KEY, BatchMixin, ConfigMixin, StatsMixin
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


def make_app(service: BatchingService) -> web.Application:
    return web.Application(
        [
            (r"/hubstress/batch", BatchHandler),
            (r"/testB", BatchHandler),
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
) -> None:
    limits = limits or HttpLimits(max_body_bytes=max_body_bytes)
    service = BatchingService(model, settings, max_body_bytes=limits.max_body_bytes)
    server = LimitedHTTPServer(make_app(service), limits)
    server.listen(port, address)
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
