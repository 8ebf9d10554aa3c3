"""`hubstress serve` as a real process under real concurrent clients."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp
import psutil
import pytest

from hubstress_ext.http.ports import free_port

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def serve(*args):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert "batching endpoint on" in proc.stdout.readline()
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def ms():
    return int(time.time() * 1000)


async def post(session, url, body, **kw):
    async with session.post(url, json=body, **kw) as r:
        return r.status, await r.json(), r.headers


async def get(session, url):
    async with session.get(url) as r:
        return await r.json()


def test_burst_from_many_clients_loses_nothing():
    with serve("--batch-size", "8", "--max-wait-ms", "5") as (base, _):

        async def go():
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                results = await asyncio.gather(
                    *(post(s, base + "/hubstress/batch", {"ts": ms(), "n": n}) for n in range(600))
                )
                return results, await get(s, base + "/hubstress/batch/stats")

        results, stats = asyncio.run(go())
    assert [status for status, _, _ in results] == [200] * 600
    bodies = [b for _, b, _ in results]
    assert all(
        {"rec_ts", "resp_ts", "ts_diff", "batch_id", "batch_size", "queue_ms", "model_ms"} <= b.keys()
        for b in bodies
    )
    assert all(b["ts_diff"] == b["resp_ts"] - b["rec_ts"] >= 0 for b in bodies)
    assert max(b["batch_size"] for b in bodies) == 8  # requests really were batched
    assert stats["accepted"] == stats["served"] == 600
    assert stats["timed_out"] == stats["cancelled"] == stats["errors"] == stats["in_flight"] == 0
    assert sum(int(k) * v for k, v in stats["batch_size_histogram"].items()) == 600


def test_bad_input_is_rejected_before_queueing():
    with serve("--max-body-bytes", "200") as (base, _):

        async def go():
            url = base + "/testB"
            async with aiohttp.ClientSession() as s:
                out = []
                for body in (
                    b"not json",
                    b"[1,2]",
                    b"{}",
                    b'{"ts": "soon"}',
                    b'{"ts": 1.5}',
                    b'{"ts": 1, "pad": "' + b"x" * 300 + b'"}',
                ):
                    async with s.post(url, data=body) as r:
                        out.append((r.status, (await r.json())["message"]))
                async with s.post(url, json={"ts": ms()}, headers={"X-Deadline-Ms": "abc"}) as r:
                    out.append((r.status, (await r.json())["message"]))
                async with s.post(url, json={"ts": ms()}) as r:
                    ok = r.status
                return out, ok, await get(s, base + "/hubstress/batch/stats")

        out, ok, stats = asyncio.run(go())
    statuses = [s for s, _ in out]
    assert statuses == [400, 400, 400, 400, 400, 413, 400]
    messages = " | ".join(m for _, m in out)
    for phrase in (
        "body must be JSON",
        "JSON object",
        "missing 'ts'",
        "must be an integer",
        "body over 200 bytes",
        "X-Deadline-Ms must be a finite number",
    ):
        assert phrase in messages
    assert ok == 200  # nothing was poisoned
    assert stats["accepted"] == stats["served"] == 1


def test_deadline_queue_full_and_disconnect():
    # slow model (0.3 s per batch of 1), tiny queue: overload shows 503, expiry 504, hang-ups cancel
    with serve(
        "--batch-size", "1", "--max-wait-ms", "0", "--max-queue", "3", "--model", "tests.batching_models:slow"
    ) as (base, _):
        url = base + "/hubstress/batch"

        async def go():
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                burst = await asyncio.gather(
                    *(post(s, url, {"ts": ms()}, headers={"X-Deadline-Ms": "450"}) for _ in range(8))
                )
                await asyncio.sleep(1.5)
                # a client that gives up while queued
                blocker = asyncio.ensure_future(post(s, url, {"ts": ms()}))
                await asyncio.sleep(0.05)
                quitter = asyncio.ensure_future(post(s, url, {"ts": ms()}))
                await asyncio.sleep(0.1)
                quitter.cancel()
                await asyncio.gather(blocker, return_exceptions=True)
                await asyncio.sleep(0.5)
                return burst, await get(s, base + "/hubstress/batch/stats")

        burst, stats = asyncio.run(go())
    statuses = sorted(status for status, _, _ in burst)
    assert 503 in statuses and 504 in statuses and 200 in statuses
    busy = next((b, h) for st, b, h in burst if st == 503)
    assert busy[0]["error"] == "busy" and busy[1]["Retry-After"] == "1"
    assert next(b for st, b, _ in burst if st == 504)["error"] == "deadline"
    assert stats["cancelled"] == 1  # the quitter never reached the model
    assert stats["accepted"] == stats["served"] + stats["timed_out"] + stats["cancelled"] + stats["errors"]
    assert stats["rejected"] == statuses.count(503)


def test_model_errors_answer_the_batch_and_the_loop_survives():
    with serve("--batch-size", "2", "--max-wait-ms", "200", "--model", "tests.batching_models:picky") as (
        base,
        _,
    ):
        url = base + "/hubstress/batch"

        async def go():
            async with aiohttp.ClientSession() as s:
                bad = await asyncio.gather(
                    post(s, url, {"ts": ms(), "explode": True}), post(s, url, {"ts": ms()})
                )
                good = await post(s, url, {"ts": ms(), "n": 7})
                return bad, good

        bad, good = asyncio.run(go())
    assert [st for st, _, _ in bad] == [500, 500]
    assert bad[0][1]["error_id"] == bad[1][1]["error_id"] and "asked to explode" in bad[0][1]["message"]
    assert good[0] == 200 and good[1]["result"] == {"n": 7}


def test_runtime_config_and_graceful_shutdown():
    with serve("--batch-size", "50", "--max-wait-ms", "60000") as (base, proc):

        async def go():
            async with aiohttp.ClientSession() as s:
                async with s.patch(base + "/hubstress/batch/config", json={"batch_size": 0}) as r:
                    assert r.status == 400 and "batch_size" in (await r.json())["message"]
                async with s.patch(base + "/hubstress/batch/config", json={"max_wait_ms": 30000}) as r:
                    assert (await r.json())["max_wait_ms"] == 30000
                waiting = [
                    asyncio.ensure_future(post(s, base + "/hubstress/batch", {"ts": ms()})) for _ in range(5)
                ]
                await asyncio.sleep(0.3)  # queued: the batch is far from full and max_wait is 30 s
                proc.send_signal(signal.SIGTERM)
                return await asyncio.gather(*waiting)

        answers = asyncio.run(go())
        proc.wait(30)
        tail = proc.stdout.read()
    assert [st for st, _, _ in answers] == [200] * 5  # queued requests were served, not dropped
    assert {b["batch_size"] for _, b, _ in answers} == {5}
    assert "5 served, 0 refused" in tail


def test_idle_server_uses_no_cpu():
    with serve() as (base, proc):
        p = psutil.Process(proc.pid)
        time.sleep(0.5)
        before = sum(p.cpu_times()[:2])
        time.sleep(2.0)
        used = sum(p.cpu_times()[:2]) - before
    assert used < 0.1  # event-driven: the seed's busy loop burns ~2.4 s of CPU in 2 s


def test_serve_bad_options_and_busy_port():
    bad = subprocess.run(
        [sys.executable, "-m", "hubstress_ext", "serve", "--batch-size", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "batch_size must be an integer >= 1" in bad.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "hubstress_ext", "serve", "--model", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "model must be one of" in bad.stderr
    with serve() as (base, _):
        port = base.rsplit(":", 1)[1]
        busy = subprocess.run(
            [sys.executable, "-m", "hubstress_ext", "serve", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ),
        )
    assert busy.returncode == 1 and "cannot listen on" in busy.stderr


def test_a_burst_of_new_connections_waits_in_the_accept_queue_not_in_syn_retries():
    """300 clients connect while the server cannot accept (stopped with SIGSTOP): with Tornado's
    backlog of 128 the rest have their SYNs dropped and retried a second later; the endpoint's
    backlog takes them all, so each is served as soon as the server runs again."""
    import select
    import socket

    with serve() as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        os.kill(proc.pid, signal.SIGSTOP)
        socks = []
        try:
            for _ in range(300):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                socks.append(s)
            time.sleep(0.3)
            _, writable, _ = select.select([], socks, [], 0)
            connected = sum(1 for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            for s in socks:
                s.close()
    assert connected == 300, f"{connected} of 300 connected while the server was stopped"


def _send(sock, deadline_ms=None):
    body = b'{"ts": 1}'
    extra = f"X-Deadline-Ms: {deadline_ms}\r\n" if deadline_ms else ""
    head = (
        f"POST /hubstress/batch HTTP/1.1\r\nHost: x\r\n{extra}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)


def _answer(sock):
    """(status, JSON body) of one answer on a keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split()[1])
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1]), json.loads(rest)


def test_time_unread_in_the_socket_counts_toward_a_request_s_age():
    """Requests written while the server is stopped (SIGSTOP) wait unread in their sockets; the
    kernel's receive stamps give the server their true age when it runs again: those with a
    100 ms deadline are refused at the headers (before, they were served 300 ms late, the
    server's clock starting at its read), those with the default deadline are served."""
    import socket

    with serve("--model", "echo-async") as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(6)]
        for s in socks:  # accepted and used: only the next requests will wait
            _send(s)
            assert _answer(s)[0] == 200
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            for i, s in enumerate(socks):
                _send(s, 100 if i < 3 else None)
            time.sleep(0.3)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        answers = [_answer(s) for s in socks]
        for s in socks:
            s.close()
        stats = asyncio.run(_stats(base))
    assert [a[0] for a in answers] == [503] * 3 + [200] * 3, answers
    assert all(a[1]["reason"] == "deadline" for a in answers[:3]), answers
    assert all(float(a[1]["expected_ms"]) >= 250 for a in answers[:3]), answers
    assert stats["refused_at_headers"] == 3


async def _stats(base):
    async with aiohttp.ClientSession() as s:
        return await get(s, base + "/hubstress/batch/stats")
