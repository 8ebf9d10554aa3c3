"""The load generator against real servers: a Tornado app in its own process and the real
standalone batching endpoint (``hubstress serve``)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from hubstress_ext import load_run
from hubstress_ext.http.ports import free_port
from hubstress_ext.loadgen.options import LoadOptions, SweepOptions
from hubstress_ext.loadgen.run import BEHIND_LAG_MS, BenchRun
from hubstress_ext.loadgen.sweep import SweepRun
from tests.integration.conftest import process

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hubstress_ext", *args], capture_output=True, text=True, timeout=timeout
    )


def counts_add_up(run: BenchRun) -> None:
    s = run.stats
    assert s["requests"] == len(run.df) == s["ok"] + sum(s["errors"].values())
    assert s["failed"] == sum(s["errors"].values())


def test_closed_loop_against_the_batching_endpoint_counts_add_up(endpoint):
    run = BenchRun(LoadOptions(url=endpoint, workers=16, requests=2000).resolve()).execute()
    assert run.status == "finished", run.error
    counts_add_up(run)
    s = run.stats
    assert s["requests"] == 2000 and s["ok"] == 2000 and s["qps"] > 0
    assert s["p50_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert s["ts_diff_mean_ms"] is not None and s["batch_size_mean"] > 1  # 16 workers fill batches
    df = run.df
    assert (df["latency_ms"] >= 0).all() and set(df["outcome"].astype(str)) == {"ok"}
    stats = get_json(endpoint + "/stats")  # the server saw exactly what we recorded
    assert stats["accepted"] == stats["served"] == 2000


def test_closed_loop_duration_bound_and_every_failure_kind_counted(app, endpoint):
    run = BenchRun(LoadOptions(url=f"{app}/echo", workers=8, duration=1.0).resolve()).execute()
    assert run.status == "finished" and 0.9 <= run.stats["elapsed_s"] <= 2.5
    counts_add_up(run)
    for path, reason in (("/status/500", "http 500"), ("/busy", "busy"), ("/drop", "connection error")):
        run = BenchRun(LoadOptions(url=app + path, workers=4, requests=40).resolve()).execute()
        counts_add_up(run)
        assert run.stats["ok"] == 0 and run.stats["errors"] == {reason: 40}, (path, run.stats)
    slow = LoadOptions(url=f"{app}/slow", workers=3, requests=3, request_timeout=0.3)
    run = BenchRun(slow.resolve()).execute()
    counts_add_up(run)
    assert run.stats["errors"] == {"timeout": 3}
    assert run.exit_code == 1  # nothing succeeded


def test_open_loop_counts_the_stall_that_a_closed_loop_hides(app):
    """The server blocks for 600 ms once. Scheduled at a fixed rate, every request due during
    the stall waits, and latency from the intended send time shows it; the service time of
    those requests (from when they could actually be sent) mostly does not."""
    rate, seconds = 400, 2.5
    run = BenchRun(LoadOptions(url=f"{app}/stall", rate=rate, duration=seconds, max_connections=8).resolve())
    run.execute()
    assert run.status == "finished", run.error
    counts_add_up(run)
    s = run.stats
    assert s["scheduled"] == s["requests"] and abs(s["requests"] - rate * seconds) <= 2
    df = run.df[run.df["outcome"] == "ok"]
    delayed = df[df["latency_ms"] > 300]
    assert s["max_ms"] >= 500  # the stall itself
    assert len(delayed) >= 0.5 * rate * 0.6  # about every request due during the 600 ms stall
    assert s["waited_for_connection"] > 0  # the 8 connections were all stuck
    # the server stalled, not the generator: "behind" follows the generator's own lag alone
    assert s["generator_behind"] == (s["scheduler_lag_p99_ms"] > BEHIND_LAG_MS), s


def test_open_loop_poisson_arrivals(app):
    run = BenchRun(LoadOptions(url=f"{app}/echo", rate=300, duration=1.5, arrival="poisson").resolve())
    run.execute()
    counts_add_up(run)
    gaps = run.df.sort_values("t_intended")["t_intended"].diff().dropna()
    assert 0.75 * 450 <= run.stats["requests"] <= 1.25 * 450
    assert gaps.std() > 0.5 * gaps.mean()  # exponential gaps, not a metronome (std = mean)


def test_stop_keeps_what_was_measured(app):
    run = BenchRun(LoadOptions(url=f"{app}/echo", workers=8, duration=60).resolve())
    thread = threading.Thread(target=run.execute)
    thread.start()
    time.sleep(1.5)
    run.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert run.status == "interrupted" and run.exit_code == 130
    counts_add_up(run)
    assert run.stats["ok"] > 100


def test_sweep_sets_batch_size_reads_cpu_and_saves(endpoint, tmp_path):
    before = get_json(endpoint + "/config")["batch_size"]
    opts = SweepOptions(url=endpoint, workers=[2, 16], batch_sizes=[1, 8], duration=0.8, warmup=0.2)
    run = SweepRun(opts.resolve()).execute()
    assert run.status == "finished", run.error
    cells = run.df
    assert len(cells) == 4
    assert list(zip(cells["workers"], cells["batch_size"], strict=True)) == [(2, 1), (16, 1), (2, 8), (16, 8)]
    assert (cells["qps"] > 0).all() and (cells["server_cpu_pct"] > 0).all()
    assert (cells["client_cpu_pct"] > 0).all() and (cells["errors"] == 0).all()
    records = run.records_df
    assert len(records) == cells["requests"].sum()
    big = records[(records["workers"] == 16) & (records["batch_size_setting"] == 8)]
    assert big["batch_size"].max() > 1  # the setting reached the server
    assert get_json(endpoint + "/config")["batch_size"] == before  # put back
    best = run.best()
    assert best["qps"] == cells["qps"].max()
    saved = load_run(run.save(tmp_path))
    assert len(saved.cells_df) == 4 and saved.meta["best"]["qps"] == best["qps"]
    assert run.pivot("qps").shape == (2, 2)


def test_sweep_needs_the_config_api_for_batch_sizes(app):
    run = SweepRun(SweepOptions(url=f"{app}/echo", workers=[2], batch_sizes=[1, 2]).resolve()).execute()
    assert run.status == "failed" and "no hubstress config API" in run.error
    run = SweepRun(
        SweepOptions(url=f"{app}/echo", workers=[2, 4], duration=0.5, warmup=0).resolve()
    ).execute()
    assert run.status == "finished" and len(run.df) == 2  # workers only works anywhere
    assert run.df["server_cpu_pct"].isna().all()


def test_sweep_stopped_keeps_finished_cells(endpoint):
    opts = SweepOptions(url=endpoint, workers=[2, 4, 8, 16], batch_sizes=[1, 2], duration=0.5, warmup=0)
    run = SweepRun(opts.resolve())
    thread = threading.Thread(target=run.execute)
    thread.start()
    deadline = time.monotonic() + 30
    while len(run.cells) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop()
    thread.join(15)
    assert run.status == "interrupted" and 2 <= len(run.df) < 8
    assert get_json(endpoint + "/config")["batch_size"] == 4  # restored even when stopped


def test_cli_bench_json_and_errors(endpoint, tmp_path):
    out = cli("bench", endpoint, "--workers", "8", "--requests", "300", "--json", "--save", str(tmp_path))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {"requests", "ok", "qps", "p50_ms", "p99_ms", "errors"} <= set(doc)
    assert doc["requests"] == doc["ok"] == 300
    assert "saved run to" in out.stderr
    report = cli("report", str(next(tmp_path.iterdir())))
    assert report.returncode == 0 and "QPS" in report.stdout
    out = cli("bench", "http://127.0.0.1:9/hubstress/batch", "--requests", "5")
    assert out.returncode == 1 and "cannot connect to http://127.0.0.1:9/hubstress/batch" in out.stdout
    for args, message in (
        (["bench", "localhost:8000"], "URL must be an http(s) URL"),
        (["bench", endpoint, "--workers", "0"], "--workers must be at least 1 (got 0)"),
        (["bench", endpoint, "--template", "[1]"], "--template: template must be a JSON object"),
        (["bench", endpoint, "--rate", "-5"], "--rate must be a positive number"),
        (["sweep", endpoint, "--batch-sizes", "1,x"], "--batch-sizes takes whole numbers separated by"),
    ):
        out = cli(*args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)


def test_cli_sweep_interrupted_keeps_cells(endpoint):
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubstress_ext", "sweep", endpoint, "--workers", "2,4,8,16,32"]
        + ["--batch-size", "1,2,4", "--duration", "0.5", "--warmup", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert doc["status"] == "interrupted" and 1 <= len(doc["cells"]) < 15


def test_open_loop_over_capacity_reports_offered_rate_goodput_and_drain_apart():
    """Asked 150/s for 2 s of a server that serves about 50/s: the generator offered 150/s (it
    is not behind); goodput is measured over the 2 s schedule; the late answers are a drain."""
    port = free_port()
    cmd = [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(port), "--batch-size", "1"]
    cmd += ["--max-wait-ms", "0", "--max-queue", "10000", "--model", "tests.batching_models:sleepy"]
    with process(cmd, "batching endpoint on"):
        url = f"http://127.0.0.1:{port}/hubstress/batch"
        # 8 connections, as in the stall test: late requests wait in the generator's backlog
        # (counted in their latency), instead of the generator opening ~300 connections, whose
        # set-up on a 2-core machine can itself delay the scheduler past the 5 ms lag limit
        run = BenchRun(LoadOptions(url=url, rate=150, duration=2.0, max_connections=8).resolve())
        run.execute()
    assert run.status == "finished", run.error
    counts_add_up(run)
    s = run.stats
    assert s["window_s"] == pytest.approx(2.0, abs=0.01)
    assert s["offered_rate"] == pytest.approx(150, abs=3) and s["send_rate"] == s["offered_rate"]
    # the server was slow, not the generator: it offered the asked rate, and "behind" follows
    # the generator's own scheduler lag alone (on a machine whose cores are busy elsewhere the
    # generator can really lag, and then says so; a slow server never sets it)
    assert s["generator_behind"] == (s["scheduler_lag_p99_ms"] > BEHIND_LAG_MS), s
    assert s["drain_s"] > 1.0 and s["ok_after_window"] > 50
    assert s["ok_in_window"] + s["ok_after_window"] == s["ok"]
    assert s["qps"] == pytest.approx(s["ok_in_window"] / 2.0, abs=0.1)
    assert s["qps"] < 80  # about the server's capacity, not the asked rate
    assert s["elapsed_s"] > 3.0  # the run itself lasted through the drain


def test_a_reader_that_leaves_early_ends_the_printing_quietly(endpoint, tmp_path):
    """``hubstress bench ... | head -1``: the pipe closes before the report is printed; the run is
    saved all the same, the exit status is the run's, and no traceback is printed."""
    for args in (["bench", endpoint, "--requests", "50", "--save", str(tmp_path)], ["report", None]):
        if args[0] == "report":
            args = ["report", str(next(tmp_path.iterdir()))]
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubstress_ext", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        proc.stdout.close()  # the reader is gone before anything is printed
        err = proc.stderr.read().decode()
        assert proc.wait(60) == 0, err
        assert "Traceback" not in err and "BrokenPipe" not in err, err
        assert len(list(tmp_path.iterdir())) == 1
