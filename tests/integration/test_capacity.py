"""`hubstress capacity` against real targets whose capacity is known by hand: a sandbox hub
whose spawn limit allows L starts per T seconds, and a `hubstress serve` endpoint at saturation
(measured in the same search); Ctrl-C mid-search; --expect-capacity, JUnit, the saved search
and its probes reopened."""

import json
import os
import signal
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from hubstress_ext.cli.main import main
from hubstress_ext.engine.saved import load_run
from tests.conftest import hubstress_popen
from tests.integration.test_batching_standalone import serve

pytestmark = pytest.mark.slow

# The hub: every start takes T seconds and at most L run at once (concurrent_spawn_limit), so
# at most L/T starts per second are sustained: 6 / 3 s = 2/s = 120/min. Users arriving evenly
# faster than that queue behind the limit (429s, Retry-After), and the slowest one's wait for
# its server breaks ready.max; slower, each finds a free slot and is ready in about T.
SPAWN_T, SPAWN_L = 3, 6
HUB_TRUTH_PER_MIN = SPAWN_L / SPAWN_T * 60


def test_the_hub_capacity_is_the_spawn_limit_over_the_start_time(tmp_path, capsys):
    code = main(
        [
            "capacity",
            "session-test",
            "--sandbox",
            "--sandbox-spawner",
            "sim",
            "--spawn-limit",
            str(SPAWN_L),
            "--sim-start-time",
            str(SPAWN_T),
            "--count",
            "12",
            "--arrival",
            "even",
            "--session",
            "1",
            "--think",
            "1",
            "--runs",
            "1",
            "--vary",
            "rate=60/min..480/min",
            "--precision",
            "5%",
            "--slo",
            "ready.max<4.5s",
            "--save",
            str(tmp_path),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    per_min = out["capacity"] * 60
    assert abs(per_min - HUB_TRUTH_PER_MIN) <= 0.15 * HUB_TRUTH_PER_MIN, (per_min, out["report"])
    assert len(out["probes"]) <= 25
    best = out["answers"][0]
    assert best["outcome"] == "bracket" and best["binding"] == "ready.max<4.5s"
    assert f"concurrent_spawn_limit={SPAWN_L}" in best["bottleneck"], best["bottleneck"]
    # the feasible side passed every time it was probed; the infeasible side failed
    probes = out["probes"]
    assert all(p["passed"] for p in probes if p["value"] == best["feasible"])
    assert not any(p["passed"] for p in probes if p["value"] == best["infeasible"])


@pytest.mark.alone  # a throughput measured: nothing else may share the cores while it runs
def test_the_endpoint_capacity_is_below_its_saturated_throughput(tmp_path, capsys):
    """device-sim: a batch of n takes 2 + 0.25 n ms, nominally n / (2 + 0.25 n) per ms. The
    search's answer at each batch size is below the nominal figure and within 15 % of the
    saturated throughput the same search measured (the best of three closed loops), and the
    grid picks the larger batch. Within 15 % on both sides: on this 2-core machine the open
    loop sustains 2-14 % more than the closed loops deliver (README, "Capacity")."""
    with serve("--model", "device-sim", "--batch-size", "4", "--max-queue", "10000") as (url, _):
        junit = tmp_path / "capacity.xml"
        code = main(
            [
                "capacity",
                "bench",
                f"{url}/hubstress/batch",
                "--duration",
                "1.5",
                "--warmup",
                "0.5",
                "--vary",
                "rate=100..20000",
                "--slo",
                "p99<50ms, errors<0.1%",
                "--grid",
                "batch_size=1,8",
                "--expect-capacity",
                "100000",  # far above: the run must fail on it, with the search's answer intact
                "--junit",
                str(junit),
                "--save",
                str(tmp_path / "runs"),
                "--json",
            ]
        )
        out = json.loads(capsys.readouterr().out)
        config = json.loads(_get(f"{url}/hubstress/batch/config"))
    assert code == 1, out["report"]  # --expect-capacity 100000 was not met
    assert config["batch_size"] == 4  # the grid's setting was put back
    answers = {a["grid"]: a for a in out["answers"]}
    assert set(answers) == {1, 8}
    saturated = {}
    for ref in out["references"]:
        if ref["value"] is not None:
            saturated[ref["grid"]] = max(saturated.get(ref["grid"], 0.0), ref["value"])
    for size in (1, 8):
        nominal = size / (2 + 0.25 * size) * 1000
        capacity = answers[size]["estimate"]
        assert answers[size]["outcome"] == "bracket", out["report"]
        assert saturated[size] < nominal and capacity < nominal, (size, capacity, saturated, nominal)
        assert 0.85 * saturated[size] <= capacity <= 1.15 * saturated[size], (size, capacity, saturated)
        assert answers[size]["binding"] == "p99<50ms", answers[size]
    assert out["capacity"] == answers[8]["estimate"] > answers[1]["estimate"]
    assert "best: batch_size=8" in out["report"]
    # JUnit: one case per rule at the capacity, and the expectation that failed
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert {"p99<50ms", "errors<0.1%"} <= set(cases), list(cases)
    failed = [name for name, c in cases.items() if c.find("failure") is not None]
    assert failed == [next(n for n in cases if n.startswith("capacity>="))], failed
    # the saved search reports what the live one did, and each probe reopens as its own run
    saved = load_run(next((tmp_path / "runs").glob("*-capacity")))
    assert saved.report() == out["report"]
    assert len(saved.probes) == len(out["probes"]) and saved.capacity == out["capacity"]
    probe = saved.probe(0)
    assert probe.scenario == "bench" and len(probe.df) > 0
    assert code_of_report(tmp_path / "runs") == 0


def code_of_report(folder):
    """`hubstress report` on the saved search: it reopens (exit 0) and prints the answer."""
    import subprocess

    path = next(folder.glob("*-capacity"))
    proc = subprocess.run(
        [sys.executable, "-m", "hubstress_ext", "report", str(path)], capture_output=True, text=True
    )
    assert "capacity at batch_size=8: rate=" in proc.stdout, proc.stdout + proc.stderr
    return proc.returncode


def _get(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_ctrl_c_mid_search_reports_the_bracket_unresolved_and_leaves_nothing(sim_hub, clean_hub):
    env = dict(os.environ, JUPYTERHUB_ENDPOINT=sim_hub.api_url, JUPYTERHUB_API_TOKEN=sim_hub.token)
    proc = hubstress_popen(
        "capacity",
        "session-test",
        "--count",
        "6",
        "--arrival",
        "even",
        "--session",
        "30",
        "--vary",
        "rate=60/min..600/min",
        "--slo",
        "ready.p90<60s",
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while len(clean_hub.active()) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        assert len(clean_hub.active()) >= 2, "the first probe never started its users"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "unresolved" in out, out
    assert clean_hub.group() in (None, [])  # every user it made (and marked) is deleted
    assert clean_hub.active() == set()


def test_the_panel_finds_the_capacity_of_a_real_endpoint():
    """The panel's "find capacity" mode: the bench form plus the search's fields, Start, the
    live view; the run is the same search `hubstress capacity bench` makes."""
    from hubstress_ext.notebook.panel import Panel

    with serve("--model", "device-sim", "--batch-size", "1", "--max-queue", "10000") as (url, _):
        p = Panel(scenario="bench", find_capacity=True, url=f"{url}/hubstress/batch")
        p.vary.value = "rate=50..200"
        p.slo.value = "p99<200ms"
        p.duration.value = "0.5"
        run = p.start()
        assert run is not None, p.error.value
        assert p.wait(180)
    assert run.scenario == "capacity" and run.status == "finished", run.error
    assert run.options.scenario == "bench" and len(run.probes) >= 1
    assert run.answers and run.answers[0].outcome in ("above", "bracket", "below"), run.report()
    shown = p.view.table.value
    assert "capacity" in shown and "probe" in shown, shown[:2000]
    assert p.view.chart.value  # the boundary chart, drawn while it searched and after
    assert not p.start_button.disabled and p.stop_button.disabled
