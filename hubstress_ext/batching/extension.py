"""The Jupyter server extension: the batching endpoint at ``{base_url}hubstress/batch``.

Configured with traitlets, e.g. in ``jupyter_server_config.py``::

    c.HubstressBatching.batch_size = 8
    c.HubstressBatching.max_wait_ms = 10
    c.HubstressBatching.model = "mypkg.models:predict"

Requests go through Jupyter's authentication (token or cookie + XSRF); an unauthenticated
request gets 403 and never a batch slot. Metrics join the server's existing ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from traitlets import Float, Integer, Unicode
from traitlets.config import Configurable

from hubstress_ext.batching.batcher import BatchSettings
from hubstress_ext.batching.handlers import SERVICE_KEY, BatchMixin, ConfigMixin, StatsMixin
from hubstress_ext.batching.service import DEFAULT_MAX_BODY, BatchingService


class HubstressBatching(Configurable):
    batch_size = Integer(5, config=True, help="Dispatch a batch when this many items are queued.")
    max_wait_ms = Float(
        20.0, config=True, help="...or when the oldest item has waited this long (0: greedy)."
    )
    max_queue = Integer(1000, config=True, help="Refuse beyond this many queued items.")
    deadline_ms = Float(30000.0, config=True, help="Default per-request deadline (clients may shorten).")
    max_delay_ms = Float(
        1000.0, config=True, help="Refuse an arrival whose predicted wait for its batch is longer (0: off)."
    )
    latency_slo_ms = Float(
        0.0, config=True, help="Adaptive mode: batch size chosen for throughput with p99 under this (0: off)."
    )
    refuse_status = Integer(503, config=True, help="Status of a refusal (503 or 429), with Retry-After.")
    max_body_bytes = Integer(DEFAULT_MAX_BODY, config=True, help="Larger bodies get 413.")
    model = Unicode(
        "echo", config=True, help="Built-in model (echo, echo-async, mlp, device-sim) or 'module:function'."
    )


class JupyterBatchHandler(BatchMixin, APIHandler):
    @web.authenticated
    async def post(self) -> None:
        answering = BatchMixin.post(self)  # None when it answered at once
        if answering is not None:
            await answering


class JupyterConfigHandler(ConfigMixin, APIHandler):
    @web.authenticated
    def get(self) -> None:
        ConfigMixin.get(self)

    @web.authenticated
    def patch(self) -> None:
        ConfigMixin.patch(self)


class JupyterStatsHandler(StatsMixin, APIHandler):
    @web.authenticated
    def get(self) -> None:
        StatsMixin.get(self)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    cfg = HubstressBatching(parent=serverapp)
    settings = BatchSettings(
        cfg.batch_size,
        cfg.max_wait_ms,
        cfg.max_queue,
        cfg.deadline_ms,
        cfg.max_delay_ms,
        cfg.latency_slo_ms,
        cfg.refuse_status,
    )
    service = BatchingService(cfg.model, settings, max_body_bytes=cfg.max_body_bytes)
    web_app = serverapp.web_app
    web_app.settings[SERVICE_KEY] = service
    base = url_path_join(web_app.settings["base_url"], "hubstress", "batch")
    web_app.add_handlers(
        ".*$",
        [
            (base, JupyterBatchHandler),
            (base + "/config", JupyterConfigHandler),
            (base + "/stats", JupyterStatsHandler),
        ],
    )
    serverapp.log.info(
        "hubstress batching endpoint at %s (model=%s, batch_size=%d, max_wait_ms=%g)",
        base,
        cfg.model,
        cfg.batch_size,
        cfg.max_wait_ms,
    )


load_jupyter_server_extension = _load_jupyter_server_extension  # the pre-2.0 name
