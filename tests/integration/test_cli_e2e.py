"""The hubstress command as a user runs it: subprocesses, real hubs, signals, secrets."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hubstress_ext.sandbox.hub import Sandbox

pytestmark = pytest.mark.slow


def hubstress(*args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "hubstress_ext", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        **kw,
    )


def env_for(hub):
    env = dict(os.environ)
    env.update(JUPYTERHUB_ENDPOINT=hub.api_url, JUPYTERHUB_API_TOKEN=hub.token)
    return env


def tagged_processes(tag: str) -> list[str]:
    """Live processes whose environment has HUBSTRESS_TEST_TAG=tag (a child inherits it)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.environ().get("HUBSTRESS_TEST_TAG") == tag and proc.status() != "zombie":
                found.append(" ".join(proc.info["cmdline"] or []))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def no_hub_processes_left(pids):
    return not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def test_sandbox_stress_test_main_command(tmp_path):
    """The README's main job (with the sim spawner for speed): real hub up, run, report, hub gone."""
    # the processes this command started carry its tag in their environment (another test
    # process may be running sandbox hubs of its own at the same time)
    tag = f"main-command-{os.getpid()}-{time.monotonic_ns()}"
    result = hubstress(
        "stress-test",
        "--sandbox",
        "--sandbox-spawner",
        "sim",
        "--count",
        "6",
        "--batch-size",
        "3",
        "--save",
        str(tmp_path),
        env={**os.environ, "HUBSTRESS_TEST_TAG": tag},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for phase in ("create", "spawn", "ready", "stop", "delete"):
        assert f"\n{phase} " in out
    assert "6/6 ready" in out and "JupyterHub 6" in out or "JupyterHub 5" in out or "JupyterHub 4" in out
    (run_dir,) = tmp_path.iterdir()
    report = hubstress("report", str(run_dir))
    assert report.returncode == 0 and "ready" in report.stdout and "6/6 ready" in report.stdout
    assert tagged_processes(tag) == []


@pytest.mark.timeout(400)
def test_sandbox_with_real_single_user_servers():
    result = hubstress("stress-test", "--sandbox", "--count", "2", "--batch-size", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 ready" in result.stdout


def test_token_never_appears_in_output_logs_or_saved_runs(sim_hub, clean_hub, tmp_path):
    log = tmp_path / "run.log"
    result = hubstress(
        "-v",
        "--log-to-file",
        str(log),
        "stress-test",
        "-c",
        "2",
        "-b",
        "2",
        "--save",
        str(tmp_path),
        "-p",
        "fail",
        env=env_for(sim_hub),
    )
    assert result.returncode == 1  # the failing profile: not all servers ready
    assert "DEBUG" in log.read_text()  # per-request timings were logged
    texts = [result.stdout, result.stderr, log.read_text()]
    texts += [f.read_text() for f in tmp_path.rglob("*") if f.is_file()]
    assert all(sim_hub.token not in text for text in texts)
    # a token given as a flag is not echoed either, even when the hub rejects it
    bad = hubstress("stress-test", "-c", "1", "-e", sim_hub.api_url, "-t", "wrong-secret-123")
    assert bad.returncode == 1
    assert "token rejected or lacks admin scopes" in bad.stdout
    assert "wrong-secret-123" not in bad.stdout + bad.stderr


def test_log_to_file_without_path_uses_a_temp_file(sim_hub, clean_hub):
    result = hubstress("--log-to-file", "purge", env=env_for(sim_hub))
    assert result.returncode == 0
    line = next(x for x in result.stderr.splitlines() if x.startswith("logging to "))
    path = Path(line.removeprefix("logging to "))
    assert path.is_file() and "purge" in path.read_text()
    path.unlink()


def _start_slow_storm(hub, count):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubstress_ext",
            "stress-test",
            "-c",
            str(count),
            "-b",
            str(count),
            "-p",
            "slow",
        ],
        env=env_for(hub),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_group(admin, n, timeout=30):
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if len(admin.group() or []) >= n:
            return
        time.sleep(0.1)
    raise AssertionError("users were not created in time")


def test_ctrl_c_stops_and_cleans_up(sim_hub, clean_hub):
    proc = _start_slow_storm(sim_hub, 4)
    _wait_for_group(clean_hub, 4)
    time.sleep(0.5)  # spawns are pending (the 'slow' profile takes 3-5 s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted" in err and "interrupted" in out
    assert clean_hub.group() is None  # teardown ran: users deleted, marker group gone


def test_second_ctrl_c_leaves_at_once_for_purge(sim_hub, clean_hub):
    proc = _start_slow_storm(sim_hub, 4)
    _wait_for_group(clean_hub, 4)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # signals do not queue: let the first one be handled
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "hubstress purge" in err
    left = clean_hub.group() or []
    purge = hubstress("purge", env=env_for(sim_hub))
    assert purge.returncode == 0
    assert f"removed {len(left)} user(s)" in purge.stdout
    assert clean_hub.group() is None


def test_hub_that_dies_mid_run_ends_the_run_cleanly():
    hub = Sandbox("sim", sim_delay=(2.0, 3.0)).start()
    try:
        env = env_for(hub)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hubstress_ext",
                "stress-test",
                "-c",
                "4",
                "-b",
                "4",
                "--max-retries",
                "2",
                "--timeout",
                "60",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)
        hub.stop(grace=0)  # the hub, its proxy and servers vanish mid-spawn
        out, err = proc.communicate(timeout=120)
    finally:
        hub.stop()
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert "connection failed" in out or "server disconnected" in out or "progress stream" in out


def test_foreground_sandbox_prints_exports_and_goes_away(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubstress_ext", "sandbox", "--sandbox-spawner", "sim"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        exports = None
        for line in proc.stdout:
            if line.startswith("export "):
                exports = dict(kv.split("=", 1) for kv in line.split()[1:])
                break
        assert exports is not None
        env = dict(os.environ, **exports)
        result = hubstress("stress-test", "-c", "2", "-b", "2", env=env)
        assert result.returncode == 0, result.stdout
        hub_pids = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert hub_pids
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert proc.returncode == 0
    time.sleep(0.5)
    assert no_hub_processes_left(hub_pids)
