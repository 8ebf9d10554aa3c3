"""Load generator pieces with no network: bodies, options, outcomes, statistics."""

import json
import math
import re

import pandas as pd
import pytest

from hubstress_ext.engine.spec import parse_int_list
from hubstress_ext.errors import OptionError
from hubstress_ext.loadgen.body import BodyTemplate, parse_template
from hubstress_ext.loadgen.connection import Target
from hubstress_ext.loadgen.options import LoadOptions, SweepOptions
from hubstress_ext.loadgen.recorder import Recorder, outcome_of
from hubstress_ext.loadgen.summary import bench_stats, timeline
from hubstress_ext.loadgen.sweep import best_cell


def test_body_template_sets_a_fresh_ts_and_keeps_the_rest():
    body = json.loads(BodyTemplate({"url": "x", "n": [1, 2], "ts": "ignored"}).render())
    assert body["url"] == "x" and body["n"] == [1, 2]
    assert isinstance(body["ts"], int) and body["ts"] > 1_600_000_000_000
    assert set(json.loads(BodyTemplate().render())) == {"ts", "url"}  # the seed's payload


def test_parse_template_errors(tmp_path):
    assert parse_template('{"a": 1}') == {"a": 1}
    f = tmp_path / "t.json"
    f.write_text('{"b": 2}')
    assert parse_template(f"@{f}") == {"b": 2}
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_template("{nope")
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_template("[1]")
    with pytest.raises(ValueError, match="cannot read template file"):
        parse_template(f"@{tmp_path}/missing.json")


def test_target_builds_one_request_head():
    t = Target("http://127.0.0.1:8765/hubstress/batch?x=1", headers={"Authorization": "token s"})
    raw = t.request_bytes(b'{"ts":1}')
    assert raw.startswith(b"POST /hubstress/batch?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8765\r\n")
    assert b'Content-Length: 8\r\n\r\n{"ts":1}' in raw and b"Authorization: token s" in raw
    assert Target("http://[::1]:80/").request_bytes(None).endswith(b"\r\n\r\n")
    with pytest.raises(ValueError):
        Target("ftp://x/")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"url": "127.0.0.1:8000"}, "URL must be an http(s) URL"),
        ({"url": "http://h:99999/"}, "invalid port"),
        ({"workers": 0}, "--workers must be at least 1"),
        ({"duration": -1}, "--duration must be a positive number"),
        ({"requests": 0}, "--requests must be at least 1"),
        ({"rate": 0}, "--rate must be a positive number"),
        ({"rate": 1e9, "duration": 100}, "schedules over"),
        ({"arrival": "bursty", "rate": 5}, "--arrival must be one of constant, poisson"),
        ({"method": "DELETE"}, "--method must be"),
        ({"request_timeout": 0}, "--request-timeout must be a positive number"),
        ({"template": "[1]"}, "--template: template must be a JSON object"),
    ],
)
def test_load_options_errors_name_the_option(kw, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        LoadOptions(**{"url": "http://127.0.0.1:1/x", **kw}).resolve()


def test_the_method_is_case_insensitive():
    assert LoadOptions(url="http://127.0.0.1:1/x", method="get").resolve().method == "GET"
    assert SweepOptions(url="http://127.0.0.1:1/x", method="patch").resolve().cell(1).method == "PATCH"


def test_load_options_defaults_and_token(monkeypatch):
    monkeypatch.setenv("JUPYTER_TOKEN", "sekrit")
    opts = LoadOptions(url="http://127.0.0.1:1/x").resolve()
    assert opts.duration == 10 and not opts.open_loop and opts.headers() == {"Authorization": "token sekrit"}
    assert "sekrit" not in json.dumps(opts.public())
    assert LoadOptions(url="http://127.0.0.1:1/x", requests=5).resolve().duration is None


def test_sweep_options():
    assert parse_int_list("8, 32,128", "--workers") == [8, 32, 128]
    with pytest.raises(OptionError, match="--workers takes whole numbers"):
        parse_int_list("8,x", "--workers")
    with pytest.raises(OptionError, match="--batch-sizes must be at least 1"):
        SweepOptions(url="http://127.0.0.1:1/x", batch_sizes=[0]).resolve()
    with pytest.raises(OptionError, match="--warmup"):
        SweepOptions(url="http://127.0.0.1:1/x", warmup=-1).resolve()
    cell = SweepOptions(url="http://127.0.0.1:1/x", duration=3).resolve().cell(16)
    assert cell.workers == 16 and cell.duration == 3 and not cell.open_loop


def test_outcomes():
    assert outcome_of(200, b'{"ts_diff": 12, "batch_size": 4}') == ("ok", 12.0, 4)
    assert outcome_of(503, b'{"error": "busy"}')[0] == "busy"
    assert outcome_of(503, b"Service Unavailable")[0] == "http 503"
    assert outcome_of(500, b'{"error": "model_error"}')[0] == "http 500"
    status, ts_diff, size = outcome_of(204, b"")
    assert status == "ok" and math.isnan(ts_diff) and size == -1


def test_stats_add_up_and_percentiles():
    rec = Recorder()
    t = rec.origin
    for i in range(100):  # 1..100 ms latencies, all ok
        rec.add(t + i * 0.01, t + i * 0.01, t + i * 0.01 + (i + 1) / 1000, 200, "ok", float(i), 2)
    rec.add(t, t, t + 0.5, 0, "timeout")
    rec.add(t, t, t + 0.5, 503, "busy")
    rec.add(t, t, t + 0.5, 0, "unfinished")
    df = rec.to_frame()
    s = bench_stats(df, elapsed_s=2.0, client_cpu_s=0.01)
    assert s["requests"] == 103 == s["ok"] + sum(s["errors"].values())
    assert s["errors"] == {"timeout": 1, "busy": 1, "unfinished": 1}
    assert s["qps"] == 50.0 and s["rps"] == 51.0  # the unfinished one never answered
    assert s["p50_ms"] == pytest.approx(50.5, abs=0.01) and s["max_ms"] == pytest.approx(100, abs=0.01)
    assert s["ts_diff_mean_ms"] == pytest.approx(49.5) and s["batch_size_mean"] == 2
    assert s["client_cpu_us_per_request"] == pytest.approx(0.01 / 103 * 1e6, rel=1e-3)
    tl = timeline(df)  # done at 0.001 .. 1.09 s: second 0 holds 91; 0.09 s of second 1 is left out
    assert list(tl["qps"]) == [91] and list(tl.columns) == ["t", "qps", "errors_per_s", "p50_ms", "p99_ms"]


def test_a_partly_covered_last_second_is_not_drawn_as_a_collapse():
    rec = Recorder()
    t = rec.origin
    for i in range(100):  # a steady ~67/s, ending 0.485 s into the second second
        rec.add(t, t, t + i * 0.015, 200, "ok", 0.0, 1)
    tl = timeline(rec.to_frame())
    assert len(tl) == 2 and tl["qps"].iloc[0] == 67
    assert tl["qps"].iloc[1] == pytest.approx(33 / 0.485, rel=1e-3)  # per second covered, not 33


def test_best_cell_respects_the_p99_limit():
    cells = pd.DataFrame(
        [
            {"workers": 8, "batch_size": 1, "qps": 100.0, "p99_ms": 5.0, "ok": 10},
            {"workers": 64, "batch_size": 8, "qps": 900.0, "p99_ms": 50.0, "ok": 10},
            {"workers": 128, "batch_size": 16, "qps": 999.0, "p99_ms": 10.0, "ok": 0},
        ]
    )
    assert best_cell(cells)["qps"] == 900.0
    assert best_cell(cells, max_p99_ms=20)["workers"] == 8
    assert best_cell(cells, max_p99_ms=1) is None
    assert best_cell(pd.DataFrame()) is None


@pytest.mark.parametrize("model", ["closed", "open"])
def test_a_connection_that_never_opens_is_recorded_unfinished(model):
    """A listener whose accept queue is full drops SYNs: the connect hangs past the deadline
    and the grace. Each request begun is still one record, "unfinished" (it used to vanish, so
    a shard whose connects hung reported 0 requests as if it had been idle)."""
    import asyncio
    import socket
    import time

    from hubstress_ext.loadgen.loops import UNFINISHED, ClosedLoop, OpenLoop

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = []
    for _ in range(3):  # fill the accept queue (never accepted)
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        filler.append(s)
    time.sleep(0.1)

    async def go():
        recorder = Recorder(origin=time.monotonic())
        target = Target(f"http://127.0.0.1:{port}/")
        common = dict(requests=None, deadline=time.monotonic() + 0.4, timeout=10.0)
        if model == "closed":
            load = ClosedLoop(target, lambda: None, recorder, workers=2, **common)
        else:
            load = OpenLoop(target, lambda: None, recorder, rate=20, **common)
        began = time.monotonic()
        await load.run(0.3)
        return recorder, time.monotonic() - began

    try:
        recorder, took = asyncio.run(go())
    finally:
        for s in [*filler, server]:
            s.close()
    outcomes = recorder.to_frame()["outcome"]
    assert len(outcomes) == (2 if model == "closed" else 8)  # 2 workers / 20/s x 0.4 s
    assert (outcomes == UNFINISHED).all()
    assert took < 3  # the grace, not the 10 s connect timeout
