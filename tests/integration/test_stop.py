"""Ctrl-C at every moment: real SIGINTs to a `hubstress` subprocess in each phase, then the hub's
users are counted. Once: nothing new is sent, what the run created is removed, exit 130.
Twice: exit 130 at once, and whatever is left is in the marker group for `hubstress purge`."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from hubstress_ext.hub.options import StressOptions
from hubstress_ext.hub.stress import StressTestRun
from tests.conftest import hubstress_popen

pytestmark = pytest.mark.slow
PREFIX = "hubstress-"


def env_for(hub):
    return dict(os.environ, JUPYTERHUB_ENDPOINT=hub.api_url, JUPYTERHUB_API_TOKEN=hub.token)


def wait_for(condition, timeout=30.0, what="condition"):
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ours_on_hub(admin):
    return {n for n in admin.users() if n.startswith(PREFIX)}


def finish(proc, timeout):
    """(returncode, stdout, stderr, seconds it took to exit)."""
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.monotonic() - t0


def sandbox_processes(root_pid):
    try:
        return [p for p in psutil.Process(root_pid).children(recursive=True) if p.is_running()]
    except psutil.NoSuchProcess:
        return []


def hub_started(proc):
    return any("jupyterhub" in " ".join(p.cmdline()) for p in sandbox_processes(proc.pid))


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_while_the_sandbox_starts(presses):
    proc = hubstress_popen("stress-test", "--sandbox", "--sandbox-spawner", "sim", "-c", "200", "-b", "20")
    wait_for(lambda: hub_started(proc), what="the sandbox hub process")
    children = sandbox_processes(proc.pid)
    proc.send_signal(signal.SIGINT)
    if presses == 2:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    code, out, err, took = finish(proc, 60)
    assert code == 130, out + err
    assert "interrupted" in err and "Traceback" not in err
    # not one user created, not one spawn: the report says so instead of a table
    assert "no load was sent: the run was " in out and "before its load began" in out, out
    assert took < (20 if presses == 1 else 8)
    time.sleep(0.3)
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_ctrl_c_during_user_creation_removes_every_user_it_made(sim_hub, clean_hub):
    proc = hubstress_popen("stress-test", "--count", "200", "--batch-size", "1", env=env_for(sim_hub))
    wait_for(lambda: len(clean_hub.group() or []) >= 3, what="users being created")
    proc.send_signal(signal.SIGINT)
    code, out, err, _ = finish(proc, 120)
    assert code == 130, out + err
    assert ours_on_hub(clean_hub) == set()  # including one whose create request was in flight
    assert clean_hub.group() is None
    assert "0/" in out or "(no requests" not in out  # the report still prints
    assert "200/200 ready" not in out


def test_ctrl_c_twice_during_creation_leaves_only_marked_users_for_purge(sim_hub, clean_hub):
    proc = hubstress_popen("stress-test", "--count", "200", "--batch-size", "1", env=env_for(sim_hub))
    # enough users that removing them one at a time takes longer than the gap between presses
    wait_for(lambda: len(clean_hub.group() or []) >= 12, what="users being created")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.03)  # two deliveries, not one merged pending signal
    proc.send_signal(signal.SIGINT)
    code, out, err, took = finish(proc, 30)
    assert code == 130 and took < 8, out + err
    assert "hubstress purge" in err
    left = ours_on_hub(clean_hub)
    assert left <= set(clean_hub.group() or [])  # everything left carries the marker
    time.sleep(1.0)  # nothing more is sent after exit: the count does not grow
    assert ours_on_hub(clean_hub) == left
    purge = subprocess.run(
        [sys.executable, "-m", "hubstress_ext", "purge"],
        env=env_for(sim_hub),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert purge.returncode == 0 and f"removed {len(left)} user(s)" in purge.stdout
    assert ours_on_hub(clean_hub) == set()


def test_ctrl_c_during_spawning_stops_servers_and_removes_users(sim_hub, clean_hub):
    proc = hubstress_popen("stress-test", "-c", "6", "-b", "6", "-p", "slow", env=env_for(sim_hub))
    wait_for(lambda: len(clean_hub.group() or []) >= 6, what="users created")
    time.sleep(0.5)  # spawns are pending (the 'slow' profile takes 3-5 s)
    proc.send_signal(signal.SIGINT)
    code, out, err, _ = finish(proc, 120)
    assert code == 130, out + err
    assert ours_on_hub(clean_hub) == set() and not clean_hub.active()
    assert clean_hub.group() is None


def _stopping(admin):
    _, users = admin.call("GET", "/users?state=active&limit=1000")
    return any(s.get("pending") == "stop" for u in users for s in (u.get("servers") or {}).values())


def test_ctrl_c_during_teardown_finishes_teardown_and_exits_130(sim_hub, clean_hub):
    proc = hubstress_popen("stress-test", "-c", "8", "-b", "4", "-p", "slow-stop", env=env_for(sim_hub))
    wait_for(lambda: _stopping(clean_hub), timeout=60, what="teardown stopping servers")
    proc.send_signal(signal.SIGINT)
    code, out, err, _ = finish(proc, 120)
    assert code == 130, out + err
    assert "interrupted" in out
    assert ours_on_hub(clean_hub) == set()  # teardown went on to the end, bounded
    assert clean_hub.group() is None


def test_ctrl_c_twice_during_teardown_leaves_at_once(sim_hub, clean_hub):
    proc = hubstress_popen("stress-test", "-c", "8", "-b", "2", "-p", "slow-stop", env=env_for(sim_hub))
    wait_for(lambda: _stopping(clean_hub), timeout=60, what="teardown stopping servers")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    code, out, err, took = finish(proc, 30)
    assert code == 130 and took < 8, out + err
    left = ours_on_hub(clean_hub)
    assert left and left <= set(clean_hub.group() or [])
    assert "`hubstress purge` removes them" in out


def test_run_stop_from_a_notebook_while_the_sandbox_starts():
    """The same stop through run.stop(), as the notebook front ends call it."""
    run = StressTestRun(StressOptions(sandbox=True, sandbox_spawner="sim", count=50).resolve({}))
    run.start()
    wait_for(lambda: run._sandbox is not None and run._sandbox.hub is not None, what="the sandbox hub")
    hub_pid = run._sandbox.hub.pid
    run.stop()
    assert run.wait(30)
    assert run.status == "interrupted" and run.exit_code == 130
    assert run.df.empty
    assert not psutil.pid_exists(hub_pid) or psutil.Process(hub_pid).status() == psutil.STATUS_ZOMBIE


def test_run_stop_from_a_notebook_during_creation(sim_hub, clean_hub):
    opts = StressOptions(endpoint=sim_hub.api_url, token=sim_hub.token, count=200, batch_size=1)
    run = StressTestRun(opts.resolve({}))
    run.start()
    wait_for(lambda: len(run.created) >= 3, what="users being created")
    run.stop()
    assert run.wait(60)
    assert run.status == "interrupted" and run.exit_code == 130
    assert ours_on_hub(clean_hub) == set()


def test_ctrl_c_to_the_process_group_during_a_storm_over_dask_shards(sim_hub, clean_hub):
    """A terminal's Ctrl-C reaches every process of the group, the Dask workers included: the
    workers ignore it, their shards hear the coordinator's stop, and teardown still runs."""
    args = ["stress-test", "-c", "6", "-b", "6", "-p", "slow", "--dask", "local:2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubstress_ext", *args],
        env=env_for(sim_hub),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        wait_for(lambda: len(clean_hub.group() or []) >= 6, timeout=60, what="users created")
        time.sleep(1.5)  # the shards' spawns are pending (the 'slow' profile takes 3-5 s)
        os.killpg(proc.pid, signal.SIGINT)
        code, out, err, took = finish(proc, 120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 130, out + err
    assert "Traceback" not in err, err
    assert ours_on_hub(clean_hub) == set() and not clean_hub.active()
    assert clean_hub.group() is None
