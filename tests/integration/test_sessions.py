"""session-test against real hubs: real kernels through the proxy (real spawner), a Poisson
class on the sim spawner, and Ctrl-C in the middle of a class."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hubstress_ext import load_run, make_run
from hubstress_ext.results.sessions import peak_active
from hubstress_ext.sandbox.hub import Sandbox
from tests.conftest import HubAdmin, hubstress_popen
from tests.unit.test_sessions import ks_exponential_p

pytestmark = pytest.mark.slow
TOKENISH = re.compile(r"[0-9a-f]{32}")  # JupyterHub's tokens (and the sandbox's) are hex


@pytest.fixture(scope="module")
def real_hub():
    """A sandbox hub whose servers are real jupyterhub-singleuser processes with real kernels."""
    with Sandbox("real") as sandbox:
        yield sandbox


def session_cli(hub, tmp_path, *args, timeout=240):
    env = dict(os.environ, JUPYTERHUB_ENDPOINT=hub.api_url, JUPYTERHUB_API_TOKEN=hub.token)
    cmd = [sys.executable, "-m", "hubstress_ext", "session-test", "--save", str(tmp_path), *args]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    saved = load_run(next(tmp_path.iterdir())) if any(tmp_path.iterdir()) else None
    return proc, saved


CLASS = ["--count", "3", "--arrival", "burst", "--think", "1", "--code", "5*4", "--batch-size", "3"]


def check_session_records(hub, saved, min_executes):
    records, users = saved.df, saved.users_df.set_index("user")
    sessions = saved.frames["sessions"].set_index("user")
    assert len(sessions) == 3
    for user, row in sessions.iterrows():
        mine = records[records["user"] == user]
        executes = mine[mine["op"] == "execute"]
        assert (executes["error"].isna()).sum() >= min_executes, user
        # every kernel, websocket and execute request went to the proxy's public port, under /user/<name>/
        through_proxy = mine[
            mine["op"].isin(["kernel_start", "ws_connect", "execute", "poll", "kernel_stop"])
        ]
        assert through_proxy["path"].str.startswith(f"{hub.url}/user/{user}/").all(), user
        # the kernel was shut down (answered) before the server was asked to stop
        stop_kernel = mine[mine["op"] == "kernel_stop"]
        assert len(stop_kernel) == 1 and stop_kernel["status"].iloc[0] == 204
        assert stop_kernel["end"].iloc[0] <= users.loc[user, "stop_requested"]
        assert pd_notna(users.loc[user, "stopped"]) and pd_notna(users.loc[user, "deleted"])
        assert row["ended"] - row["started"] >= row["planned_session"] - 0.5


def pd_notna(value):
    return value == value and value is not None


def test_real_kernels_through_the_proxy_with_a_token_per_student(real_hub, tmp_path):
    proc, saved = session_cli(real_hub, tmp_path, *CLASS, "--session", "20", "--expect-output", "20")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_session_records(real_hub, saved, min_executes=5)
    assert {"token", "kernel_start", "ws_connect", "execute", "poll", "kernel_stop"} <= set(saved.df["op"])
    assert "sessions: 3 of 3 without a failure" in proc.stdout
    # the saved run reports the same class
    again = saved.report()
    assert "sessions: 3 of 3 without a failure" in again and "3 students arrive all at once" in again
    # no token (the students', the tool's) in any output or saved file
    assert real_hub.token not in proc.stdout + proc.stderr
    assert not TOKENISH.search(proc.stdout + proc.stderr)
    for path in Path(saved.path).iterdir():
        assert not TOKENISH.search(path.read_text()), path.name
    assert not {n for n in HubAdmin(real_hub).users() if n.startswith("hubstress-")}


def test_a_wrong_expected_output_fails_every_session(real_hub, tmp_path):
    proc, saved = session_cli(real_hub, tmp_path, *CLASS, "--session", "4", "--expect-output", "21")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    sessions = saved.frames["sessions"]
    assert (sessions["reason"] == "output mismatch").all()
    assert "output mismatch" in proc.stdout and "failures by reason" in proc.stdout
    executes = saved.df[saved.df["op"] == "execute"]
    assert len(executes) >= 3 and (executes["error"] == "output mismatch").all()
    assert not {n for n in HubAdmin(real_hub).users() if n.startswith("hubstress-")}


def test_login_form_and_oauth_give_the_same_result(real_hub, tmp_path):
    proc, saved = session_cli(
        real_hub, tmp_path, *CLASS, "--session", "8", "--expect-output", "20", "--login", "form"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_session_records(real_hub, saved, min_executes=5)
    ops = set(saved.df["op"])
    assert {"login", "oauth"} <= ops and "token" not in ops
    oauth = saved.df[saved.df["op"] == "oauth"]
    assert (oauth["status"] == 200).all() and len(oauth) == 3


def test_a_poisson_class_on_the_sim_spawner(sim_hub, clean_hub, tmp_path):
    """120 students at 240/min, sessions 5-15 s, seed 7: the plan is what the hub saw. (Arrivals
    over 30 s: 200 at 120/min tested the same in 100 s.)"""
    run = make_run(
        "session-test",
        endpoint=sim_hub.api_url,
        token=sim_hub.token,
        count=120,
        batch_size=50,
        arrival="poisson",
        rate=4.0,
        session="5-15",
        seed=7,
        think="1-3",
        code="5*4",
        expect_output="20",
        poll_interval=5.0,
    ).execute()
    assert run.exit_code == 0, run.report()
    users, sessions = run.users_df, run.sessions_df
    requested = users["spawn_requested"].sort_values().to_numpy()
    gaps = requested[1:] - requested[:-1]
    assert abs(gaps.mean() - 0.25) <= 0.15 * 0.25, gaps.mean()
    assert ks_exponential_p(list(gaps), 4.0) > 0.01
    stop_after_ready = users["stop_requested"] - users["ready"]
    assert stop_after_ready.between(5, 16).all(), stop_after_ready.describe()
    assert peak_active(sessions, users) <= 80  # students leave as they go: at most 4/s x 20 s
    assert run.report_json()["peak_active"] == peak_active(sessions, users)
    assert clean_hub.active() == set() and not clean_hub.group()


def open_kernels(sandbox) -> int:
    with urllib.request.urlopen(f"{sandbox.sim_url}/_sim/kernels", timeout=10) as resp:
        return len(json.loads(resp.read())["users"])


def test_ctrl_c_mid_class_closes_kernels_stops_servers_deletes_users(sim_hub, clean_hub, tmp_path):
    env = dict(os.environ, JUPYTERHUB_ENDPOINT=sim_hub.api_url, JUPYTERHUB_API_TOKEN=sim_hub.token)
    proc = hubstress_popen(
        "session-test",
        *["--count", "20", "--arrival", "even", "--period", "2", "--session", "120", "--think", "1"],
        *["--save", str(tmp_path)],
        env=env,
    )
    # interrupted once 10 students have a kernel open (the stand-in's own count: a busy machine
    # may take seconds between a server being ready and its kernel starting)
    give_up = time.monotonic() + 90
    while open_kernels(sim_hub) < 10 and time.monotonic() < give_up:
        time.sleep(0.2)
    time.sleep(1)  # executing
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    saved = load_run(next(tmp_path.iterdir()))
    records, users = saved.df, saved.users_df
    started = records[(records["op"] == "kernel_start") & (records["status"] == 201)]
    stopped = records[(records["op"] == "kernel_stop") & (records["status"] == 204)]
    assert len(started) >= 10
    assert sorted(started["user"]) == sorted(stopped["user"])  # every kernel shut down
    by_user = users.set_index("user")
    for user, end in stopped.groupby("user")["end"].max().items():
        assert end <= by_user.loc[user, "stop_requested"]  # ...before its server was stopped
    assert users["deleted"].notna().all()
    assert clean_hub.active() == set() and not clean_hub.group()
    assert json.loads((Path(saved.path) / "meta.json").read_text())["status"] == "interrupted"


def test_a_token_without_the_tokens_scope_fails_before_creating_anyone(sim_hub, clean_hub, monkeypatch):
    from hubstress_ext.hub.api import HubAPI

    real_check = HubAPI.check_access

    async def check_without_tokens(self):
        version = await real_check(self)
        self.scopes = {s for s in self.scopes if s.split("!")[0] != "tokens"}
        return version

    monkeypatch.setattr(HubAPI, "check_access", check_without_tokens)
    run = make_run("session-test", endpoint=sim_hub.api_url, token=sim_hub.token, count=3).execute()
    assert run.status == "failed" and "needs the tokens scope" in run.error
    assert not clean_hub.group() and not {n for n in clean_hub.users() if n.startswith("hubstress-")}


def test_form_login_follows_the_hub_to_a_server_without_jupyterlab(tmp_path):
    """A plain jupyter_server whose default page is /tree (nothing serves it: a 404): the login
    follows the hub's own redirects and signs in through the server's OAuth all the same."""
    with Sandbox("real", default_url="/tree") as hub:
        proc, saved = session_cli(
            hub,
            tmp_path,
            *["--count", "1", "--arrival", "burst", "--session", "3", "--think", "1"],
            *["--login", "form", "--expect-output", "2"],
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    oauth = saved.df[saved.df["op"] == "oauth"]
    assert oauth["path"].str.endswith("/user/hubstress-0/").any()  # where the hub sent the browser
    assert not oauth["path"].str.endswith("/lab").any()
    assert (saved.df[saved.df["op"] == "execute"]["error"].isna()).all()


def test_a_missing_kernel_fails_the_pre_flight_with_what_to_install():
    run = make_run(
        "session-test", sandbox=True, sandbox_spawner="real", count=1, kernel_name="no-such-kernel"
    ).execute()
    assert run.status == "failed" and run.exit_code == 1
    assert "--kernel-name no-such-kernel: the sandbox's real servers have no such kernel" in run.error
    assert "pip install ipykernel" in run.error and "python3" in run.error
    assert "no load was sent" in run.report() and not (run.df["op"] == "create").any()
