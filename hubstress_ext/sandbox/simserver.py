"""The shared stand-in for every simulated single-user server.

One process answers for all of the sim spawner's servers (their routes all point here; the
path ``/user/<name>/...`` says whose server a request is for). It does what a student's
session needs from a real one, so the hub and the proxy do all their real work while hundreds
of sessions fit on a laptop:

- authentication as ``jupyterhub-singleuser`` does it: a token is checked with the hub
  (``GET /hub/api/user``, cached for a few minutes) and must belong to the server's owner; a
  browser-style session goes through the hub's OAuth (authorize, then the code exchanged for
  a token with the server's client secret), gets the ``jupyterhub-user-<name>`` cookie, and
  needs the ``_xsrf`` cookie echoed in ``X-XSRFToken`` on anything but GET;
- the kernels REST API (start, list, get, shut down) and the kernel websocket, which answers
  ``execute_request`` in Jupyter's message protocol after a configurable execution time
  (numeric expressions are evaluated, so ``5*4`` gives ``20``);
- contents and sessions listings, as an open JupyterLab tab polls them;
- any other path: 200 (the hub's readiness check).

The sim spawner registers each server's OAuth client here when it starts it.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import datetime as dt
import json
import operator
import os
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from tornado import httpclient, web, websocket

TOKEN_CACHE_S = 300.0  # how long a token's owner is trusted without asking the hub again
KERNEL_NAME = "python3"  # the one kernel spec the stand-in has
ENV_SECRET = "HUBSTRESS_SIM_SECRET"  # what the sim spawner proves itself with when registering


class State:
    """Everything the stand-in knows: registered servers, kernels, sessions, cached tokens."""

    def __init__(self, hub_api: str, exec_time: float, secret: str) -> None:
        self.hub_api = hub_api.rstrip("/")
        self.exec_time = exec_time
        self.secret = secret
        self.servers: dict[str, dict[str, str]] = {}  # user -> client_id, client_secret, callback
        self.kernels: dict[str, dict[str, dict[str, Any]]] = {}  # user -> kernel id -> model
        self.tokens: dict[str, tuple[str | None, float]] = {}  # token -> (owner, checked at)
        self.cookies: dict[str, str] = {}  # jupyterhub-user-<name> cookie value -> owner
        self.oauth_states: dict[str, str] = {}  # OAuth state -> the page to return to
        self.http = httpclient.AsyncHTTPClient()

    async def token_owner(self, token: str) -> str | None:
        owner, checked = self.tokens.get(token, (None, 0.0))
        if time.monotonic() - checked < TOKEN_CACHE_S:
            return owner
        try:
            resp = await self.http.fetch(
                f"{self.hub_api}/user", headers={"Authorization": f"token {token}"}, raise_error=False
            )
        except OSError:
            return None
        owner = json.loads(resp.body).get("name") if resp.code == 200 else None
        self.tokens[token] = (owner, time.monotonic())
        return owner


async def authenticated_owner(handler: web.RequestHandler, state: State, user: str) -> str | None:
    """``user`` when the request is theirs (a token the hub vouches for, or their OAuth cookie
    with the ``_xsrf`` cookie echoed on anything but GET); else None."""
    auth = handler.request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() in ("token", "bearer") and token:
        return user if await state.token_owner(token.strip()) == user else None
    cookie = handler.get_cookie(f"jupyterhub-user-{user}")
    if cookie and state.cookies.get(cookie) == user:
        if handler.request.method not in ("GET", "HEAD"):
            xsrf = handler.get_cookie("_xsrf")
            if not xsrf or handler.request.headers.get("X-XSRFToken") != xsrf:
                return None
        return user
    return None


class Base(web.RequestHandler):
    state: State

    def initialize(self, state: State) -> None:
        self.state = state

    def check_xsrf_cookie(self) -> None:
        """Only a cookie-authenticated request must echo the _xsrf cookie (as jupyter_server)."""

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    async def owner(self, user: str) -> str | None:
        return await authenticated_owner(self, self.state, user)

    async def require(self, user: str) -> bool:
        if await self.owner(user) is None:
            self.write_json({"message": "Forbidden"}, 403)
            return False
        return True


class Register(Base):
    """The sim spawner tells the stand-in about a server's OAuth client (or that it stopped)."""

    def prepare(self) -> None:
        if self.request.headers.get("Authorization") != f"secret {self.state.secret}":
            raise web.HTTPError(403)

    def post(self) -> None:
        body = json.loads(self.request.body)
        self.state.servers[body["user"]] = body
        self.write_json({})

    def delete(self) -> None:
        user = self.get_argument("user")
        self.state.servers.pop(user, None)
        self.state.kernels.pop(user, None)
        self.set_status(204)
        self.finish()


class Page(Base):
    """``/user/<name>/lab`` or ``/tree``: what a browser opens; logs in through the hub's OAuth."""

    async def get(self, user: str, _page: str) -> None:
        if await self.owner(user) is None:
            server = self.state.servers.get(user)
            if server is None:
                raise web.HTTPError(404)
            state = secrets.token_urlsafe(16)
            self.state.oauth_states[state] = self.request.uri
            query = urlencode(
                {
                    "client_id": server["client_id"],
                    "redirect_uri": server["callback"],
                    "response_type": "code",
                    "state": state,
                }
            )
            self.redirect(f"{server['hub_prefix']}api/oauth2/authorize?{query}")
            return
        if not self.get_cookie("_xsrf"):
            self.set_cookie("_xsrf", secrets.token_hex(16), path=f"/user/{user}/")
        self.set_header("Content-Type", "text/html")
        self.finish("<html><body>simulated JupyterLab</body></html>")


class Root(web.RequestHandler):
    """``/user/<name>/``: a server sends a browser on to the page it opens by default."""

    def get(self, user: str) -> None:
        self.redirect(f"/user/{user}/lab")


class OAuthCallback(Base):
    async def get(self, user: str) -> None:
        server = self.state.servers.get(user)
        back = self.state.oauth_states.pop(self.get_argument("state", ""), None)
        if server is None or back is None:
            raise web.HTTPError(400, "unknown OAuth state")
        resp = await self.state.http.fetch(
            f"{self.state.hub_api}/oauth2/token",
            method="POST",
            body=urlencode(
                {
                    "client_id": server["client_id"],
                    "client_secret": server["client_secret"],
                    "grant_type": "authorization_code",
                    "code": self.get_argument("code"),
                    "redirect_uri": server["callback"],
                }
            ),
            raise_error=False,
        )
        if resp.code != 200:
            raise web.HTTPError(403, "OAuth code rejected by the hub")
        token = json.loads(resp.body)["access_token"]
        if await self.state.token_owner(token) != user:
            raise web.HTTPError(403)
        cookie = secrets.token_urlsafe(24)
        self.state.cookies[cookie] = user
        self.set_cookie(f"jupyterhub-user-{user}", cookie, path=f"/user/{user}/", httponly=True)
        self.redirect(back)


def _kernel_model(kernel_id: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": kernel_id,
        "name": KERNEL_NAME,
        "last_activity": now,
        "execution_state": "idle",
        "connections": 0,
    }


class Kernels(Base):
    async def get(self, user: str) -> None:
        if await self.require(user):
            self.write_json(list(self.state.kernels.get(user, {}).values()))

    async def post(self, user: str) -> None:
        if not await self.require(user):
            return
        try:
            name = (json.loads(self.request.body or b"{}") or {}).get("name") or KERNEL_NAME
        except (ValueError, AttributeError):
            self.write_json({"message": "the body must be a JSON object"}, 400)
            return
        if name != KERNEL_NAME:  # as jupyter_server answers a kernel it has no spec for
            self.write_json({"message": f"No such kernel named {name}"}, 500)
            return
        kernel_id = str(uuid.uuid4())
        self.state.kernels.setdefault(user, {})[kernel_id] = _kernel_model(kernel_id)
        self.set_header("Location", f"/user/{user}/api/kernels/{kernel_id}")
        self.write_json(self.state.kernels[user][kernel_id], 201)


class Kernel(Base):
    async def get(self, user: str, kernel_id: str) -> None:
        if await self.require(user):
            model = self.state.kernels.get(user, {}).get(kernel_id)
            if model is None:
                self.write_json({"message": f"Kernel does not exist: {kernel_id}"}, 404)
            else:
                self.write_json(model)

    async def delete(self, user: str, kernel_id: str) -> None:
        if not await self.require(user):
            return
        if self.state.kernels.get(user, {}).pop(kernel_id, None) is None:
            self.write_json({"message": f"Kernel does not exist: {kernel_id}"}, 404)
            return
        self.set_status(204)
        self.finish()


class Listing(Base):
    """contents, sessions, kernelspecs, status: small fixed answers (what Lab polls)."""

    async def get(self, user: str, what: str, _rest: str = "") -> None:
        if not await self.require(user):
            return
        if what == "contents":
            self.write_json({"name": "", "path": "", "type": "directory", "content": [], "format": "json"})
        elif what == "sessions":
            self.write_json([])
        else:
            self.write_json({"simulated": True})


class Channels(websocket.WebSocketHandler):
    """A kernel's websocket: answers kernel_info and execute requests as a kernel would."""

    def initialize(self, state: State) -> None:
        self.state = state
        self.count = 0
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.worker: asyncio.Task | None = None

    async def get(self, user: str, kernel_id: str) -> None:  # type: ignore[override]
        if await authenticated_owner(self, self.state, user) is None:
            raise web.HTTPError(403)
        if kernel_id not in self.state.kernels.get(user, {}):
            raise web.HTTPError(404, f"Kernel does not exist: {kernel_id}")
        await super().get(user, kernel_id)

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, user: str, kernel_id: str) -> None:  # type: ignore[override]
        self.worker = asyncio.ensure_future(self._work())  # one request at a time, in order

    def on_message(self, message: str | bytes) -> None:
        try:
            self.queue.put_nowait(json.loads(message))
        except ValueError:
            self.close(1003, "not a JSON message")

    def on_close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    async def _work(self) -> None:
        while True:
            msg = await self.queue.get()
            kind = msg.get("header", {}).get("msg_type")
            if kind == "kernel_info_request":
                self._reply(
                    msg, "shell", "kernel_info_reply", {"status": "ok", "implementation": "simulated"}
                )
            elif kind == "execute_request":
                await self._run_cell(msg)

    async def _run_cell(self, msg: dict[str, Any]) -> None:
        self._reply(msg, "iopub", "status", {"execution_state": "busy"})
        if self.state.exec_time:
            await asyncio.sleep(self.state.exec_time)
        self.count += 1
        try:
            value = evaluate(msg.get("content", {}).get("code", ""))
        except Exception as exc:  # the code's own error, as a kernel reports it
            error = {"ename": type(exc).__name__, "evalue": str(exc), "traceback": []}
            self._reply(msg, "iopub", "error", error)
            self._reply(
                msg, "shell", "execute_reply", {"status": "error", "execution_count": self.count, **error}
            )
        else:
            if value is not None:
                data = {"data": {"text/plain": repr(value)}, "metadata": {}, "execution_count": self.count}
                self._reply(msg, "iopub", "execute_result", data)
            self._reply(msg, "shell", "execute_reply", {"status": "ok", "execution_count": self.count})
        self._reply(msg, "iopub", "status", {"execution_state": "idle"})

    def _reply(self, parent: dict[str, Any], channel: str, kind: str, content: dict[str, Any]) -> None:
        header = {
            "msg_id": uuid.uuid4().hex,
            "msg_type": kind,
            "session": "simulated",
            "username": "",
            "date": dt.datetime.now(dt.UTC).isoformat(),
            "version": "5.3",
        }
        out = {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": kind,
            "parent_header": parent.get("header", {}),
            "metadata": {},
            "content": content,
            "channel": channel,
            "buffers": [],
        }
        try:
            self.write_message(json.dumps(out))
        except websocket.WebSocketClosedError:
            pass


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def evaluate(code: str) -> Any:
    """The value of a cell whose last line is a numeric expression (else None); never runs code."""
    tree = ast.parse(code)  # a SyntaxError is the cell's error, as in a kernel
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return None

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise OverflowError("exponent too large for the simulated kernel")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.operand))
        raise _NotNumeric

    try:
        return value(tree.body[-1].value)
    except _NotNumeric:
        return None


class _NotNumeric(Exception):
    pass


class Census(web.RequestHandler):
    """How many kernels are open, per user: for whoever watches a class from outside (the tests
    wait for kernels, not for servers, before they interrupt one). Counts only, no names of
    kernels or tokens; the stand-in listens on loopback."""

    def initialize(self, state: State) -> None:
        self.state = state

    def get(self) -> None:
        per_user = {user: len(kernels) for user, kernels in self.state.kernels.items() if kernels}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"kernels": sum(per_user.values()), "users": per_user}))


class AnyPath(web.RequestHandler):
    def _answer(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"simulated": True, "path": self.request.path}))

    get = post = put = patch = delete = head = lambda self, *a: self._answer()  # noqa: E731


def make_app(
    hub_api: str = "http://127.0.0.1:8081/hub/api", exec_time: float = 0.05, secret: str = ""
) -> web.Application:
    state = State(hub_api, exec_time, secret or secrets.token_hex(16))
    user = r"/user/([^/]+)"
    kw = {"state": state}
    return web.Application(
        [
            (r"/_sim/servers", Register, kw),
            (user + r"/api/kernels/?", Kernels, kw),
            (user + r"/api/kernels/([^/]+)/channels", Channels, kw),
            (user + r"/api/kernels/([^/]+)/?", Kernel, kw),
            (user + r"/api/(contents|sessions|kernelspecs|status)(/.*)?", Listing, kw),
            (user + r"/oauth_callback", OAuthCallback, kw),
            (user + r"/(lab|tree)(?:/.*)?", Page, kw),
            (user + r"/?", Root),
            (r"/_sim/kernels", Census, kw),
            (r"/.*", AnyPath),
        ],
        log_function=lambda handler: None,
        websocket_ping_interval=0,
    )


async def serve(port: int, hub_api: str, exec_time: float) -> None:
    make_app(hub_api, exec_time, os.environ.get(ENV_SECRET, "")).listen(port, address="127.0.0.1")
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--hub-api", default="http://127.0.0.1:8081/hub/api", help="the hub's internal API URL"
    )
    parser.add_argument("--exec-time", type=float, default=0.05, help="seconds a simulated execute takes")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.hub_api, args.exec_time))


if __name__ == "__main__":
    main()
