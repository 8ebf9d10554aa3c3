"""HTTP limits of the standalone endpoint, each answered with its own status instead of a reset.

Tornado enforces header and body sizes itself, but answers a too-large body with a bare
``400`` and closes the socket with the rest of the body unread (the client usually sees a
reset, not the answer), and closes on over-long headers without answering at all. This server
reads the same limits one step earlier and answers like a proxy would:

- body over ``max_body_bytes`` (declared by Content-Length, or found while reading a chunked
  body): ``413``;
- a request line (URL) over ``max_url_bytes``: ``414``;
- header block over ``max_header_bytes`` or more than ``max_header_lines`` lines: ``431``;

each as a JSON body with ``Connection: close``, after which the rest of the request is read
and discarded for a moment (bounded), so the answer reaches a client that is still sending.
Headers beyond 2 MiB are cut off by Tornado's own buffer limit (connection closed, no answer).
``header_timeout_s`` (also the keep-alive idle limit) and ``body_timeout_s`` close idle or
slow connections, so they cannot hold sockets forever.

Inside a Jupyter server the server's own HTTP settings apply; these are for ``hubstress serve``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from tornado import httputil, iostream
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.httpserver import HTTPServer, _HTTPRequestContext

from hubstress_ext.batching.arrival import StampedStream, stamp_receives
from hubstress_ext.batching.batcher import finite_number

TORNADO_HEADER_BUFFER = 2 << 20  # beyond this Tornado closes the stream itself: no answer possible
log = logging.getLogger("hubstress.batching")

DRAIN_S = 1.0  # after a refusal, how long the rest of the request is read and thrown away
DRAIN_BYTES = 64 << 20


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = 64 * 1024
    max_url_bytes: int = 8 * 1024
    max_header_bytes: int = 64 * 1024
    max_header_lines: int = 100
    header_timeout_s: float = 30.0
    body_timeout_s: float = 30.0

    def validate(self) -> None:
        for name in ("max_body_bytes", "max_url_bytes", "max_header_bytes", "max_header_lines"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")
        for name in ("header_timeout_s", "body_timeout_s"):
            value = getattr(self, name)
            if not finite_number(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number of seconds > 0 (got {value!r})")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _LimitedConnection(HTTP1Connection):
    limits: HttpLimits
    stamped: StampedStream | None  # the stream's kernel receive stamps (``arrival``)

    def _parse_headers(self, data: bytes) -> tuple[str, httputil.HTTPHeaders]:
        limits = self.limits
        first_eol = data.find(b"\n")
        if first_eol > limits.max_url_bytes or (first_eol < 0 and len(data) > limits.max_url_bytes):
            raise _Refused(414, f"request line over {limits.max_url_bytes} bytes")
        size = len(data)
        if size > limits.max_header_bytes:
            raise _Refused(431, f"headers over {limits.max_header_bytes} bytes")
        # a header line takes at least 3 bytes ("a:" and a newline), so a short block cannot hold
        # too many of them and is not counted (most requests: this runs per request)
        lines = limits.max_header_lines + 2  # + the request line and the blank line
        if size > 3 * lines and data.count(b"\n") > lines:
            raise _Refused(431, f"more than {limits.max_header_lines} header lines")
        return super()._parse_headers(data)

    def _read_body(self, code: int, headers: httputil.HTTPHeaders, delegate: Any) -> Any:
        declared = headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit():
            size = int(declared)
            if size > self.limits.max_body_bytes:
                raise _Refused(413, f"body over {self.limits.max_body_bytes} bytes")
            if self.stream._read_buffer_size >= size:
                # already read whole: nothing to time out, and the timer would cost a timeout
                # object per request (measured: about 5% of the endpoint's throughput)
                self._body_timeout = None
        reading = super()._read_body(code, headers, delegate)
        if reading is None or "chunked" not in headers.get("Transfer-Encoding", "").lower():
            return reading
        return self._chunked_within_limit(reading)

    async def _chunked_within_limit(self, reading: Any) -> None:
        try:
            await reading
        except httputil.HTTPInputError as exc:
            if "too large" in str(exc):  # Tornado's own check against the same max_body_size
                raise _Refused(413, f"body over {self.limits.max_body_bytes} bytes") from None
            raise

    def write_whole(self, status: int, head: str, body: bytes) -> None:
        """A complete response in one write, without a header object or a header check per
        line: a refusal at the headers (``head``: its extra header lines, each ending in CRLF)
        at a fraction of ``write_headers``' cost, which at 2x overload is paid 10,000 times a
        second. The connection's bookkeeping is what ``write_headers`` leaves behind."""
        req, asked = self._request_start_line, self._request_headers
        assert req is not None and asked is not None
        connection = ""
        if self._disconnect_on_finish and req.version == "HTTP/1.1":
            connection = "Connection: close\r\n"
        elif req.version == "HTTP/1.0" and asked.get("Connection", "").lower() == "keep-alive":
            connection = "Connection: Keep-Alive\r\n"
        reason = httputil.responses.get(status, "Unknown")
        self._response_start_line = httputil.ResponseStartLine("HTTP/1.1", status, reason)
        self._chunking_output = False
        self._expected_content_remaining = 0
        data = f"HTTP/1.1 {status} {reason}\r\n{head}Content-Length: {len(body)}\r\n{connection}\r\n"
        self._pending_write = self.stream.write(data.encode("latin1") + body)
        self._pending_write.add_done_callback(self._on_write_complete)
        self.finish()

    async def _refuse(self, status: int, message: str) -> None:
        body = json.dumps({"error": "too_large", "message": message}).encode()
        head = (
            f"HTTP/1.1 {status} {httputil.responses[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        stream = self.stream
        try:
            await stream.write(head + body)
            await _drain(stream)
        except iostream.StreamClosedError:
            pass
        finally:
            stream.close()


async def _drain(stream: iostream.IOStream) -> None:
    """Read and drop what the client is still sending, briefly: closing with unread data
    makes the kernel send a reset, which can destroy the answer before the client reads it."""
    give_up = time.monotonic() + DRAIN_S
    seen = 0
    while seen < DRAIN_BYTES and (left := give_up - time.monotonic()) > 0:
        try:
            chunk = await asyncio.wait_for(stream.read_bytes(1 << 16, partial=True), left)
        except (TimeoutError, iostream.StreamClosedError):
            return
        seen += len(chunk)


def _nodelay_stays_on(value: bool) -> None:
    return None


class _LimitedServerConnection(HTTP1ServerConnection):
    limits: HttpLimits
    stamped: StampedStream | None

    async def _server_request_loop(self, delegate: httputil.HTTPServerConnectionDelegate) -> None:
        # Tornado's loop, with our connection class (it names HTTP1Connection directly)
        try:
            while True:
                conn = _LimitedConnection(self.stream, False, self.params, self.context)
                conn.limits, conn.stamped = self.limits, self.stamped
                request_delegate = delegate.start_request(self, conn)
                try:
                    ret = await conn.read_response(request_delegate)
                except _Refused as refused:  # raised while reading: answered here, then closed
                    await conn._refuse(refused.status, str(refused))
                    return
                except (iostream.StreamClosedError, iostream.UnsatisfiableReadError, asyncio.CancelledError):
                    return
                except Exception:
                    log.error("uncaught exception reading a request", exc_info=True)
                    conn.close()
                    return
                if not ret:
                    return
                await asyncio.sleep(0)
        finally:
            delegate.on_close(self)


class LimitedHTTPServer(HTTPServer):
    """An HTTPServer answering 413/414/431 and closing idle or slow connections."""

    # Tornado's HTTPServer is Configurable: constructor arguments arrive here, not in __init__
    def initialize(self, app: Any, limits: HttpLimits, **kwargs: Any) -> None:  # type: ignore[override]
        limits.validate()
        self.limits = limits
        super().initialize(
            app,
            # Tornado's own buffer sits above our limits, so that our checks see the request first
            max_header_size=max(TORNADO_HEADER_BUFFER, limits.max_header_bytes, limits.max_url_bytes),
            max_body_size=limits.max_body_bytes,
            idle_connection_timeout=limits.header_timeout_s,
            body_timeout=limits.body_timeout_s,
            **kwargs,
        )

    def handle_stream(self, stream: iostream.IOStream, address: tuple) -> None:
        # Nagle off for the connection's life: Tornado turns it on and off around every
        # response (two system calls per request), and every answer here is one write anyway
        stream.set_nodelay(True)
        stream.set_nodelay = _nodelay_stays_on  # type: ignore[method-assign]
        stamped = stamp_receives(stream)  # so that admission sees time spent unread in the socket
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        conn = _LimitedServerConnection(stream, self.conn_params, context)
        conn.limits, conn.stamped = self.limits, stamped
        self._connections.add(conn)
        conn.start_serving(self)
