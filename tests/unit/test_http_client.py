"""HttpClient against a real local aiohttp server: retries, Retry-After, deadlines, records."""

import asyncio
import time

import pytest
import pytest_asyncio
from aiohttp import web

from hubstress_ext.http.client import HttpClient, StreamError
from hubstress_ext.http.records import RecordSink
from hubstress_ext.http.retry import Deadline, RetryPolicy, parse_retry_after

TOKEN = "unit-test-token-0123456789"


pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def server():
    state = {"hits": 0, "script": [], "auth": []}

    async def scripted(request):
        state["hits"] += 1
        state["auth"].append(request.headers.get("Authorization"))
        status, headers = state["script"].pop(0) if state["script"] else (200, {})
        return web.json_response({"message": f"scripted {status}"}, status=status, headers=headers)

    async def events(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"progress": 50}\n\n')
        await asyncio.sleep(0.05)
        await resp.write(b'data: {"progress": 100, "ready": true}\n\n')
        return resp

    async def slow(request):
        await asyncio.sleep(5)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/api/x", scripted)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    state["url"] = f"http://127.0.0.1:{port}/api"
    yield state
    await runner.cleanup()


def client(url, sink, **kw):
    kw.setdefault("retry", RetryPolicy(max_attempts=4, backoff=0.01, max_backoff=0.02))
    return HttpClient(url, TOKEN, sink, **kw)


async def test_retry_after_is_honoured_and_every_attempt_recorded(server):
    server["script"] = [(429, {"Retry-After": "0.3"}), (503, {}), (200, {})]
    sink = RecordSink()
    async with client(server["url"], sink) as c:
        t0 = time.perf_counter()
        resp = await c.request("op", "GET", "/x")
        waited = time.perf_counter() - t0
    assert resp.status == 200 and resp.attempts == 3
    assert waited >= 0.3  # the server's Retry-After, not the 10 ms backoff
    records = sink.snapshot()
    assert [(r.status, r.attempt, r.will_retry) for r in records] == [
        (429, 1, True),
        (503, 2, True),
        (200, 3, False),
    ]
    assert server["auth"] == [f"token {TOKEN}"] * 3


async def test_gives_up_after_max_attempts_and_returns_last_answer(server):
    server["script"] = [(503, {})] * 10
    sink = RecordSink()
    async with client(server["url"], sink) as c:
        resp = await c.request("op", "GET", "/x")
    assert resp.status == 503 and not resp.ok
    assert resp.reason() == "HTTP 503: scripted 503"
    assert server["hits"] == 4
    assert sum(r.will_retry for r in sink.snapshot()) == 3


async def test_client_errors_are_not_retried(server):
    server["script"] = [(403, {}), (200, {})]
    sink = RecordSink()
    async with client(server["url"], sink) as c:
        resp = await c.request("op", "GET", "/x")
    assert resp.status == 403 and server["hits"] == 1


async def test_deadline_caps_a_long_retry_after(server):
    server["script"] = [(429, {"Retry-After": "30"})] * 3
    sink = RecordSink()
    async with client(server["url"], sink, deadline=Deadline(0.5)) as c:
        t0 = time.perf_counter()
        resp = await c.request("op", "GET", "/x")
    assert time.perf_counter() - t0 < 2.0
    assert resp.status == 429


async def test_request_timeout_is_an_error_record(server):
    sink = RecordSink()
    async with client(server["url"], sink, request_timeout=0.2, retry=RetryPolicy(max_attempts=1)) as c:
        resp = await c.request("op", "GET", "/slow")
    assert resp.status is None and "timeout" in resp.error
    assert sink.snapshot()[0].error.startswith("timeout")


async def test_connection_refused_is_retried_then_reported():
    sink = RecordSink()
    async with client("http://127.0.0.1:9/api", sink) as c:
        resp = await c.request("op", "GET", "/x")
    assert resp.status is None and "connection failed" in resp.error
    assert len(sink) == 4
    assert TOKEN not in resp.reason()


async def test_event_stream_yields_events_and_one_record(server):
    sink = RecordSink()
    async with client(server["url"], sink) as c:
        events = [e async for e in c.events("progress", "/events", user="u", timeout=5)]
    assert events[-1]["ready"] is True and len(events) == 2
    (record,) = sink.snapshot()
    assert record.op == "progress" and record.status == 200 and record.latency_ms >= 40


async def test_event_stream_http_error_raises_with_status(server):
    server["script"] = [(503, {})]
    sink = RecordSink()
    async with client(server["url"], sink) as c:
        with pytest.raises(StreamError) as info:
            async for _ in c.events("progress", "/x", user="u", timeout=5):
                pass
    assert info.value.status == 503 and info.value.retryable


async def test_dry_run_sends_nothing(server):
    lines = []
    sink = RecordSink()
    from hubstress_ext.hub.plan import plan_responder

    async with HttpClient(server["url"], None, sink, dry_run=plan_responder, plan_printer=lines.append) as c:
        resp = await c.request("create", "POST", "/users", json={"usernames": ["a"]})
    assert resp.status == 201 and resp.json()[0]["name"] == "a"
    assert lines == ['POST   /users  {"usernames":["a"]}']
    assert server["hits"] == 0 and len(sink) == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_parse_retry_after():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
