"""The hub's account and the verdict, without a hub: the --slo grammar and its evaluation,
JUnit XML, percentiles from histogram buckets, failure causes, and each bottleneck rule."""

import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from hubstress_ext.engine import slo
from hubstress_ext.errors import OptionError
from hubstress_ext.http.client import Response
from hubstress_ext.hub.causes import cause_of_answer, cause_of_message
from hubstress_ext.results.bottleneck import Evidence, bottleneck
from hubstress_ext.results.hub_figures import HubFigures, bucket_text, hub_figures, quantile_bucket


@pytest.mark.parametrize(
    ("text", "figure", "op", "value"),
    [
        ("ready.p90<60s", "ready.p90", "<", 60.0),
        ("execute.p99 <= 500ms", "execute.p99", "<=", 0.5),
        ("failures<1%", "failures", "<", 0.01),
        ("hub.event_loop.p99<0.5s", "hub.event_loop.p99", "<", 0.5),
        ("hub.throttled<1", "hub.throttled", "<", 1.0),
        ("qps>=100", "qps", ">=", 100.0),
    ],
)
def test_rules(text, figure, op, value):
    rule = slo.parse_rule(text)
    assert (rule.figure, rule.op) == (figure, op) and rule.value == pytest.approx(value)


@pytest.mark.parametrize("text", ["ready.p90", "ready.p90 << 1", "p90<1h", "<1s", "ready.p90<fast"])
def test_bad_rules_say_what_a_rule_is(text):
    with pytest.raises(OptionError, match="a rule is FIGURE OP NUMBER"):
        slo.parse_rules(text)


def test_rules_from_text_a_list_or_a_scenario_file():
    assert slo.normalize("ready.p90<60s, failures<1%") == ["ready.p90<60s", "failures<1%"]
    assert slo.normalize(["ready.p90<60s", "failures<1%;execute.p99<2s"]) == [
        "ready.p90<60s",
        "failures<1%",
        "execute.p99<2s",
    ]
    assert slo.normalize(None) == []
    with pytest.raises(OptionError):
        slo.normalize(5)


def test_evaluation_passes_fails_skips_and_never_passes_a_typo():
    figures = {"ready.p90": 2.0, "failures": 0.0, "ready.p50": 1.0}
    rules = ["ready.p90<1s", "failures<1%", "hub.event_loop.p99<0.5s", "redy.p90<60s"]
    out = slo.evaluate(rules, figures, optional=("hub.",))
    assert [o.passed for o in out] == [False, True, None, False]
    # a figure the scenario does not declare optional is never skipped: a bench has no hub.*
    assert slo.evaluate(["hub.event_loop.p99<0.5s"], figures)[0].passed is False
    assert "2.000s" in out[0].note and "no such figure" in out[3].note and "ready.p50" in out[3].note
    assert not slo.passed(out)
    lines = slo.verdict_lines(out, run_ok=True)
    assert lines[1] == "verdict: FAIL: ready.p90<1s, redy.p90<60s"
    assert slo.verdict_lines(slo.evaluate(["failures<1%"], figures), True)[1] == "verdict: PASS"
    assert slo.verdict_lines([], False)[1] == "verdict: FAIL: the run itself did not succeed"


def test_junit_xml_is_valid_and_counts_what_failed():
    out = slo.evaluate(
        ["ready.p90<1s", "failures<1%", "hub.throttled<1"], {"ready.p90": 2.0, "failures": 0.0}, ("hub.",)
    )
    suite = ET.fromstring(slo.junit_xml("hubstress.stress-test", out, True, "", 12.5))
    assert suite.get("tests") == "4" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    failed = [c.get("name") for c in suite if c.find("failure") is not None]
    assert failed == ["ready.p90<1s"]
    broken_run = ET.fromstring(slo.junit_xml("s", [], False, "hub unreachable & gone", 1.0))
    assert broken_run.get("failures") == "1" and "hub unreachable & gone" in broken_run[0][0].text


def test_quantiles_from_buckets_are_the_bucket_they_fall_in_said_as_a_bound():
    """A histogram says which bucket a percentile is in, no more: the hub's p90 is "<= 25 s",
    never 25.0 beside a measured 16.5 as if both were measurements."""
    buckets = [(0.1, 10.0), (0.2, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert quantile_bucket(buckets, 0.5) == (0.1, 0.2)
    assert quantile_bucket(buckets, 0.3) == (0.1, 0.2)
    assert quantile_bucket(buckets, 0.9) == (0.2, 0.5)
    assert all(math.isnan(x) for x in quantile_bucket([(1.0, 0.0), (math.inf, 0.0)], 0.5))
    assert quantile_bucket([(1.0, 0.0), (math.inf, 4.0)], 0.5) == (1.0, math.inf)
    assert bucket_text((15.0, 25.0)) == "<= 25 s (its bucket 15-25)"
    assert bucket_text((1.0, math.inf)) == "> 1 s (its last bucket)"


def metrics_frame(before, after):
    rows = []
    for t, samples in ((1.0, before), (2.0, after)):
        for name, labels, value in samples:
            rows.append((t, name, labels, value))
    return pd.DataFrame(rows, columns=["time", "metric", "labels", "value"])


def test_hub_figures_are_the_runs_share_of_the_hubs_counters():
    spawn = "jupyterhub_server_spawn_duration_seconds"
    ok = '"reason": "", "status": "success"'
    before = [
        (f"{spawn}_count", '{"reason": "", "status": "success"}', 3.0),
        (f"{spawn}_bucket", '{"le": "0.5", ' + ok + "}", 3.0),
        (f"{spawn}_bucket", '{"le": "1.0", ' + ok + "}", 3.0),
        (f"{spawn}_bucket", '{"le": "+Inf", ' + ok + "}", 3.0),
        (
            "jupyterhub_request_duration_seconds_count",
            '{"code": "429", "handler": "H", "method": "POST"}',
            2.0,
        ),
        ("jupyterhub_running_servers", "", 1.0),
    ]
    after = [
        (f"{spawn}_count", '{"reason": "", "status": "success"}', 13.0),
        (f"{spawn}_count", '{"reason": "throttled", "status": "failure"}', 7.0),
        (f"{spawn}_bucket", '{"le": "0.5", ' + ok + "}", 3.0),
        (f"{spawn}_bucket", '{"le": "1.0", ' + ok + "}", 13.0),
        (f"{spawn}_bucket", '{"le": "+Inf", ' + ok + "}", 13.0),
        (
            "jupyterhub_request_duration_seconds_count",
            '{"code": "429", "handler": "H", "method": "POST"}',
            9.0,
        ),
        ("jupyterhub_running_servers", "", 11.0),
    ]
    figures = hub_figures(metrics_frame(before, after))
    assert figures.spawns == {"success": 10, "failure/throttled": 7} and figures.throttled == 7
    assert 0.5 < figures.spawn_p50_s <= 1.0  # the run's 10 spawns all fell in (0.5, 1]
    assert figures.refused_429 == {"H": 7} and figures.running_servers_max == 11
    assert hub_figures(pd.DataFrame(columns=["time", "metric", "labels", "value"])) is None


def test_failure_causes():
    assert cause_of_answer(Response(429, headers={"Retry-After": "3"})) == "throttled"
    assert cause_of_answer(Response(429)) == "hub full"
    assert cause_of_answer(Response(503)) == "proxy error"
    assert cause_of_answer(Response(500)) == "spawner error"
    assert cause_of_answer(Response(None, error="connection failed: refused")) == "hub unreachable"
    assert cause_of_answer(Response(403)) == "refused"
    assert cause_of_message("Spawner failed to start [timeout]") == "spawn timeout"
    assert cause_of_message("image pull back-off") == "spawner error"
    assert cause_of_message("progress stream: HTTP 503") == "proxy error"


def resources(role_pcts, seconds=10, wait=None):
    rows = []
    for role, pct in role_pcts.items():
        waiting = (wait or {}).get(role, 0.0)
        for t in range(seconds + 1):
            now = (pct if t else 0.0, pct / 100 * t, 100.0, waiting if t else 0.0, waiting / 100 * t)
            rows.append((float(t), role, *now))
    columns = ["time", "role", "cpu_pct", "cpu_s", "rss_mb", "wait_pct", "wait_s"]
    return pd.DataFrame(rows, columns=columns)


USERS = pd.DataFrame({"user": ["a"], "cause": [None]})
QUIET = resources({"hub": 20.0, "proxy": 5.0})


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (
            Evidence(HubFigures(spawns={"failure/too-many-users": 4}), USERS, QUIET, 5, 10),
            "the hub is full: 4",
        ),
        (
            Evidence(HubFigures(spawns={"failure/throttled": 9}), USERS, QUIET, 5),
            "9 429s from concurrent_spawn_limit=5",
        ),
        (Evidence(None, pd.DataFrame({"user": ["a"], "cause": ["throttled"]}), QUIET), "1 429s from"),
        (Evidence(HubFigures(), USERS, resources({"hub": 98.0, "proxy": 5.0})), "hub CPU at 98 % for 10 s"),
        (Evidence(HubFigures(), USERS, resources({"hub": 30.0, "proxy": 95.0})), "proxy CPU at 95 %"),
        (
            Evidence(HubFigures(), USERS, resources({"hub": 30.0, "proxy": 78.0}, wait={"proxy": 18.0})),
            "proxy CPU at 78 % (+18 % waiting for a core: the machine's cores are shared) for 10 s",
        ),
        (Evidence(HubFigures(proxy_add_p99_s=2.3), USERS, QUIET), "proxy p99 2.3 s"),
        (Evidence(HubFigures(event_loop_p99_s=0.75), USERS, QUIET), "event loop lagged (p99 0.75 s)"),
        (
            Evidence(HubFigures(), pd.DataFrame({"user": ["a"], "cause": ["spawner error"]}), QUIET),
            "failed in",
        ),
        (Evidence(HubFigures(), USERS, QUIET), "no limit reached: the hub kept up (hub CPU peak 20 %)"),
        (Evidence(None, USERS, pd.DataFrame()), "no limit reached"),
    ],
)
def test_each_bottleneck_rule(evidence, expected):
    assert expected in bottleneck(evidence)


def spawn_records(statuses, wait_s=2.0):
    """One user's spawn attempts, each retried ``wait_s`` after the last (as Retry-After says)."""
    from hubstress_ext.http.records import RECORD_COLUMNS

    rows, t = [], 100.0
    for i, status in enumerate(statuses):
        retry = i < len(statuses) - 1
        rows.append(
            dict(
                zip(
                    RECORD_COLUMNS,
                    [
                        "spawn",
                        "POST",
                        "/users/u/server",
                        t,
                        t + 0.01,
                        10.0,
                        status,
                        None,
                        i + 1,
                        "u",
                        retry,
                        False,
                    ],
                    strict=True,
                )
            )
        )
        t += 0.01 + wait_s
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def test_what_the_client_saw_names_the_throttle_without_the_hub_s_metrics():
    """56 retries after 429 and no read:metrics: never "the hub kept up"."""
    records = spawn_records([429] * 5 + [202], wait_s=2.0)
    line = bottleneck(Evidence(None, USERS, QUIET, 3, records=records))
    assert "5 429s from concurrent_spawn_limit=3" in line
    assert "hubstress got 5 x 429, waited 10.0 s on Retry-After, summed over requests" in line
    assert "not visible without read:metrics" in line and "kept up" not in line


def test_failed_users_and_sessions_are_named_not_kept_up():
    users = pd.DataFrame({"user": ["a", "b"], "reason": [None, "HTTP 503"], "cause": [None, "proxy error"]})
    assert "1 of 2 user(s) failed, 1 by proxy error (in the proxy)" in bottleneck(
        Evidence(HubFigures(), users, QUIET)
    )
    sessions = pd.DataFrame({"user": ["a"], "reason": ["kernel start failed: HTTP 500: Unhandled error"]})
    line = bottleneck(Evidence(HubFigures(), USERS, QUIET, sessions=sessions))
    assert "1 of 1 session(s) failed" in line and "(in the single-user server)" in line
    sessions = pd.DataFrame({"user": ["a"], "reason": ["login failed: HTTP 404"]})
    assert "(in the hub's login)" in bottleneck(Evidence(None, USERS, QUIET, sessions=sessions))
    fives = spawn_records([503, 503, 200], wait_s=0.5).assign(op="activity")
    assert "hubstress got 2 x 503" in bottleneck(Evidence(HubFigures(), USERS, QUIET, records=fives))


def test_the_process_busy_longer_is_the_limit_and_the_other_is_named():
    """A hub busy for its spawn burst (4 s) and a proxy busy all class long (10 s): the proxy."""
    hub = resources({"hub": 95.0}, seconds=4)
    proxy = resources({"proxy": 95.0}, seconds=10)
    both = pd.concat([hub, proxy, resources({"servers": 5.0})], ignore_index=True)
    line = bottleneck(Evidence(HubFigures(), USERS, both))
    assert line.startswith("proxy CPU at 95 %") and "(the hub was busy too, for 4 s)" in line


def test_a_process_short_of_a_core_is_not_the_limit_by_its_wait_alone():
    # 60 % running + 20 % waiting: it asked for 80 % of a core, under the 90 % line
    quiet = resources({"hub": 20.0, "proxy": 60.0}, wait={"proxy": 20.0})
    assert "no limit reached" in bottleneck(Evidence(HubFigures(), USERS, quiet))
    # a run saved before the wait was sampled (no wait columns) is judged on CPU alone
    old = resources({"hub": 20.0, "proxy": 95.0}).drop(columns=["wait_pct", "wait_s"])
    assert "proxy CPU at 95 % for 10 s" in bottleneck(Evidence(HubFigures(), USERS, old))


def test_the_sampler_sees_processes_waiting_for_a_core():
    """More busy loops than cores: each runs part of the time and waits the rest; running plus
    waiting is (nearly) all of the time, which is what says a process is saturated."""
    import os
    import subprocess
    import sys
    import time

    import psutil

    from hubstress_ext.results.resources import busy_seconds, resource_summary
    from hubstress_ext.sandbox.resources import ResourceSampler

    if not os.path.exists("/proc/self/schedstat"):
        pytest.skip("the run-queue wait is read from Linux's /proc/PID/schedstat")
    cores = len(os.sched_getaffinity(0))
    burn = "import time\nt = time.time()\nwhile time.time() - t < 3: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(cores + 1)]
    try:

        class FakeSandbox:
            def processes(self):
                return {"burner": [psutil.Process(burners[0].pid)]}

        sampler = ResourceSampler(FakeSandbox(), interval=0.5)
        time.sleep(0.3)
        for _ in range(5):
            sampler.sample()
            time.sleep(0.4)
        sampler.sample()
    finally:
        for p in burners:
            p.kill()
            p.wait()
    frame = sampler.to_frame()
    summary = resource_summary(frame).loc["burner"]
    print(summary.to_dict())
    assert summary["wait_mean_pct"] > 5  # more loops than cores: someone waits, and it is seen
    assert summary["cpu_mean_pct"] + summary["wait_mean_pct"] > 85
    assert busy_seconds(frame, "burner") > 0


def test_a_saturated_machine_is_named_when_no_process_of_the_hub_is():
    # 20 real servers starting at once on 2 cores: they ask for 4 cores' worth, hub and proxy idle
    busy = resources({"hub": 20.0, "proxy": 5.0, "servers": 150.0}, wait={"servers": 250.0})
    line = bottleneck(Evidence(HubFigures(), USERS, busy, cores=2))
    assert line == (
        "this machine's 2 cores were saturated for 10 s, mostly by the servers (CPU 150 %, +250 % "
        "waiting for a core): the machine running the sandbox, not the hub, set the pace"
    )
    # the same on a machine with 8 cores is no limit; unknown cores (a saved run): not judged
    assert "no limit reached" in bottleneck(Evidence(HubFigures(), USERS, busy, cores=8))
    assert "no limit reached" in bottleneck(Evidence(HubFigures(), USERS, busy))
    # a specific rule still wins over the machine
    throttled = Evidence(HubFigures(spawns={"failure/throttled": 3}), USERS, busy, 5, cores=2)
    assert bottleneck(throttled).startswith("3 429s from concurrent_spawn_limit=5")


def test_a_short_busy_moment_is_not_the_limit():
    burst = resources({"hub": 20.0}, seconds=30)
    burst.loc[(burst["role"] == "hub") & burst["time"].between(1, 2), "cpu_pct"] = 99.0
    assert "no limit reached" in bottleneck(Evidence(HubFigures(), USERS, burst))


def test_the_same_rules_from_every_front_end(tmp_path):
    from hubstress_ext.cli.main import build_parser
    from hubstress_ext.engine.argv import scenario_values
    from hubstress_ext.engine.scenario_file import file_values
    from hubstress_ext.notebook.magics import cell_values
    from hubstress_ext.notebook.panel import Panel

    want = ["ready.p90<60s", "failures<1%"]
    argv = ["stress-test", "--slo", "ready.p90<60s, failures<1%"]
    assert scenario_values(build_parser().parse_args(argv))["slo"] == want
    assert cell_values("stress-test", "slo = ready.p90<60s; failures<1%")[1]["slo"] == want
    path = tmp_path / "s.toml"
    path.write_text('slo = ["ready.p90<60s", "failures<1%"]\n')
    options = __import__("hubstress_ext").make_run(
        "stress-test", dry_run=True, **file_values(path, "stress-test")[1]
    )
    assert options.options.slo == want
    panel = Panel(scenario="stress-test")
    panel.fields["slo"].value = "ready.p90<60s,failures<1%"
    assert panel.values()["slo"] == want
    with pytest.raises(OptionError, match="a rule is FIGURE OP NUMBER"):
        __import__("hubstress_ext").make_run("stress-test", dry_run=True, slo="ready<")


def test_a_server_that_stopped_keeps_its_cpu_in_the_sandbox_figures():
    import subprocess
    import sys

    import psutil

    from hubstress_ext.results.resources import resource_summary
    from hubstress_ext.sandbox.resources import ResourceSampler

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(0.3)"
    child = subprocess.Popen([sys.executable, "-c", burn])

    class FakeSandbox:
        def processes(self):
            alive = child.poll() is None
            return {"hub": [psutil.Process()], "servers": [psutil.Process(child.pid)] if alive else []}

    sampler = ResourceSampler(FakeSandbox())
    sampler.sample()
    while child.poll() is None:
        sampler.sample()  # seen while it runs...
    child.wait()
    sampler.sample()  # ...and gone at the end
    servers = resource_summary(sampler.to_frame()).loc["servers"]
    assert servers["cpu_s"] >= 0.2 and servers["rss_peak_mb"] > 1
