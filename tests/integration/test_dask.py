"""Load from several processes on Dask (``--dask local:2``): real worker processes, the test
app (tests/apps.py) as the target, counting each shard's requests by its header."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from hubstress_ext import load_run, make_run
from tests.integration.conftest import ROOT
from tests.integration.test_loadgen import get_json

pytestmark = pytest.mark.slow


def seen_by_target(app: str) -> dict[str, dict]:
    return get_json(f"{app}/shard")


def test_closed_loop_2000_requests_split_evenly_over_two_shards(app):
    run = make_run("bench", url=f"{app}/shard", dask="local:2", requests=2000, workers=8).execute()
    assert run.status == "finished", run.error
    df = run.df
    assert len(df) == 2000
    assert df.groupby("shard").size().to_dict() == {0: 1000, 1: 1000}
    assert df["worker"].nunique() == 2
    stats = run.stats
    assert stats["requests"] == stats["ok"] + stats["failed"] == 2000
    assert {k: v["n"] for k, v in seen_by_target(app).items()} == {"0": 1000, "1": 1000}
    assert list(run.shards["status"]) == ["finished", "finished"]
    assert list(run.shards["requests"]) == [1000, 1000]
    assert run.exit_code == 0


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_open_loop_400_per_second_over_two_shards(app, arrival):
    run = make_run(
        "bench", url=f"{app}/shard", dask="local:2", rate=400, duration=3, arrival=arrival
    ).execute()
    assert run.status == "finished", run.error
    df = run.df
    assert 1176 <= len(df) <= 1224
    assert sum(v["n"] for v in seen_by_target(app).values()) == len(df)
    if arrival == "constant":
        gaps_ms = np.diff(np.sort(df["t_intended"].to_numpy())) * 1000.0
        assert 2.25 <= float(np.median(gaps_ms)) <= 2.75
        firsts = [v["first"] for v in seen_by_target(app).values()]
        assert max(firsts) - min(firsts) < 0.020  # the shards started together (seen by the target)
    else:
        gaps = np.diff(np.sort(df["t_intended"].to_numpy()))
        assert gaps.std() > 0.7 * gaps.mean()  # exponential gaps (std = mean), not a metronome


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """The CLI in its own process group, as a terminal runs it (Ctrl-C reaches the whole group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hubstress_ext", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def ctrl_c(proc: subprocess.Popen) -> None:
    """What a terminal's Ctrl-C does: SIGINT to every process of the group, workers included."""
    os.killpg(proc.pid, signal.SIGINT)


def _wait_for_load(app: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if seen_by_target(app):
            return
        time.sleep(0.05)
    raise AssertionError("no request reached the target")


def test_ctrl_c_stops_every_shard_within_a_second(app):
    proc = _cli("bench", f"{app}/shard", "--dask", "local:2", "--rate", "200", "--duration", "30", "--json")
    _wait_for_load(app)
    time.sleep(2.0)
    sent = time.monotonic()
    ctrl_c(proc)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 3.0, err
    assert proc.returncode == 130, err
    frozen = sum(v["n"] for v in seen_by_target(app).values())
    time.sleep(1.5)
    assert sum(v["n"] for v in seen_by_target(app).values()) == frozen  # nothing sent after the stop
    result = json.loads(out)
    assert result["status"] == "interrupted"
    assert {row["status"] for row in result["shard_table"]} == {"stopped"}
    assert result["requests"] == frozen


def _workers_of(proc: subprocess.Popen) -> list[psutil.Process]:
    """The Dask worker processes the CLI started (its spawned children)."""
    kids = psutil.Process(proc.pid).children(recursive=True)
    return [k for k in kids if "spawn_main" in " ".join(k.cmdline())]


def test_a_killed_worker_loses_its_shard_keeps_its_records_and_fails_the_run(app):
    proc = _cli("bench", f"{app}/shard", "--dask", "local:2", "--rate", "200", "--duration", "6", "--json")
    _wait_for_load(app)
    time.sleep(1.5)
    workers = _workers_of(proc)
    assert len(workers) == 2, [w.cmdline() for w in workers]
    before = seen_by_target(app)
    workers[0].send_signal(signal.SIGKILL)
    killed_at = time.time()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    result = json.loads(out)
    assert result["status"] == "degraded"
    table = {row["shard"]: row for row in result["shard_table"]}
    lost = [s for s, row in table.items() if row["status"] == "lost"]
    assert len(lost) == 1, table
    seen = seen_by_target(app)
    dead, alive = str(lost[0]), str(1 - lost[0])
    assert seen[dead]["last"] < killed_at + 0.05  # nothing from the dead shard after the kill
    assert seen[dead]["n"] >= before[dead]["n"] > 0
    assert seen[alive]["n"] == 600  # the other shard ran its whole 6 s at 100/s (200/s over 2)
    assert 0 < table[lost[0]]["requests"] <= seen[dead]["n"]  # its partial records were kept
    assert "lost" in err or any("lost" in w for w in result["warnings"])


def test_allow_lost_shards_accepts_a_degraded_run(app):
    proc = _cli(
        "bench",
        f"{app}/shard",
        "--dask",
        "local:2",
        "--rate",
        "100",
        "--duration",
        "4",
        "--allow-lost-shards",
        "--json",
    )
    _wait_for_load(app)
    time.sleep(1.0)
    _workers_of(proc)[1].send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    result = json.loads(out)
    assert result["status"] == "degraded"
    assert proc.returncode == 0, err


def test_the_token_never_travels_in_task_arguments(app):
    """Secrets reach workers apart from the task: its pickled arguments hold no token."""
    import pickle

    from hubstress_ext.loadgen.options import LoadOptions
    from hubstress_ext.loadgen.sharding import BenchShard

    job = BenchShard(LoadOptions(url=f"{app}/shard", token="s3cret-t0ken-value"), 0)
    secrets = job.take_secrets()
    assert secrets == {"token": "s3cret-t0ken-value"}
    assert b"s3cret-t0ken-value" not in pickle.dumps(job)
    run = make_run(
        "bench", url=f"{app}/shard", dask="local:2", requests=50, workers=2, token="s3cret-t0ken-value"
    ).execute()
    assert run.status == "finished", run.error
    assert "s3cret-t0ken-value" not in run.report() + json.dumps(run.report_json(), default=str)


def test_dask_errors_are_one_clear_line(app):
    out = subprocess.run(
        [sys.executable, "-m", "hubstress_ext", "bench", f"{app}/shard", "--dask", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--dask must be local:2" in out.stderr
    env = {**os.environ}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubstress_ext",
            "bench",
            f"{app}/shard",
            "--dask",
            "tcp://127.0.0.1:9",
            "--requests",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    said = out.stdout + out.stderr
    assert out.returncode == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in said
    assert "Traceback" not in out.stderr


def _spawned_once_by_shards(run, count: int) -> None:
    df = run.df
    spawns = df[(df["op"] == "spawn") & (df["attempt"] == 1)]
    assert len(spawns) == count and spawns["user"].nunique() == count  # each user exactly once
    assert set(spawns["shard"]) == {0, 1}  # ...by the shards, not the coordinator
    assert set(df.loc[df["op"] == "create", "shard"]) == {-1}  # the coordinator created them
    users = run.users_df
    assert users["deleted"].notna().all() and run.meta["left_on_hub"] == 0  # teardown complete
    assert run.hub_figures().spawns.get("success") == count  # the hub agrees
    assert list(run.shards["status"]) == ["finished", "finished"]
    assert run.shards["users"].sum() == count


def test_stress_test_on_the_sandbox_over_two_shards():
    run = make_run(
        "stress-test", sandbox=True, sandbox_spawner="sim", count=12, batch_size=4, dask="local:2"
    ).execute()
    assert run.exit_code == 0, run.report()
    _spawned_once_by_shards(run, 12)
    assert run.users_df["ready"].notna().all()


def test_session_test_on_the_sandbox_over_two_shards():
    run = make_run(
        "session-test",
        sandbox=True,
        sandbox_spawner="sim",
        count=8,
        arrival="burst",
        session="4",
        think="1",
        code="6*7",
        expect_output="42",
        dask="local:2",
    ).execute()
    assert run.exit_code == 0, run.report()
    _spawned_once_by_shards(run, 8)
    sessions = run.sessions_df
    assert len(sessions) == 8 and sessions["reason"].isna().all() and (sessions["executes"] >= 2).all()
    executes = run.df[run.df["op"] == "execute"]
    assert set(executes["shard"]) == {0, 1} and executes["error"].isna().all()


def test_ctrl_c_mid_class_over_two_shards_closes_kernels_then_removes_users(sim_hub, clean_hub, tmp_path):
    env = dict(os.environ, JUPYTERHUB_ENDPOINT=sim_hub.api_url, JUPYTERHUB_API_TOKEN=sim_hub.token)
    proc = _cli(
        "session-test",
        "--count",
        "6",
        "--arrival",
        "burst",
        "--session",
        "60",
        "--think",
        "1",
        "--dask",
        "local:2",
        "--json",
        "--save",
        str(tmp_path),
        env=env,
    )
    deadline = time.monotonic() + 90
    while len(clean_hub.active()) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(clean_hub.active()) == 6
    time.sleep(3.0)  # the students are running code
    ctrl_c(proc)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    result = json.loads(out)
    assert {row["status"] for row in result["shard_table"]} == {"stopped"}
    assert clean_hub.active() == set() and not clean_hub.group()  # servers stopped, users deleted
    assert result["executes"] >= 6 and not result["failures"]
    saved = load_run(next(tmp_path.iterdir()))
    records, users = saved.df, saved.users_df.set_index("user")
    stopped = records[(records["op"] == "kernel_stop") & (records["status"] == 204)]
    assert sorted(stopped["user"]) == sorted(users.index) and set(stopped["shard"]) == {0, 1}
    for user, end in stopped.groupby("user")["end"].max().items():
        assert end <= users.loc[user, "stop_requested"]  # the shard closed it before the server stop


def test_sweep_over_two_shards_sets_the_batch_size_once_per_cell(endpoint):
    run = make_run(
        "sweep", url=endpoint, dask="local:2", workers=[2, 8], batch_sizes=[1, 4], duration=2.0, warmup=0.2
    ).execute()
    assert run.status == "finished", run.report()
    cells = run.summary()
    assert len(cells) == 4 and (cells["errors"] == 0).all() and (cells["qps"] > 0).all(), run.report()
    assert sorted(cells["batch_size"]) == [1, 1, 4, 4]  # the coordinator set it; the endpoint agrees
    records = run.records_df
    assert set(records["shard"]) == {0, 1}, run.report()
    assert (records.groupby(["workers", "batch_size_setting"])["shard"].nunique() == 2).all(), run.report()


def test_a_notebooks_own_dask_client_in_the_magic_and_the_panel(app):
    from tests.kernel import errors, execute, text

    url = f"{app}/shard"
    outs = execute(
        [
            "from distributed import Client, LocalCluster\n"
            "client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None))",
            "%load_ext hubstress_ext\n"
            f"run = %hubstress bench {url} --dask client --requests 400 --workers 4\n"
            "assert run.status == 'finished', run.error\n"
            "assert run.df.groupby('shard').size().to_dict() == {0: 200, 1: 200}\n"
            "assert run.meta['dask']['cluster'].startswith(\"the notebook's Dask client\")\n"
            "print('magic ok')",
            "import hubstress_ext\n"
            f"p = hubstress_ext.panel(scenario='bench', url='{url}', dask=client)\n"
            "assert p.dask.value.startswith('client tcp://'), p.dask.value\n"
            "p.workers.value = 4\np.duration.value = '2'\nrun = p.start()\n"
            "assert run is not None, p.error.value\n"
            "assert p.wait(120), (run.status, run.error, p.error.value,\n"
            "    [s.row() for s in run.shard_states], run.coordinator and run.coordinator.states)\n"
            "assert run.status == 'finished', run.report()\n"
            "assert set(run.df['shard']) == {0, 1}, run.report()\n"
            "assert client.status == 'running', client.status  # left as it was\n"
            "print('panel ok')",
        ],
        timeout=240,
    )
    assert all(not errors(o) for o in outs), [errors(o) for o in outs]
    assert "magic ok" in text(outs[1]) and "panel ok" in text(outs[2])


def test_a_second_stop_abandons_the_shards_at_once(app):
    run = make_run("bench", url=f"{app}/shard", dask="local:2", rate=100, duration=30)
    run.start()
    _wait_for_load(app)
    run.stop()
    run.stop()
    asked = time.monotonic()
    assert run.wait(10), "the run did not end"
    assert time.monotonic() - asked < 5.0
    assert run.status == "interrupted" and run.exit_code == 130
    assert set(run.shards["status"]) <= {"abandoned", "stopped"}
    frozen = sum(v["n"] for v in seen_by_target(app).values())
    time.sleep(1.5)
    assert (
        sum(v["n"] for v in seen_by_target(app).values()) == frozen
    )  # the workers are gone with the cluster


def test_a_capacity_search_shards_every_probe_on_one_cluster(app):
    """capacity with --dask: each probe (and each reference load) is sharded as a bench is,
    on the one cluster the search opened; the search itself stays on the client."""
    run = make_run(
        "capacity",
        scenario="bench",
        probe_args=[f"{app}/shard", "--dask", "local:2", "--duration", "1"],
        vary="rate=40..80",
        slo=["errors<1%"],
        warmup=0,
    ).execute()
    assert run.status == "finished", run.error
    assert run.answers[0].outcome == "above", run.report()  # 40 and 80 /s: both pass
    assert len(run.runs) == 2
    for probe in run.runs:
        assert probe.status == "finished", probe.error
        assert sorted(probe.df["shard"].unique()) == [0, 1]  # the load came from both shards
    clusters = {id(r.cluster) for r in run.runs}
    assert len(clusters) == 1 and run.runs[0].cluster is not None  # opened once, not per probe
    assert len(run.meta["dask"]["workers"]) == 2
    assert [r["status"] for r in run.references] == ["finished"] * 3
