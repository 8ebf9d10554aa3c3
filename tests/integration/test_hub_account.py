"""The hub's own account, failure causes, the sandbox's processes, the verdict and the
bottleneck line, each from a sandbox run built to show it (sim spawner)."""

import logging
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from hubstress_ext import load_run, make_run
from hubstress_ext.results.hub_figures import accepted_spawn_seconds, running_servers_max
from hubstress_ext.sandbox.hub import Sandbox
from hubstress_ext.sandbox.proxy import COST_ENV

pytestmark = pytest.mark.slow

# what a spawn costs us beyond the hub's own timing, at most (proxy add, the ready event): 0.25 s
# on a quiet machine; beside two busy loops one spawn of 40 was 0.25-1 s later by our clock. The
# other side (ours >= the hub's) holds however busy the machine is, and is what catches timing
# from the wrong attempt (12 <= 4 at 0.2 s when we timed from the first, 429'd, attempt)
SLACK_S = 1.0


def sandbox_run(scenario="stress-test", **values):
    return make_run(scenario, sandbox=True, sandbox_spawner="sim", **values).execute()


def test_throttling_as_the_hub_counted_it_and_as_we_saw_it(tmp_path):
    run = sandbox_run(count=40, batch_size=40, sandbox_spawn_limit=5, scrape_metrics=0.5)
    assert run.exit_code == 0, run.report()
    figures = run.hub_figures()
    seen_429 = int(((run.df["op"] == "spawn") & (run.df["status"] == 429)).sum())
    assert seen_429 > 0 and figures.throttled == seen_429
    assert figures.spawns["success"] == 40
    # The hub times a spawn from its handler to the spawner's return; we time it from sending the
    # accepted request to the ready event (so also the proxy add). Every spawn we measured is at
    # least as long as the hub's and at most SLACK_S longer: at each bucket bound, the hub counts
    # at least as many spawns as we do, and no more than we count SLACK_S later. (Comparing the
    # two p50s' buckets was a coin toss: the sim's median start sits near the 0.2 s bound.)
    measured = accepted_spawn_seconds(run.df, run.users_df)
    assert len(measured) == 40
    for bound, hub_count in figures.spawn_buckets:
        ours, ours_later = int((measured <= bound).sum()), int((measured <= bound + SLACK_S).sum())
        assert ours <= hub_count <= ours_later, (bound, ours, hub_count, ours_later)
    # the hub process's CPU, sampled during the run
    hub = run.resources().loc["hub"]
    wall = run.finished_at - run.started_at
    assert 0 < hub["cpu_s"] <= wall * 1.05 and hub["rss_peak_mb"] > 10
    assert "concurrent_spawn_limit=5" in run.bottleneck()
    report = run.report()
    assert (
        f"spawns refused with 429: the hub counted {seen_429}, hubstress saw {seen_429}: they agree" in report
    )
    assert "bottleneck: " in report and "sandbox processes" in report
    # all of it comes back from a saved run
    saved = load_run(run.save(tmp_path))
    assert set(saved.frames["resources"]["role"]) >= {"hub", "proxy"}
    again = saved.report()
    assert "they agree" in again and "concurrent_spawn_limit=5" in again


def test_a_full_hub_is_named_as_such():
    run = sandbox_run(count=20, batch_size=20, sandbox_active_limit=10, max_retries=0)
    assert run.exit_code == 1
    full = run.users_df[run.users_df["cause"] == "hub full"]
    assert len(full) >= 10
    assert run.hub_figures().hub_full == len(full)
    assert "the hub is full" in run.bottleneck() and "active_server_limit=10" in run.bottleneck()
    assert "failures by cause" in run.report() and "hub full" in run.report()


@pytest.mark.alone
def test_a_busy_hub_process_is_named_the_limit():
    run = sandbox_run("activity-stress-test", count=5, workers=48, duration=8.0)
    assert run.exit_code == 0, run.report()
    # by its CPU, or by its own event loop's lag when the sampler saw less (the other rule
    # about the same process: beside another test's load, both have named it)
    line = run.bottleneck()
    assert "the hub process is the limit" in line and ("hub CPU at" in line or "event loop lagged" in line)


@pytest.mark.alone
def test_a_busy_proxy_is_named_the_limit(monkeypatch):
    """30 students polling their servers every 50 ms through a proxy that spends 5 ms of CPU on
    each request: it is the limit on purpose (a few hundred requests a second need more than its
    core), however busy the machine is; left to contention, the test was a coin toss."""
    monkeypatch.setenv(COST_ENV, "5")
    run = sandbox_run(
        "session-test",
        count=30,
        batch_size=30,
        arrival="burst",
        session=20.0,
        think="0.05-0.1",
        poll_interval=0.05,
        sim_exec_time=0.0,
    )
    assert run.status == "finished", run.report()
    assert "proxy CPU at" in run.bottleneck() and "the proxy is the limit" in run.bottleneck()


def test_spawner_failures_are_named():
    run = sandbox_run(count=3, batch_size=3, profile="fail")
    assert set(run.users_df["cause"]) == {"spawner error"}
    assert "3 spawn(s) failed in the spawner" in run.bottleneck()


def cli(*args, env=None):
    cmd = [sys.executable, "-m", "hubstress_ext", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, env=env)


def test_slo_fail_and_pass_with_junit(tmp_path):
    storm = ["stress-test", "--sandbox", "--sandbox-spawner", "sim", "--count", "5", "--batch-size", "5"]
    junit = tmp_path / "verdict.xml"
    failing = cli(*storm, "--slo", "ready.p90<0.001s, failures<1%", "--junit", str(junit))
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "verdict: FAIL: ready.p90<0.001s" in failing.stdout
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "1" and suite.get("tests") == "3"
    assert [c.get("name") for c in suite if c.find("failure") is not None] == ["ready.p90<0.001s"]
    passing = cli(*storm, "--slo", "ready.p90<60s; failures<1%; hub.event_loop.p99<5s", "--junit", str(junit))
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "verdict: PASS" in passing.stdout
    assert ET.parse(junit).getroot().get("failures") == "0"


def test_a_token_without_read_metrics_is_one_warning_and_the_client_decides(
    sim_hub, clean_hub, caplog, tmp_path
):
    caplog.set_level(logging.WARNING, logger="hubstress")
    junit = tmp_path / "verdict.xml"
    run = make_run(
        "stress-test",
        endpoint=sim_hub.api_url,
        token=sim_hub.token_without_metrics,
        count=3,
        batch_size=3,
        scrape_metrics=0.2,
        slo=["ready.p90<60s", "hub.event_loop.p99<0.5s"],
        junit=str(junit),
    ).execute()
    warnings = [r for r in caplog.records if "read:metrics" in r.getMessage()]
    assert len(warnings) == 1
    assert run.hub_figures() is None and run.exit_code == 0, run.report()
    report = run.report()
    assert "the hub's own figures are not available" in report and "verdict: PASS" in report
    assert [o.passed for o in run.outcomes] == [True, None]  # the hub's rule skipped, not failed
    saved = load_run(run.save(tmp_path / "runs"))
    for text in (report, junit.read_text(), saved.report(), *(p.read_text() for p in saved.path.iterdir())):
        assert sim_hub.token_without_metrics not in text
    assert ET.parse(junit).getroot().get("skipped") == "1"


def test_a_throttled_run_without_read_metrics_is_named_by_what_hubstress_saw():
    """concurrent_spawn_limit=3, a token without read:metrics, 12 users at once: the client's own
    429s and its waits on Retry-After name the throttle (never "the hub kept up")."""
    with Sandbox("sim", concurrent_spawn_limit=3, throttle_retry=(1, 2)) as hub:
        run = make_run(
            "stress-test", endpoint=hub.api_url, token=hub.token_without_metrics, count=12, batch_size=12
        ).execute()
    assert run.exit_code == 0, run.report()
    seen = int(((run.df["op"] == "spawn") & (run.df["status"] == 429)).sum())
    line = run.bottleneck()
    assert seen > 0 and f"{seen} 429s from concurrent_spawn_limit" in line, line
    assert f"hubstress got {seen} x 429, waited" in line and "not visible without read:metrics" in line
    assert "kept up" not in run.report()


def test_running_servers_max_is_what_ran_at_once_and_hub_percentiles_are_bounds():
    run = sandbox_run(count=20, batch_size=20, scrape_metrics=0.5)
    assert run.exit_code == 0, run.report()
    assert running_servers_max(run.users_df) == 20
    table = run.hub_account().set_index(run.hub_account().index)
    assert table.loc["running servers, max", "hubstress"] == "20 (from ready to stopped)"
    assert table.loc["spawn p90", "hub"].startswith("<= ") and "its bucket" in table.loc["spawn p90", "hub"]
    assert table.loc["spawn p90", "hubstress"].endswith(" s (measured)")


def test_a_failed_kernel_start_is_named_where_it_happened(sim_hub, clean_hub):
    run = make_run(
        "session-test", endpoint=sim_hub.api_url, token=sim_hub.token, count=1, kernel_name="nope"
    ).execute()
    assert run.exit_code == 1
    line = run.bottleneck()
    assert "1 of 1 session(s) failed" in line and "HTTP 500" in line, line
    assert "(in the single-user server)" in line and "kept up" not in run.report()
