"""The Jupyter server extension: the batching endpoint at ``{base_url}hubstress/batch``.

Configured with traitlets (``batching.config``, shared with ``hubstress serve``), e.g. in
``jupyter_server_config.py``::

    c.HubstressBatching.batch_size = 8
    c.HubstressBatching.max_wait_ms = 10
    c.HubstressBatching.model = "mypkg.models:predict"

Requests go through Jupyter's authentication (token or cookie + XSRF); an unauthenticated
request gets 403 and never a batch slot. Metrics join the server's existing ``/metrics``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HubstressBatching", "load_jupyter_server_extension"]

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from hubstress_ext.batching.config import HubstressBatching
from hubstress_ext.batching.handlers import SERVICE_KEY, BatchMixin, ConfigMixin, StatsMixin
from hubstress_ext.batching.service import BatchingService


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
    service = BatchingService(cfg.model, cfg.settings(), max_body_bytes=cfg.max_body_bytes)
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
