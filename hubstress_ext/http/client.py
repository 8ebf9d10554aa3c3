"""HttpClient: send a request, record every attempt, retry what deserves retrying.

The token lives only in the session's default headers: it is never part of a URL, a record,
a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from hubstress_ext.errors import HubstressError
from hubstress_ext.http.records import Record, RecordSink, timed_record
from hubstress_ext.http.retry import Deadline, RetryPolicy, parse_retry_after

log = logging.getLogger("hubstress.http")


@dataclass
class Response:
    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 400

    def json(self) -> Any:
        return jsonlib.loads(self.body) if self.body else None

    def reason(self) -> str:
        """Human reason for a failure: the hub's JSON ``message`` when it sent one."""
        if self.error:
            return self.error
        try:
            data = self.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("message"):
            return f"HTTP {self.status}: {data['message']}"
        return f"HTTP {self.status}"


# Responder used instead of the network in --dry-run: (method, path, json) -> Response
Responder = Callable[[str, str, Any], Response]
# Sees every attempt's record as it completes (the hub watch uses it to notice a dead hub)
Observer = Callable[[Record], None]


class _Retryable(Exception):
    def __init__(self, record: Record, response: Response, wait: float | None) -> None:
        super().__init__(response.reason())
        self.record = record
        self.response = response
        self.wait = wait


class HttpClient:
    """Async client bound to one base URL (e.g. ``http://127.0.0.1:8000/hub/api``)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        sink: RecordSink,
        *,
        request_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        deadline: Deadline | None = None,
        dry_run: Responder | None = None,
        plan_printer: Callable[[str], None] = print,
        read_through: Callable[[str, str], bool] | None = None,
        cookies: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.sink = sink
        self.request_timeout = request_timeout
        self.retry = retry or RetryPolicy()
        self.deadline = deadline or Deadline(None)
        self._dry_run = dry_run
        self._plan_printer = plan_printer
        # a dry run that reads the real target where ``read_through(method, path)`` says, so its
        # plan is what the run would really touch (the names it would pick, the users purge
        # would delete); it writes nothing
        self._read_through = read_through if dry_run is not None else None
        self._session: aiohttp.ClientSession | None = None
        self._cookies = cookies  # keep cookies (a browser-style login), loopback included
        self.headers: dict[str, str] = {}  # sent with every request (e.g. X-XSRFToken after a login)
        self.observer: Observer | None = None
        # set (to a reason) once the target is known to be gone: requests then fail at once,
        # unsent and unrecorded, instead of retrying into a dead server
        self.unreachable: str | None = None

    @property
    def dry_run(self) -> bool:
        return self._dry_run is not None

    @property
    def token(self) -> str | None:
        """The token this client sends (for a process that must send the same: a Dask shard)."""
        return self._token

    async def __aenter__(self) -> HttpClient:
        if not self.dry_run or self._read_through is not None:
            headers = {"Accept": "application/json"}
            if self._token:
                headers["Authorization"] = f"token {self._token}"
            # limit=0: concurrency is governed by the scenarios (batch size, workers), not a pool
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            jar = aiohttp.CookieJar(unsafe=True) if self._cookies else aiohttp.DummyCookieJar()
            self._session = aiohttp.ClientSession(
                headers=headers, connector=connector, raise_for_status=False, cookie_jar=jar
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (for what is not a plain request: a websocket)."""
        assert self._session is not None, "use 'async with HttpClient(...)'"
        return self._session

    def cookie(self, name: str, path_prefix: str = "/") -> str | None:
        """A cookie the server set (the newest with that name under ``path_prefix``)."""
        if self._session is None:
            return None
        found = [
            c.value for c in self._session.cookie_jar if c.key == name and c["path"].startswith(path_prefix)
        ]
        return found[-1] if found else None

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):  # outside the API, e.g. the hub's /hub/metrics
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- requests -------------------------------------------------------------------------

    async def request(
        self,
        op: str,
        method: str,
        path: str,
        *,
        user: str | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = True,
        retry: bool = True,
        retry_errors: bool = True,
        attempts: int | None = None,
        connect_timeout: float | None = None,
        expect: tuple[int, ...] = (),
    ) -> Response:
        """Send with retries; returns the final Response (never raises for HTTP/transport errors).

        ``retry_errors=False`` retries only answers (429/503/504), not failures to connect: a
        pre-flight against a hub that is not there should fail in a second, not after minutes
        of backoff. ``expect`` lists statuses that are an answer, not an error (the 404 of a
        group that does not exist yet).
        """
        if self._dry_run is not None:
            if self._read_through is not None and self._read_through(method, path):
                response = await self._send_now(op, method, path, user, params, timeout, expect)
                if response.status is not None:
                    self._plan_printer(_plan_line(method, path, params, json) + "  (read from the hub)")
                    return response
                self._read_through = None
                self._plan_printer(
                    f"could not read the hub ({response.reason()}): planned as if it were empty"
                )
            self._plan_printer(_plan_line(method, path, params, json))
            return self._dry_run(method, path, json)

        attempt_no = 0

        async def once() -> Response:
            nonlocal attempt_no
            if self.unreachable is not None:
                await asyncio.sleep(0)  # a loop of failing calls must still yield (and be cancellable)
                return Response(status=None, error=self.unreachable, attempts=attempt_no)
            attempt_no += 1
            record, response = await self._send(
                op,
                method,
                path,
                user,
                json,
                params,
                timeout,
                connect_timeout,
                data=data,
                allow_redirects=allow_redirects,
            )
            record.attempt = attempt_no
            record.expected = response.status in expect
            response.attempts = attempt_no
            if self.observer is not None:
                self.observer(record)
            retryable = _is_retryable(response, self.retry) and (retry_errors or response.error is None)
            if retry and retryable:
                raise _Retryable(record, response, parse_retry_after(response.headers.get("Retry-After")))
            self.sink.add(record)
            return response

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts or self.retry.max_attempts) | self._stop_at_deadline,
                wait=self._wait,
                retry=retry_if_exception_type(_Retryable),
                before_sleep=self._record_retry,
                reraise=True,
            ):
                with attempt:
                    return await once()
        except _Retryable as final:
            self.sink.add(final.record)
            return final.response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_now(
        self,
        op: str,
        method: str,
        path: str,
        user: str | None,
        params: dict[str, str] | None,
        timeout: float | None,
        expect: tuple[int, ...],
    ) -> Response:
        """One attempt, recorded (a dry run's reads)."""
        record, response = await self._send(op, method, path, user, None, params, timeout, None)
        record.expected = response.status in expect
        self.sink.add(record)
        return response

    def note_plan(self, line: str) -> None:
        """A line of a dry run's plan that is not a request (what the run would leave alone)."""
        if self.dry_run:
            self._plan_printer(line)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        server_wait = exc.wait if isinstance(exc, _Retryable) else None
        wait = server_wait if server_wait is not None else self.retry.backoff_wait()(state)
        return max(0.0, min(wait, self.deadline.remaining()))

    def _stop_at_deadline(self, state: RetryCallState) -> bool:
        return self.deadline.remaining() <= 0.05

    def _record_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable):
            exc.record.will_retry = True
            self.sink.add(exc.record)
            log.debug(
                "retrying %s %s after %s (attempt %d, waiting %.2fs)",
                exc.record.method,
                exc.record.path,
                exc.response.reason(),
                exc.record.attempt,
                state.upcoming_sleep,
            )

    async def _send(
        self,
        op: str,
        method: str,
        path: str,
        user: str | None,
        json: Any,
        params: dict[str, str] | None,
        timeout: float | None,
        connect_timeout: float | None = None,
        *,
        data: dict[str, str] | None = None,
        allow_redirects: bool = True,
    ) -> tuple[Record, Response]:
        assert self._session is not None, "use 'async with HttpClient(...)'"
        limit = min(timeout or self.request_timeout, max(self.deadline.remaining(), 0.01))
        wall, t0 = time.time(), time.perf_counter()
        status: int | None = None
        error: str | None = None
        body = b""
        headers: dict[str, str] = {}
        try:
            async with self._session.request(
                method,
                self.url(path),
                json=json,
                data=data,
                params=params,
                headers=self.headers or None,
                allow_redirects=allow_redirects,
                timeout=aiohttp.ClientTimeout(total=limit, sock_connect=connect_timeout),
            ) as resp:
                status = resp.status
                body = await resp.read()
                headers = dict(resp.headers)
        except TimeoutError:
            error = f"timeout after {limit:.1f}s"
        except aiohttp.ClientError as exc:
            error = _describe_client_error(exc)
        elapsed = time.perf_counter() - t0
        record = timed_record(op, method, path, user, wall, elapsed, status, error)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s in %.1f ms", method, path, status or error, elapsed * 1000)
        return record, Response(status=status, body=body, headers=headers, error=error)

    async def probe(self, op: str, url: str, timeout: float) -> Response:
        """One unretried GET with a short limit (a health check); recorded, never observed."""
        if self.dry_run:
            return Response(200)
        record, response = await self._send(op, "GET", url, None, None, None, timeout, timeout)
        self.sink.add(record)
        return response

    # -- server-sent events ---------------------------------------------------------------

    async def events(
        self, op: str, path: str, *, user: str | None, timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield the JSON ``data:`` events of a server-sent-event stream (one record for it).

        The record's latency is the stream's lifetime: for a spawn's progress stream, from
        subscribing until the final event.
        """
        if self._dry_run is not None:
            self._plan_printer(_plan_line("GET", path, None, None) + "  (event stream)")
            yield {"progress": 100, "ready": True, "message": "dry run"}
            return
        assert self._session is not None
        if self.unreachable is not None:
            await asyncio.sleep(0)
            raise StreamError(self.unreachable, None, gone=True)
        wall, t0 = time.time(), time.perf_counter()
        status: int | None = None
        error: str | None = None
        limit = min(timeout, max(self.deadline.remaining(), 0.01))
        try:
            async with asyncio.timeout(limit):
                async with self._session.get(
                    self.url(path),
                    headers={"Accept": "text/event-stream"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.request_timeout),
                ) as resp:
                    status = resp.status
                    if status >= 400:
                        body = await resp.read()
                        error = Response(status=status, body=body).reason()
                    else:
                        async for raw in resp.content:
                            line = raw.strip()
                            if line.startswith(b"data:"):
                                yield jsonlib.loads(line[5:])
        except TimeoutError:
            error = f"no final event within {limit:.1f}s"
        except aiohttp.ClientError as exc:
            error = _describe_client_error(exc)
        finally:
            elapsed = time.perf_counter() - t0
            record = timed_record(op, "GET", path, user, wall, elapsed, status, error)
            self.sink.add(record)
            if self.observer is not None:
                self.observer(record)
        if error:
            raise StreamError(error, status)


class StreamError(HubstressError):
    """An event stream ended without its final event (HTTP error, timeout, disconnect)."""

    def __init__(self, message: str, status: int | None = None, *, gone: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.gone = gone  # the target is known to be unreachable: nothing was sent

    @property
    def retryable(self) -> bool:
        """Worth re-subscribing: the server or the path to it failed, not the request."""
        if self.gone:
            return False
        return self.status is None or self.status >= 500 or self.status == 429


def _is_retryable(response: Response, policy: RetryPolicy) -> bool:
    if response.error is not None:
        return True  # connection refused/reset, timeout
    return response.status in policy.statuses


def _describe_client_error(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    return f"{type(exc).__name__}: {exc}"


def _plan_line(method: str, path: str, params: dict[str, str] | None, json: Any) -> str:
    line = f"{method:6} {path}"
    if params:
        line += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    if json is not None:
        text = jsonlib.dumps(json, separators=(",", ":"))
        line += "  " + (text if len(text) <= 120 else text[:117] + "...")
    return line


async def gather_limited(limit: int, factories: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run coroutine factories with at most ``limit`` in flight, preserving order."""
    sem = asyncio.Semaphore(limit)

    async def run(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await factory()

    return await asyncio.gather(*(run(f) for f in factories))
