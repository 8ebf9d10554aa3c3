"""A lean HTTP/1.1 keep-alive connection for the load generator's hot path.

The generator is the instrument, so it must cost far less than the server it measures.
A general client (aiohttp: ~300 µs of CPU per request here, see ``benchmarks/http_clients.py``)
spends most of that on features a load loop does not need per request (cookie jars, tracing,
redirects, per-request timeouts as tasks). This connection writes a pre-built request head,
parses the answer with ``httptools`` (the C parser uvicorn uses) and reports completion through
a callback: no task, no future, no coroutine per request.

One request at a time per connection (no pipelining), as a browser or the seed client does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

# on_done(conn, status, body, error): status 0 and error set when there was no response
Callback = Callable[["Connection", int, bytes, "str | None"], None]

TIMEOUT = "timeout"
CONNECTION = "connection error"
BAD_RESPONSE = "bad response"


class Target:
    """What every request of a run shares: address and the request head, built once."""

    def __init__(self, url: str, method: str = "POST", headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.method = method.upper()
        host_header = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host_header}", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def request_bytes(self, body: bytes | None) -> bytes:
        if body is None:
            return self._head + b"\r\n"
        return b"%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            self._head,
            len(body),
            body,
        )


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``send`` one request, ``on_done`` fires exactly once for it."""

    __slots__ = (
        "target",
        "on_done",
        "timeout",
        "transport",
        "parser",
        "busy",
        "closed",
        "_body",
        "_timer",
        "_loop",
        "user",
    )

    def __init__(self, target: Target, on_done: Callback, timeout: float) -> None:
        self.target = target
        self.on_done = on_done
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False
        self.closed = False
        self._body: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.user: object = None  # whatever the load loop wants to remember per connection

    @classmethod
    async def open(cls, target: Target, on_done: Callback, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        ssl = target.scheme == "https" or None
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: cls(target, on_done, timeout), target.host, target.port, ssl=ssl),
            timeout,
        )
        return conn

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.busy = True
        self._body.clear()
        self._timer = self._loop.call_later(self.timeout, self._on_timeout)
        self.transport.write(data)  # type: ignore[union-attr]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(BAD_RESPONSE)
            self.close()
        except httptools.HttpParserUpgrade:
            self._fail(BAD_RESPONSE)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(CONNECTION)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self.busy:
            return  # an answer nobody asked for (after a timeout): ignore
        status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.close()
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._finish(status, body, None)

    # -- completion ----------------------------------------------------------------------------

    def _on_timeout(self) -> None:
        self._timer = None
        if self.busy:
            self._fail(TIMEOUT)
            self.close()  # the late answer must not be taken for the next request's

    def _fail(self, reason: str) -> None:
        if self.busy:
            self._finish(0, b"", reason)

    def _finish(self, status: int, body: bytes, error: str | None) -> None:
        self.busy = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.on_done(self, status, body, error)
