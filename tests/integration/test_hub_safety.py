"""A run touches only what it created: look-alike users survive every scenario (real sandbox hub)."""

import time
from urllib.parse import quote

import pytest

from hubstress_ext.hub.activity import ActivityStressRun
from hubstress_ext.hub.options import ActivityOptions, PurgeOptions, StressOptions
from hubstress_ext.hub.purge import PurgeRun
from hubstress_ext.hub.stress import StressTestRun

pytestmark = pytest.mark.slow

LOOK_ALIKES = ["hubstress-0", "hubstress-1"]


def opts(cls, hub, **kw):
    return cls(endpoint=hub.api_url, token=hub.token, **kw).resolve({})


def wait_active(admin, name, timeout=20.0):
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if name in admin.active():
            return
        time.sleep(0.1)
    raise AssertionError(f"{name}'s server did not start")


@pytest.fixture
def look_alikes(clean_hub):
    """Users with our prefix made by hand (no marker); hubstress-0 has a running server."""
    hub = clean_hub
    status, _ = hub.call("POST", "/users", {"usernames": LOOK_ALIKES})
    assert status == 201
    hub.call("POST", "/users/hubstress-0/server", {})
    wait_active(hub, "hubstress-0")
    yield hub
    for name in LOOK_ALIKES:
        hub.call("DELETE", f"/users/{name}")


def assert_untouched(hub):
    users = hub.users()
    assert set(LOOK_ALIKES) <= users, "a look-alike user was deleted"
    assert "hubstress-0" in hub.active(), "a look-alike's server was stopped"
    assert not set(LOOK_ALIKES) & set(hub.group() or []), "a look-alike was given the marker"


def test_look_alike_users_survive_stress_activity_and_purge(sim_hub, look_alikes):
    hub = look_alikes
    stress = StressTestRun(opts(StressOptions, sim_hub, count=2, batch_size=1)).execute()
    assert stress.exit_code == 0, stress.error
    assert len(stress.created) == 2 and not set(stress.created) & set(LOOK_ALIKES)
    assert stress.users_df["ready"].notna().all()
    assert_untouched(hub)

    activity = ActivityStressRun(opts(ActivityOptions, sim_hub, count=2, workers=2, requests=10)).execute()
    assert activity.exit_code == 0, activity.error
    assert not set(activity.created) & set(LOOK_ALIKES)
    assert set(activity.df["user"].dropna()) <= set(activity.created)  # never sent to a look-alike
    assert_untouched(hub)

    kept = StressTestRun(opts(StressOptions, sim_hub, count=1, batch_size=1, keep=True)).execute()
    purge = PurgeRun(opts(PurgeOptions, sim_hub)).execute()
    assert purge.exit_code == 0, purge.error
    assert purge.removed == kept.created
    assert_untouched(hub)


def test_look_alike_users_survive_a_storm_over_two_dask_shards(sim_hub, look_alikes):
    """Shards get users from the coordinator only: the look-alikes stay out of every shard."""
    hub = look_alikes
    run = StressTestRun(opts(StressOptions, sim_hub, count=4, batch_size=2, dask="local:2")).execute()
    assert run.exit_code == 0, run.report()
    assert len(run.created) == 4 and not set(run.created) & set(LOOK_ALIKES)
    assert set(run.df["shard"]) >= {0, 1}  # both shards did work
    assert set(run.df["user"].dropna()) <= set(run.created)  # no request named a look-alike
    assert_untouched(hub)


def test_look_alike_users_survive_a_class_of_students(sim_hub, look_alikes):
    from hubstress_ext import make_run

    run = make_run(
        "session-test",
        endpoint=sim_hub.api_url,
        token=sim_hub.token,
        count=3,
        arrival="burst",
        session=2.0,
        think=0.5,
        code="5*4",
        expect_output="20",
    ).execute()
    assert run.exit_code == 0, run.report()
    assert not set(run.created) & set(LOOK_ALIKES)
    assert set(run.df["user"].dropna()) <= set(run.created)  # nothing sent for a look-alike
    assert_untouched(look_alikes)


def test_a_bulk_create_that_collides_never_adopts_existing_users(sim_hub, look_alikes, monkeypatch):
    """Even when the names picked exist (a race with someone else), only 201-created users are ours."""
    hub = look_alikes
    hub.call("POST", "/users", {"usernames": ["hubstress-3"]})  # also a partial collision
    try:

        async def from_zero(api, prefix):
            return 0

        monkeypatch.setattr("hubstress_ext.hub.scenario.next_free_index", from_zero)
        run = StressTestRun(opts(StressOptions, sim_hub, count=3, batch_size=2)).execute()
        # [0, 1] -> 409; [2, 3] -> 201 for 2 only; [4, 5] -> 201: three users of its own
        assert run.exit_code == 0, run.error
        assert run.created == ["hubstress-2", "hubstress-4", "hubstress-5"]
        assert run.creation.skipped == ["hubstress-0", "hubstress-1", "hubstress-3"]
        assert set(run.users_df["user"]) == set(run.created)
        assert_untouched(hub)
        assert "hubstress-3" in hub.users()
    finally:
        hub.call("DELETE", "/users/hubstress-3")


def test_purge_matches_ascii_digits_only(sim_hub, clean_hub):
    hub = clean_hub
    odd = ["hubstress-\u0663", "hubstress-\uff16"]  # Arabic-Indic three, fullwidth six
    status, _ = hub.call("POST", "/users", {"usernames": odd})
    assert status == 201
    hub.call("POST", "/groups/hubstress")
    hub.call("POST", "/groups/hubstress/users", {"users": odd})
    try:
        run = PurgeRun(opts(PurgeOptions, sim_hub)).execute()
        assert run.exit_code == 0 and run.removed == []
        assert set(odd) <= hub.users()
    finally:
        for name in odd:
            hub.call("DELETE", f"/users/{quote(name, safe='')}")


def test_expected_answers_are_not_errors(sim_hub, clean_hub):
    """The 404 of the marker group on a clean hub is an answer, not an error in the report."""
    activity = ActivityStressRun(opts(ActivityOptions, sim_hub, count=2, workers=2, requests=4)).execute()
    assert activity.exit_code == 0, activity.error
    groups = activity.df[activity.df["op"] == "group"]
    assert 404 in set(groups["status"])  # the look-up happened and was answered 404...
    assert activity.summary().loc["group", "errors"] == 0  # ...and is not counted as an error
    purge = PurgeRun(opts(PurgeOptions, sim_hub)).execute()
    assert purge.exit_code == 0
    assert int(purge.summary()["errors"].sum()) == 0


def test_dry_runs_list_only_what_they_would_touch(sim_hub, look_alikes, capsys):
    """A dry run reads the hub (never writes): look-alikes are "left alone", never DELETEd;
    purge --dry-run lists every user it would delete."""
    hub = look_alikes
    kept = StressTestRun(opts(StressOptions, sim_hub, count=2, batch_size=2, keep=True)).execute()
    assert kept.exit_code == 0, kept.error
    before = (hub.users(), hub.active(), set(hub.group()))
    capsys.readouterr()
    storm = StressTestRun(opts(StressOptions, sim_hub, count=2, batch_size=2, dry_run=True)).execute()
    plan = capsys.readouterr().out
    assert storm.exit_code == 0, storm.error
    for name in LOOK_ALIKES:
        assert f"left alone (not created by hubstress): {name}" in plan
        assert f"/users/{name}" not in plan, plan
    assert "(read from the hub)" in plan
    purge = PurgeRun(opts(PurgeOptions, sim_hub, dry_run=True)).execute()
    plan = capsys.readouterr().out
    assert purge.exit_code == 0, purge.error
    for name in kept.created:
        assert f"DRY-RUN DELETE /users/{name}\n" in plan, plan
    assert all(f"left alone (not created by hubstress): {n}" in plan for n in LOOK_ALIKES)
    assert not any(f"/users/{n}" in plan for n in LOOK_ALIKES)
    assert (hub.users(), hub.active(), set(hub.group())) == before  # nothing was touched
    assert_untouched(hub)
    PurgeRun(opts(PurgeOptions, sim_hub)).execute()
