"""A student's side of their single-user server, through the proxy's public URL.

Everything goes to ``<public>/user/<name>/...`` as a browser's JupyterLab tab sends it, so
the proxy and the server's own authentication are part of what is measured. Two ways in:
a token (header) made for the user through the admin API, or the hub's login form and the
OAuth redirect to the server (its cookie, and the ``_xsrf`` cookie echoed in a header), as
hubtraf does. Every step is a record in the run's sink, named by its ``op``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import aiohttp

from hubstress_ext.http.client import HttpClient
from hubstress_ext.http.records import RecordSink, timed_record
from hubstress_ext.http.retry import Deadline, RetryPolicy

WS_STATUS = 101  # the status of steps over an open websocket: the upgrade's
_XSRF_INPUT = re.compile(r'name="_xsrf"\s+value="([^"]+)"')


class SessionStepError(Exception):
    """A step of a session failed; ``reason`` is what the report groups failures by."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Outcome:
    """One execute: its output text, and the failure reason (None when it ran fine)."""

    output: str
    error: str | None = None


class UserServer:
    """One user's server as their browser tab sees it (one HTTP session, its own cookies)."""

    def __init__(
        self,
        public_url: str,
        name: str,
        sink: RecordSink,
        *,
        token: str | None = None,
        request_timeout: float = 30.0,
        max_attempts: int = 3,
        deadline: Deadline | None = None,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.name = name
        self.base = f"{self.public_url}/user/{quote(name, safe='')}/"
        self.sink = sink
        self.client = HttpClient(
            self.base,
            token,
            sink,
            request_timeout=request_timeout,
            retry=RetryPolicy(max_attempts=max_attempts),
            deadline=deadline,
            cookies=True,
        )
        self.kernel_id: str | None = None
        self.channel: KernelChannel | None = None
        self._open = False

    async def open(self) -> UserServer:
        await self.client.__aenter__()
        self._open = True
        return self

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self._open:
            self._open = False
            await self.client.__aexit__(None, None, None)

    # -- signing in -------------------------------------------------------------------------

    async def login_form(self, password: str) -> None:
        """The browser's way in: the hub's login form (with its XSRF value), then the server's
        page, which sends the browser through the hub's OAuth and back with the server's cookie."""
        login = f"{self.public_url}/hub/login"
        resp = await self.client.request("login", "GET", login, user=self.name)
        match = _XSRF_INPUT.search(resp.body.decode(errors="replace")) if resp.ok else None
        if match is None:
            raise SessionStepError(f"login failed: {resp.reason() if not resp.ok else 'no login form'}")
        form = {"username": self.name, "password": password, "_xsrf": match.group(1)}
        resp = await self.client.request(
            "login", "POST", login, user=self.name, data=form, allow_redirects=False, retry=False
        )
        if resp.status != 302:
            raise SessionStepError(f"login failed: {resp.reason() if not resp.ok else 'credentials refused'}")
        # where the hub sends a browser next (its home, or the running server), followed as a
        # browser does: through the server's OAuth to whatever page the server opens by default
        # (JupyterLab's /lab, the classic /tree, or a plain jupyter_server's own)
        after = urljoin(login, resp.headers.get("Location") or "/hub/")
        # a server without that page answers 404 at the end: an answer, not an error, here
        resp = await self.client.request("oauth", "GET", after, user=self.name, expect=(404,))
        if resp.status is None or resp.status >= 500:
            raise SessionStepError(f"login failed: {resp.reason()}")
        path = f"/user/{quote(self.name, safe='')}/"
        if self.client.cookie(f"jupyterhub-user-{quote(self.name, safe='')}", path) is None:
            # the default page was not one that asks for a login (a plain jupyter_server's /tree
            # is a 404 that never gets there): any authenticated page sends a browser through
            # the server's OAuth, and every jupyter_server has files/
            resp = await self.client.request(
                "oauth", "GET", self.base + "files/", user=self.name, expect=(403, 404)
            )
        xsrf = self.client.cookie("_xsrf", path)
        signed_in = self.client.cookie(f"jupyterhub-user-{quote(self.name, safe='')}", path)
        if xsrf is None or signed_in is None:
            why = resp.reason() if resp.status is None or resp.status >= 500 else "no server cookie"
            raise SessionStepError(f"login failed: {why} after {after}")
        self.client.headers["X-XSRFToken"] = xsrf

    # -- kernels -----------------------------------------------------------------------------

    async def start_kernel(self, kernel_name: str) -> str:
        resp = await self.client.request(
            "kernel_start", "POST", self.base + "api/kernels", user=self.name, json={"name": kernel_name}
        )
        kernel_id = (resp.json() or {}).get("id") if resp.ok else None
        if not kernel_id:
            raise SessionStepError(f"kernel start failed: {resp.reason()}")
        self.kernel_id = kernel_id
        return kernel_id

    async def connect(self, timeout: float) -> KernelChannel:
        assert self.kernel_id is not None
        channels = f"{self.base}api/kernels/{self.kernel_id}/channels"
        wall, t0 = time.time(), time.perf_counter()
        status, error = None, None
        ws = None
        try:
            ws = await self.client.session.ws_connect(
                f"{channels}?session_id={uuid.uuid4().hex}",
                headers=self.client.headers or None,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None),
                autoping=True,
            )
            status = WS_STATUS
        except aiohttp.WSServerHandshakeError as exc:
            status, error = exc.status, f"HTTP {exc.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        elapsed = time.perf_counter() - t0
        self.sink.add(timed_record("ws_connect", "GET", channels, self.name, wall, elapsed, status, error))
        if ws is None:
            raise SessionStepError(f"websocket connect failed: {error}")
        self.channel = KernelChannel(ws, channels, self.name, self.sink, timeout)
        return self.channel

    async def poll(self) -> None:
        """What an open JupyterLab tab asks for in the background."""
        for what in ("contents", "kernels", "sessions"):
            await self.client.request("poll", "GET", f"{self.base}api/{what}", user=self.name, retry=False)

    async def stop_kernel(self) -> bool:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self.kernel_id is None:
            return True
        resp = await self.client.request(
            "kernel_stop", "DELETE", f"{self.base}api/kernels/{self.kernel_id}", user=self.name, expect=(404,)
        )
        if resp.ok or resp.status == 404:
            self.kernel_id = None
            return True
        return False


class KernelChannel:
    """A kernel's websocket: send ``execute_request``, wait for its reply and idle status."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, url: str, user: str, sink: RecordSink, timeout: float
    ) -> None:
        self.ws = ws
        self.url = url
        self.user = user
        self.sink = sink
        self.timeout = timeout
        self.session = uuid.uuid4().hex

    async def execute(self, code: str, expect: str | None) -> Outcome:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": self.user,
            "session": self.session,
            "date": "",
            "version": "5.3",
        }
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
        }
        wall, t0 = time.time(), time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await self.ws.send_str(json.dumps(message))
                outcome = await self._collect(msg_id)
        except TimeoutError:
            outcome = Outcome("", f"execute timed out after {self.timeout:g}s")
        except (aiohttp.ClientError, ConnectionError) as exc:
            outcome = Outcome("", f"websocket failed: {type(exc).__name__}")
        if outcome.error is None and expect is not None and outcome.output.strip() != expect.strip():
            outcome.error = "output mismatch"
        elapsed = time.perf_counter() - t0
        self.sink.add(
            timed_record("execute", "WS", self.url, self.user, wall, elapsed, WS_STATUS, outcome.error)
        )
        return outcome

    async def _collect(self, msg_id: str) -> Outcome:
        """Read until the shell reply and the idle status of our request have both come."""
        output: list[str] = []
        error: str | None = None
        replied = idle = False
        while not (replied and idle):
            frame = await self.ws.receive()
            if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return Outcome("".join(output), "websocket closed")
            if frame.type is aiohttp.WSMsgType.ERROR:
                return Outcome("".join(output), "websocket failed")
            if frame.type is not aiohttp.WSMsgType.TEXT:
                continue  # binary frames: buffers we do not need
            msg = json.loads(frame.data)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
            body = msg.get("content", {})
            if kind == "execute_result":
                output.append(body.get("data", {}).get("text/plain", ""))
            elif kind == "stream" and body.get("name") == "stdout":
                output.append(body.get("text", ""))
            elif kind == "error":
                error = f"execute error: {body.get('ename', 'error')}"
            elif kind == "execute_reply":
                replied = True
                if body.get("status") != "ok" and error is None:
                    error = f"execute error: {body.get('ename', body.get('status'))}"
            elif kind == "status" and body.get("execution_state") == "idle":
                idle = True
        return Outcome("".join(output), error)

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
