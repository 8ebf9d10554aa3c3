"""activity-stress-test, purge and dry-run against a real JupyterHub (the sandbox)."""

import pytest

from hubstress_ext.hub.activity import ActivityStressRun
from hubstress_ext.hub.options import ActivityOptions, PurgeOptions, StressOptions
from hubstress_ext.hub.purge import PurgeRun
from hubstress_ext.hub.stress import StressTestRun

pytestmark = pytest.mark.slow


def opts(cls, hub, **kw):
    return cls(endpoint=hub.api_url, token=hub.token, **kw).resolve({})


def test_activity_storm_reports_probe_latency(sim_hub, clean_hub):
    run = ActivityStressRun(opts(ActivityOptions, sim_hub, count=5, workers=4, duration=1.5)).execute()
    assert run.exit_code == 0, run.error
    summary = run.summary()
    assert summary.loc["activity", "count"] > 20 and summary.loc["activity", "errors"] == 0
    assert summary.loc["probe", "count"] >= 5
    assert summary.loc["probe", "p99_ms"] >= summary.loc["probe", "p50_ms"] > 0
    assert set(run.df.loc[run.df["op"] == "activity", "user"]) == set(run.created)
    assert clean_hub.group() is None


def test_activity_bounded_by_request_count(sim_hub, clean_hub):
    run = ActivityStressRun(opts(ActivityOptions, sim_hub, count=3, workers=3, requests=17)).execute()
    assert run.summary().loc["activity", "count"] == 17


def test_purge_removes_only_this_tools_users(sim_hub, clean_hub):
    hub = clean_hub
    # an ordinary user, a user with our prefix but no marker, and a marker member without our prefix
    hub.call("POST", "/users", {"usernames": ["alice", "hubstress-900", "teacher"]})
    kept = StressTestRun(opts(StressOptions, sim_hub, count=3, batch_size=3, keep=True)).execute()
    assert kept.exit_code == 0
    hub.call("POST", "/groups/hubstress/users", {"users": ["teacher"]})
    try:
        run = PurgeRun(opts(PurgeOptions, sim_hub)).execute()
        assert run.exit_code == 0, run.error
        assert sorted(run.removed) == sorted(kept.created)
        users = hub.users()
        assert not set(kept.created) & users
        assert {"alice", "hubstress-900", "teacher"} <= users
        assert hub.group() == ["teacher"]
    finally:
        for name in ("alice", "hubstress-900", "teacher"):
            hub.call("DELETE", f"/users/{name}")


def test_purge_with_nothing_to_do(sim_hub, clean_hub):
    run = PurgeRun(opts(PurgeOptions, sim_hub)).execute()
    assert run.exit_code == 0 and run.removed == []


def test_dry_run_touches_nothing(sim_hub, clean_hub, capsys):
    before = clean_hub.users()
    run = StressTestRun(opts(StressOptions, sim_hub, count=4, batch_size=2, dry_run=True)).execute()
    assert run.exit_code == 0
    # nothing written: the only requests sent read the hub's users and the marker group
    assert set(run.df["method"]) == {"GET"} and set(run.df["op"]) <= {"list_users", "group"}, run.df
    out = capsys.readouterr().out
    assert "DRY-RUN POST   /users/hubstress-3/server" in out
    assert clean_hub.users() == before and clean_hub.group() is None


def test_activity_dry_run_is_a_bounded_plan(sim_hub, clean_hub, capsys):
    run = ActivityStressRun(opts(ActivityOptions, sim_hub, count=3, workers=2, dry_run=True)).execute()
    assert run.exit_code == 0
    out = capsys.readouterr().out
    assert out.count("/activity") == 3 and out.count("DRY-RUN GET    /users/hubstress-") == 1
    assert clean_hub.group() is None
