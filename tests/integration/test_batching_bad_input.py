"""Hostile and odd input against a real `hubstress serve`: each answered clearly, nothing lost."""

import asyncio
import json
import socket
import time

import aiohttp
import pytest

from tests.integration.test_batching_standalone import get, ms, serve

pytestmark = pytest.mark.slow


def raw_request(base: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes on a fresh socket; return everything the server answers before closing."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and stopped reading: what it said is what counts
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def post_bytes(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n".encode()
        + extra
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def test_non_finite_deadlines_are_refused_and_never_disable_others():
    # a slow model (0.3 s per batch of 1) and a 1 s deadline: queued requests must still expire
    args = ("--batch-size", "1", "--max-wait-ms", "0", "--deadline-ms", "1000")
    with serve(*args, "--model", "tests.batching_models:slow") as (base, _):
        url = base + "/hubstress/batch"

        async def go():
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                bad = []
                for value in ("nan", "NaN", "inf", "-inf", "0", "-5", "abc", "1e400"):
                    async with s.post(url, json={"ts": ms()}, headers={"X-Deadline-Ms": value}) as r:
                        bad.append((value, r.status, (await r.json())["message"]))

                async def one(headers):
                    t0 = time.monotonic()
                    async with s.post(url, json={"ts": ms()}, headers=headers) as r:
                        return r.status, time.monotonic() - t0

                # one client asks for NaN while 20 others rely on the server's deadline
                results = await asyncio.gather(one({"X-Deadline-Ms": "nan"}), *(one({}) for _ in range(20)))
                return bad, results, await get(s, base + "/hubstress/batch/stats")

        bad, results, stats = asyncio.run(go())
    for value, status, message in bad:
        assert status == 400, (value, status)
        assert "X-Deadline-Ms must be a finite number" in message
    assert results[0][0] == 400
    others = results[1:]
    expired = [t for status, t in others if status == 504]
    assert {s for s, _ in others} <= {200, 504}
    assert len(expired) >= 15  # 0.3 s each: only ~4 fit in the 1 s deadline
    assert max(expired) < 2.0  # expired at the 1 s deadline, not served late at 3+ s
    assert stats["accepted"] == 20 and stats["timed_out"] == len(expired)


def test_config_and_options_refuse_nan_and_infinity():
    with serve() as (base, _):

        async def go():
            async with aiohttp.ClientSession() as s:
                out = []
                for body in (
                    b'{"deadline_ms": NaN}',
                    b'{"max_wait_ms": Infinity}',
                    b'{"max_wait_ms": -Infinity}',
                    b'{"deadline_ms": 1e999}',
                ):
                    async with s.patch(base + "/hubstress/batch/config", data=body) as r:
                        out.append((r.status, await r.text()))
                return out, await get(s, base + "/hubstress/batch/config")

        out, config = asyncio.run(go())
    for status, text in out:
        assert status == 400, text
        json.loads(text)  # the answer itself is valid JSON
    assert config["deadline_ms"] == 30000 and config["max_wait_ms"] == 20  # unchanged
    import subprocess
    import sys

    for flag in ("--deadline-ms", "--max-wait-ms"):
        for value in ("nan", "inf"):
            bad = subprocess.run(
                [sys.executable, "-m", "hubstress_ext", "serve", flag, value],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert bad.returncode == 2 and "must be a finite number" in bad.stderr, bad.stderr


def test_deeply_nested_json_is_a_400_without_a_traceback():
    with serve() as (base, proc):
        body = b'{"ts": 1, "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
        assert len(body) > 40_000
        answers = [raw_request(base, post_bytes("/hubstress/batch", body)) for _ in range(3)]
        ok = raw_request(base, post_bytes("/hubstress/batch", json.dumps({"ts": ms()}).encode()))
    for answer in answers:
        status, doc = status_and_json(answer)
        assert status == 400 and doc["message"] == "body must be JSON: nested too deeply"
    assert status_and_json(ok)[0] == 200
    log = proc.stdout.read()
    assert "Traceback" not in log and "RecursionError" not in log


def test_oversized_requests_get_413_414_431_not_a_reset():
    with serve("--max-body-bytes", "65536") as (base, _):
        fifty_mb = b'{"ts": 1, "x": "' + b"a" * (50 << 20) + b'"}'
        big = raw_request(base, post_bytes("/hubstress/batch", fifty_mb))
        chunked_body = b"".join(b"%x\r\n%s\r\n" % (65536, b"a" * 65536) for _ in range(32)) + b"0\r\n\r\n"
        chunked = raw_request(
            base,
            b"POST /hubstress/batch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_body,
        )
        long_header = raw_request(
            base, post_bytes("/hubstress/batch", b'{"ts": 1}', b"X-Big: " + b"a" * (1 << 20) + b"\r\n")
        )
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
        many_headers = raw_request(base, post_bytes("/hubstress/batch", b'{"ts": 1}', headers))
        long_url = raw_request(base, post_bytes("/hubstress/batch?" + "q" * 100_000, b'{"ts": 1}'))
        still_fine = raw_request(base, post_bytes("/hubstress/batch", json.dumps({"ts": ms()}).encode()))
    expected = [(big, 413), (chunked, 413), (long_header, 431), (many_headers, 431), (long_url, 414)]
    for answer, code in expected:
        status, doc = status_and_json(answer)
        assert status == code, answer[:200]
        assert doc["error"] == "too_large" and doc["message"]
    assert status_and_json(still_fine)[0] == 200


def test_idle_and_slow_connections_are_closed():
    """500 idle sockets and one that sends half a body: all closed by the read timeouts."""
    with serve("--header-timeout", "1", "--body-timeout", "1") as (base, _):
        host, port = base.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(500)]
        slow = socket.create_connection((host, int(port)), timeout=10)
        slow.sendall(b"POST /hubstress/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        try:
            time.sleep(2.5)
            closed = 0
            for sock in [*idle, slow]:
                sock.settimeout(5)
                try:
                    closed += sock.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
            assert closed == 501
            # the server is still there for a well-behaved client
            ok = raw_request(base, post_bytes("/hubstress/batch", json.dumps({"ts": ms()}).encode()))
            assert status_and_json(ok)[0] == 200
        finally:
            for sock in [*idle, slow]:
                sock.close()


def test_a_bad_model_input_fails_only_that_item_and_never_emits_nan():
    with serve("--model", "mlp", "--batch-size", "8", "--max-wait-ms", "50") as (base, _):
        url = base + "/hubstress/batch"

        async def go():
            async with aiohttp.ClientSession() as s:

                async def one(body):
                    async with s.post(url, data=json.dumps(body)) as r:
                        return r.status, await r.text()

                good = [{"ts": ms(), "x": [0.5] * 8} for _ in range(5)]
                bad = [{"ts": ms(), "x": ["a"]}, {"ts": ms(), "x": [None]}, {"ts": ms(), "x": [1e39]}]
                results = await asyncio.gather(*(one(b) for b in good + bad))
                return results, await get(s, base + "/hubstress/batch/stats")

        results, stats = asyncio.run(go())
    for status, text in results[:5]:
        assert status == 200
        assert json.loads(text)["result"]["score"] == json.loads(text)["result"]["score"]  # not NaN
    for status, text in results[5:]:
        assert status == 400
        assert "'x'" in json.loads(text)["message"]  # valid JSON, naming the field
    assert stats["accepted"] == stats["served"] == 5 and stats["errors"] == 0
