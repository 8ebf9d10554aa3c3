"""stress-test against a real JupyterHub (the sandbox)."""

import pytest

from hubstress_ext.hub.options import StressOptions
from hubstress_ext.hub.stress import StressTestRun
from hubstress_ext.sandbox.hub import Sandbox
from tests.conftest import HubAdmin

pytestmark = pytest.mark.slow


def stress(hub, **kw) -> StressTestRun:
    opts = StressOptions(endpoint=hub.api_url, token=hub.token, **kw).resolve({})
    return StressTestRun(opts).execute()


def test_spawn_storm_times_every_user_and_cleans_up(sim_hub, clean_hub):
    before = clean_hub.users()
    run = stress(sim_hub, count=12, batch_size=4)
    assert run.status == "finished" and run.exit_code == 0, run.error
    users = run.users_df
    assert len(users) == 12 and users["ready"].notna().all()
    # per-user latency at ms resolution, between the sim spawner's 50 and 200 ms (+ hub work)
    assert users["spawn_latency_s"].between(0.04, 10).all()
    assert users["spawn_latency_s"].nunique() > 6
    assert users["stopped"].notna().all() and users["deleted"].notna().all()
    phases = run.phases()
    assert list(phases.index) == ["create", "spawn", "ready", "stop", "delete"]
    assert phases.loc["ready", "count"] == 12 and phases.loc["ready", "errors"] == 0
    assert set(run.df["op"]) >= {"create", "group", "spawn", "stop", "delete"}
    assert clean_hub.users() == before  # nothing left behind
    assert clean_hub.group() is None  # and the marker group went with its last member


def test_keep_leaves_users_and_names_continue(sim_hub, clean_hub):
    first = stress(sim_hub, count=3, batch_size=3, keep=True)
    assert first.exit_code == 0
    assert sorted(clean_hub.group()) == ["hubstress-0", "hubstress-1", "hubstress-2"]
    assert {"hubstress-0", "hubstress-1", "hubstress-2"} <= clean_hub.active()
    second = stress(sim_hub, count=2, batch_size=2, keep=True)
    assert sorted(second.created) == ["hubstress-3", "hubstress-4"]


def test_failing_spawns_are_reported_with_their_reason(sim_hub, clean_hub):
    run = stress(sim_hub, count=3, batch_size=3, profile="fail")
    assert run.status == "finished" and run.exit_code == 1
    failures = run.failures()
    ((cause, reason),) = failures.index
    assert "simulated spawn failure: image pull back-off" in reason and cause == "spawner error"
    assert failures.loc[(cause, reason), "users"] == 3
    assert run.phases().loc["ready", "errors"] == 3
    assert clean_hub.group() is None


def test_slow_spawns_are_followed_on_the_progress_stream(sim_hub, clean_hub):
    # 'slow' takes 3-5 s; with slow_spawn_timeout lowered the hub answers 202 and we follow progress
    run = stress(sim_hub, count=2, batch_size=2, profile="slow")
    assert run.exit_code == 0
    assert run.users_df["spawn_latency_s"].between(2.9, 15).all()


def test_429_storm_is_retried_honouring_retry_after():
    with Sandbox("sim", concurrent_spawn_limit=2, throttle_retry=(1, 2), sim_delay=(0.5, 0.8)) as hub:
        run = stress(hub, count=8, batch_size=8, max_retries=30)
        assert run.exit_code == 0, run.failures()
        df = run.df
        throttled = df[(df["op"] == "spawn") & (df["status"] == 429)]
        assert len(throttled) > 0 and throttled["will_retry"].all()
        assert run.phases().loc["spawn", "retries"] == len(throttled)
        assert (run.users_df["spawn_attempts"] > 1).any()
        # the hub asked for 1 s: a retried user waited at least that between its attempts
        retried = run.users_df[run.users_df["spawn_attempts"] > 1]
        assert (retried["spawn_latency_s"] >= 1.0).all()
        assert HubAdmin(hub).group() is None


def test_wrong_token_is_one_clear_error(sim_hub):
    opts = StressOptions(endpoint=sim_hub.api_url, token="not-a-real-token", count=1).resolve({})
    run = StressTestRun(opts).execute()
    assert run.status == "failed" and run.exit_code == 1
    assert run.error.startswith("token rejected or lacks admin scopes")
    assert "not-a-real-token" not in run.error


def test_dead_endpoint_fails_fast_and_clearly():
    opts = StressOptions(endpoint="http://127.0.0.1:9", token="x", count=1, max_retries=1).resolve({})
    run = StressTestRun(opts).execute()
    assert run.status == "failed"
    assert "cannot reach the hub API" in run.error and "connection failed" in run.error


def test_ramp_spreads_spawn_requests(sim_hub, clean_hub):
    run = stress(sim_hub, count=5, batch_size=5, ramp=2.0)
    assert run.exit_code == 0
    requested = run.users_df["spawn_requested"].sort_values()
    assert requested.iloc[-1] - requested.iloc[0] >= 1.5  # 4 intervals of 0.4 s
    assert requested.diff().dropna().min() >= 0.3


def test_named_servers(sim_hub, clean_hub):
    run = stress(sim_hub, count=2, batch_size=2, server_name="gpu", keep=True)
    assert run.exit_code == 0
    for name in run.created:
        _, model = clean_hub.call("GET", f"/users/{name}")
        assert model["servers"]["gpu"]["ready"] is True


def test_hub_metrics_are_scraped_during_the_run_and_saved(sim_hub, clean_hub, tmp_path):
    from hubstress_ext import load_run

    run = stress(sim_hub, count=4, batch_size=4, profile="slow", scrape_metrics=0.5)
    assert run.status == "finished", run.error
    metrics = run.metrics_df
    assert metrics["time"].nunique() >= 3  # several scrapes over the 3-5 s spawns
    # the hub counts every spawn it completes in its spawn-duration histogram; the first scrape
    # comes before any 3-5 s spawn finished and the run scrapes once more when the load ends,
    # so the count grows by exactly our 4 spawns (a gauge such as running_servers may not move
    # between two scrapes, so it is no evidence)
    spawned = metrics[
        (metrics["metric"] == "jupyterhub_server_spawn_duration_seconds_count")
        & metrics["labels"].str.contains('"status": "success"')
    ]
    per_scrape = spawned.groupby("time")["value"].sum().sort_index()
    assert per_scrape.iloc[-1] - per_scrape.iloc[0] == 4
    assert (run.df["op"] == "metrics").sum() == metrics["time"].nunique()  # each scrape is a record
    saved = run.save(tmp_path)
    assert (saved / "metrics.csv").is_file() and load_run(saved).status == "finished"


def test_metrics_scrape_without_the_scope_is_one_warning(sim_hub, clean_hub, monkeypatch):
    from hubstress_ext.hub.metrics import MetricsScraper

    async def denied(self):
        from hubstress_ext.http.client import Response

        return Response(403, b'{"message": "Forbidden"}')

    monkeypatch.setattr("hubstress_ext.hub.api.HubAPI.metrics", denied)
    run = stress(sim_hub, count=2, batch_size=2, scrape_metrics=0.2)
    assert run.status == "finished"
    assert "read:metrics" in run.meta["metrics_error"] and run.metrics_df.empty
    assert isinstance(run.scraper, MetricsScraper)
