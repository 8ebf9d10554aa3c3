"""A saved run, reopened, prints exactly what the live run printed, for every scenario: both
are computed by the scenario's one ``report_of`` from the same record (``engine.record``)."""

import pandas as pd
import pytest

from hubstress_ext import load_run, make_run
from hubstress_ext.engine import registry

pytestmark = pytest.mark.slow


def hub(sim_hub, **values):
    return {"endpoint": sim_hub.api_url, "token": sim_hub.token, **values}


def stress_test(sim_hub, endpoint):
    return make_run(
        "stress-test", **hub(sim_hub, count=3, batch_size=3, scrape_metrics=0.2, slo=["ready.p90<60s"])
    )


def activity_stress_test(sim_hub, endpoint):
    return make_run("activity-stress-test", **hub(sim_hub, count=2, workers=2, duration=1.0))


def session_test(sim_hub, endpoint):
    return make_run("session-test", **hub(sim_hub, count=2, batch_size=2, session="2", think="0.2-0.4"))


def purge(sim_hub, endpoint):
    kept = make_run("stress-test", **hub(sim_hub, count=2, batch_size=2, keep=True)).execute()
    assert kept.exit_code == 0, kept.report()
    return make_run("purge", **hub(sim_hub))


def bench(sim_hub, endpoint):
    return make_run("bench", url=endpoint, workers=4, requests=200, slo=["latency.p99<5s"])


def sweep(sim_hub, endpoint):
    return make_run("sweep", url=endpoint, workers=[2, 4], batch_sizes=[1, 4], duration=0.3, warmup=0.1)


def capacity(sim_hub, endpoint):
    return make_run(
        "capacity",
        scenario="bench",
        probe={"url": endpoint, "duration": 0.2},
        vary="workers=1..8",
        slo=["latency.p99<5s"],
        warmup=0,
    )


RUNS = {
    "stress-test": stress_test,
    "activity-stress-test": activity_stress_test,
    "session-test": session_test,
    "purge": purge,
    "bench": bench,
    "sweep": sweep,
    "capacity": capacity,
}


def test_every_built_in_scenario_is_reopened_here():
    assert set(RUNS) == set(registry.BUILT_IN)


@pytest.mark.parametrize("name", list(RUNS))
def test_a_reopened_run_prints_what_the_live_run_printed(name, sim_hub, clean_hub, endpoint, tmp_path):
    run = RUNS[name](sim_hub, endpoint).execute()
    assert run.exit_code == 0, run.report()
    live_report, live_summary = run.report(), run.summary()
    saved = load_run(run.save(tmp_path))
    assert saved.report() == live_report
    pd.testing.assert_frame_equal(saved.summary(), live_summary, check_dtype=False, check_index_type=False)
    assert saved.status == run.status and saved.scenario == name


def test_a_dry_run_and_a_run_that_sent_no_load_reopen_the_same(sim_hub, tmp_path):
    for values in (
        hub(sim_hub, count=2, dry_run=True),
        {"endpoint": "http://127.0.0.1:1/hub/api", "token": "x", "count": 1, "slo": ["ready.p90<1s"]},
    ):
        run = make_run("stress-test", **values).execute()
        saved = load_run(run.save(tmp_path))
        assert saved.report() == run.report()
