"""A hub that dies mid-run, or is not there at all, is a named and bounded failure."""

import json
import os
import re
import signal
import time
import urllib.request

import pytest

from hubstress_ext.hub.options import StressOptions
from hubstress_ext.hub.stress import StressTestRun
from hubstress_ext.sandbox.hub import Sandbox
from tests.conftest import HubAdmin, hubstress_popen

pytestmark = pytest.mark.slow


def kill_the_hub_during(args: list[str], ready):
    """Run the CLI against a fresh sandbox hub and SIGKILL ``jupyterhub`` once ``ready(admin,
    sandbox)`` holds (its proxy lives on); returns (process, stdout, stderr, seconds the run
    went on after the kill). A condition, not a delay: on a busy machine the command may take
    seconds to get going."""
    hub = Sandbox("sim").start()
    try:
        env = dict(os.environ, JUPYTERHUB_ENDPOINT=hub.api_url, JUPYTERHUB_API_TOKEN=hub.token)
        proc = hubstress_popen(*args, env=env)
        admin = HubAdmin(hub)
        give_up = time.monotonic() + 90
        while not ready(admin, hub) and time.monotonic() < give_up and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before the hub was killed"
        hub.hub.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out, err = proc.communicate(timeout=120)
        return proc, out, err, time.monotonic() - killed
    finally:
        hub.stop()


def spawning(at_least_created: int):
    """Mid-storm: that many users made (tagged) and a server already starting."""
    return lambda admin, hub: len(admin.group() or []) >= at_least_created and bool(admin.active())


def in_session(students: int):
    """Mid-class: every student with a kernel open (the stand-in's own count)."""

    def ready(admin, hub) -> bool:
        with urllib.request.urlopen(f"{hub.sim_url}/_sim/kernels", timeout=10) as resp:
            return len(json.loads(resp.read())["users"]) >= students

    return ready


@pytest.mark.timeout(180)
@pytest.mark.parametrize("count", [20, 100])
def test_sigkill_of_the_hub_mid_storm_ends_the_run_within_60s(count):
    """Only `jupyterhub` is killed: its proxy lives on and answers 503 for everything."""
    proc, out, err, took = kill_the_hub_during(
        ["stress-test", "--count", str(count), "-b", "10", "-p", "slow"], spawning(10)
    )
    assert proc.returncode == 1, out + err
    assert took < 60, f"the run went on for {took:.0f}s after the hub died"
    assert "hubstress stress-test: failed" in out
    assert "Traceback" not in err
    line = re.search(r"the hub became unreachable at \d\d:\d\d:\d\d \((.+)\); (\d+) user\(s\) left", out)
    assert line, out
    assert "/hub/health" in line.group(1)
    assert 0 < int(line.group(2)) <= count
    assert "`hubstress purge`" in out


@pytest.mark.timeout(180)
def test_sigkill_of_the_hub_mid_storm_over_dask_shards_ends_the_run_within_60s():
    """Each shard has its own client and watch on the hub: the run over two worker processes
    ends the same way, with the users left named for purge."""
    args = ["stress-test", "--count", "20", "-b", "10", "-p", "slow", "--dask", "local:2"]
    proc, out, err, took = kill_the_hub_during(args, spawning(20))  # the shards spawn once all exist
    assert proc.returncode == 1, out + err
    assert took < 60, f"the run went on for {took:.0f}s after the hub died"
    assert "Traceback" not in err
    assert re.search(r"the hub became unreachable at .*; 20 user\(s\) left for `hubstress purge`", out), out
    assert "shards on local cluster of 2 worker processes" in out


@pytest.mark.timeout(180)
def test_sigkill_of_the_hub_mid_class_ends_the_run_within_60s():
    """Students in session talk to their servers through the proxy, which outlives the hub:
    the run's heartbeat on /hub/health notices the hub is gone."""
    args = ["session-test", "--count", "10", "--arrival", "burst", "--session", "300", "--think", "1"]
    proc, out, err, took = kill_the_hub_during(args, in_session(10))
    assert proc.returncode == 1, out + err
    assert took < 60, f"the run went on for {took:.0f}s after the hub died"
    assert "Traceback" not in err
    assert re.search(
        r"the hub became unreachable at \d\d:\d\d:\d\d \(.*/hub/health.*\); 10 user\(s\) left", out
    ), out


def test_everything_gone_mid_run_is_named_too():
    """The hub, its proxy and servers all vanish: connections are refused, the same ending."""
    hub = Sandbox("sim", sim_delay=(2.0, 3.0)).start()
    try:
        opts = StressOptions(endpoint=hub.api_url, token=hub.token, count=6, batch_size=6, max_retries=5)
        run = StressTestRun(opts.resolve({}))
        run.start()
        time.sleep(2.0)
        hub.stop(grace=0)
        killed = time.monotonic()
        assert run.wait(70)
        took = time.monotonic() - killed
    finally:
        hub.stop()
    assert run.status == "failed" and run.exit_code == 1
    assert took < 60
    assert "the hub became unreachable at" in run.error and "left for `hubstress purge`" in run.error
    assert run.meta["left_on_hub"] == 6


def test_unreachable_hub_at_start_fails_within_seconds():
    t0 = time.monotonic()
    opts = StressOptions(endpoint="http://127.0.0.1:9/hub/api", token="x", count=5)  # default retries
    run = StressTestRun(opts.resolve({})).execute()
    took = time.monotonic() - t0
    assert run.status == "failed" and run.exit_code == 1
    assert "cannot reach the hub API" in run.error and "connection failed" in run.error
    assert took < 3.0, f"the pre-flight took {took:.1f}s"
    assert len(run.df) == 1  # one attempt: a hub that was never reachable is not retried
    report = run.report()  # no load went out: no bottleneck line, no account, as if load ran
    assert "no load was sent: cannot reach the hub API" in report
    assert "bottleneck" not in report and "kept up" not in report and "hub's own figures" not in report


def test_a_run_that_sent_no_load_says_so_from_the_cli_and_its_saved_run(tmp_path):
    args = ["stress-test", "-e", "http://127.0.0.1:1/hub/api", "-t", "x", "--count", "1"]
    proc = hubstress_popen(*args, "--save", str(tmp_path), "--slo", "ready.p90<1s")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "no load was sent: cannot reach the hub API" in out and "bottleneck" not in out
    again = hubstress_popen("report", str(next(tmp_path.iterdir())))
    shown, err = again.communicate(timeout=60)
    assert "no load was sent: cannot reach the hub API" in shown and "bottleneck" not in shown
