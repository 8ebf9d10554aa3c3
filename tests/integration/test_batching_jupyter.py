"""The batching endpoint inside a real Jupyter server (pytest-jupyter), behind its auth."""

import json
import re
import subprocess
import sys
import time

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

pytestmark = pytest.mark.slow


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"hubstress_ext": True}},
        "HubstressBatching": {"batch_size": 2, "max_wait_ms": 30, "model": "mlp"},
    }


def ms():
    return int(time.time() * 1000)


async def test_authenticated_post_is_batched(jp_fetch):
    import asyncio

    async def one(n):
        resp = await jp_fetch("hubstress", "batch", method="POST", body=json.dumps({"ts": ms(), "n": n}))
        return json.loads(resp.body)

    answers = await asyncio.gather(*(one(n) for n in range(4)))
    assert {a["batch_size"] for a in answers} == {2}  # configured through traitlets
    for a in answers:
        assert a["ts_diff"] == a["resp_ts"] - a["rec_ts"]
        assert {"batch_id", "queue_ms", "model_ms"} <= a.keys()
        assert isinstance(a["result"]["label"], int)  # the MLP ran
    stats = json.loads((await jp_fetch("hubstress", "batch", "stats")).body)
    assert stats["accepted"] == stats["served"] == 4 and stats["model"] == "mlp"
    assert stats["cpu_seconds"] > 0 and stats["pid"] > 0


async def test_unauthenticated_requests_get_403_and_no_slot(jp_fetch, jp_base_url, jp_http_port):
    client = AsyncHTTPClient()
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}hubstress/batch"
    for path, method, body in ((url, "POST", json.dumps({"ts": ms()})), (url + "/stats", "GET", None)):
        with pytest.raises(HTTPClientError) as info:
            await client.fetch(path, method=method, body=body)
        assert info.value.code == 403
    stats = json.loads((await jp_fetch("hubstress", "batch", "stats")).body)
    assert stats["accepted"] == 0


async def test_config_api_and_bad_input(jp_fetch):
    cfg = json.loads((await jp_fetch("hubstress", "batch", "config")).body)
    assert cfg["batch_size"] == 2 and cfg["max_wait_ms"] == 30
    new = await jp_fetch("hubstress", "batch", "config", method="PATCH", body=json.dumps({"batch_size": 7}))
    assert json.loads(new.body)["batch_size"] == 7
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("hubstress", "batch", "config", method="PATCH", body=json.dumps({"max_queue": -1}))
    assert info.value.code == 400 and b"max_queue" in info.value.response.body
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("hubstress", "batch", method="POST", body=json.dumps({"no_ts": 1}))
    assert info.value.code == 400 and b"missing 'ts'" in info.value.response.body


async def test_prometheus_metrics_on_the_servers_metrics(jp_fetch):
    await jp_fetch("hubstress", "batch", method="POST", body=json.dumps({"ts": ms()}))
    text = (await jp_fetch("metrics")).body.decode()
    for name in (
        "hubstress_batch_requests_total",
        "hubstress_batch_queue_depth",
        "hubstress_batch_size_bucket",
        "hubstress_batch_queue_wait_seconds_bucket",
        "hubstress_batch_model_seconds_bucket",
    ):
        assert name in text


def test_extension_is_enabled_by_the_shipped_config():
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)  # drop colours
    assert re.search(r"^\s*hubstress_ext enabled$", text, re.M), text
    assert re.search(r"^\s*hubstress_ext [\d.]+ OK$", text, re.M), text


async def test_bench_and_sweep_through_jupyter_with_its_token(
    jp_fetch, jp_base_url, jp_http_port, jp_auth_header, monkeypatch, tmp_path
):
    from hubstress_ext.loadgen.options import LoadOptions, SweepOptions
    from hubstress_ext.loadgen.run import BenchRun
    from hubstress_ext.loadgen.sweep import SweepRun

    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)
    token = jp_auth_header["Authorization"].split()[1]
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}hubstress/batch"
    run = await BenchRun(LoadOptions(url=url, workers=4, requests=40, token=token).resolve()).run_async()
    assert run.status == "finished", run.error
    assert run.stats["ok"] == 40 and run.stats["ts_diff_mean_ms"] is not None
    saved = run.save(tmp_path)
    assert token not in "".join(p.read_text() for p in saved.iterdir())
    anonymous = await BenchRun(LoadOptions(url=url, workers=2, requests=6).resolve()).run_async()
    assert anonymous.stats["errors"] == {"http 403": 6}  # Jupyter's auth, not a batch slot
    assert anonymous.status == "failed"
    assert anonymous.error == (
        "403 from the endpoint (a Jupyter server wants its token): pass --token or set JUPYTER_TOKEN"
    )
    sweep = SweepOptions(url=url, workers=[2], batch_sizes=[1, 3], duration=0.4, warmup=0, token=token)
    swept = await SweepRun(sweep.resolve()).run_async()
    assert swept.status == "finished", swept.error
    assert list(swept.df["batch_size"]) == [1, 3] and (swept.df["server_cpu_pct"] >= 0).all()
    assert token not in repr(swept.meta) + repr(swept.options.public())
    stats = json.loads((await jp_fetch("hubstress", "batch", "stats")).body)
    assert stats["accepted"] == 40 + int(swept.df["requests"].sum())


async def test_a_403_is_named_with_what_to_do(jp_fetch, jp_base_url, jp_http_port, monkeypatch):
    """Without the token, sweep and bench say it was a 403 and which token to pass."""
    from hubstress_ext.loadgen.options import LoadOptions, SweepOptions
    from hubstress_ext.loadgen.run import BenchRun
    from hubstress_ext.loadgen.sweep import SweepRun

    monkeypatch.delenv("JUPYTER_TOKEN", raising=False)
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}hubstress/batch"
    sweep = SweepOptions(url=url, workers=[2], batch_sizes=[1, 8], duration=0.4, warmup=0)
    swept = await SweepRun(sweep.resolve()).run_async()
    assert swept.status == "failed"
    assert "no hubstress config API" not in swept.error
    assert "403" in swept.error and "pass --token or set JUPYTER_TOKEN" in swept.error
    # a timed bench that is refused from the first answer stops early instead of running on
    t0 = time.monotonic()
    bench = await BenchRun(LoadOptions(url=url, workers=4, duration=10).resolve()).run_async()
    assert time.monotonic() - t0 < 5
    assert bench.status == "failed" and "pass --token or set JUPYTER_TOKEN" in bench.error
    wrong = await BenchRun(LoadOptions(url=url, workers=2, requests=4, token="wrong").resolve()).run_async()
    assert wrong.status == "failed" and "the token was refused" in wrong.error
    assert "wrong" not in wrong.error.replace("the token was refused", "")
