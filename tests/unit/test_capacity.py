"""The capacity search without a target: the search against fake boundaries (with noise), the
knob and grid grammar, the options' errors, the probe's words routed past capacity's parser,
the answer read from a probes table, and secrets kept out of what is shown."""

import math

import pandas as pd
import pytest

from hubstress_ext.capacity.answer import answer_line, answer_of, pass_column
from hubstress_ext.capacity.knob import parse_grid, parse_vary
from hubstress_ext.capacity.search import Search
from hubstress_ext.engine import registry
from hubstress_ext.engine.argv import parse_scenario_argv
from hubstress_ext.errors import OptionError
from hubstress_ext.hub.sessions import SessionOptions
from hubstress_ext.loadgen.options import LoadOptions


def search_against(cap, low, high, precision=0.1, integer=False, noise=None, repeats=None):
    """Run a search where every value up to ``cap`` passes; ``noise(value, n)`` may flip the
    n-th probe of a value. Returns (search, probes in order)."""
    s = Search(low, high, precision, integer=integer, repeats=repeats)
    seen = []
    while (v := s.next_value()) is not None:
        n = sum(1 for x in seen if x == v)
        ok = v <= cap
        if noise is not None and noise(v, n):
            ok = not ok
        seen.append(v)
        s.record(v, ok)
        assert len(seen) < 100, seen
    return s, seen


@pytest.mark.parametrize("cap", [2.383, 0.2, 9.9, 1.001])
def test_the_search_brackets_the_boundary_within_the_precision(cap):
    s, seen = search_against(cap, low=10 / 60, high=10.0)
    assert s.outcome == "bracket"
    assert s.feasible <= cap < s.infeasible
    assert (s.infeasible - s.feasible) / s.feasible <= 0.1 + 1e-9
    assert len(seen) <= 25, seen  # x2 steps, bisection in ratio, 2 repeats of each side
    assert seen.count(s.feasible) >= 2 and seen.count(s.infeasible) >= 2


def test_a_whole_number_knob_stops_at_neighbours_or_the_precision():
    s, seen = search_against(137, low=10, high=2000, precision=0.01, integer=True)
    assert s.outcome == "bracket" and all(v == int(v) for v in seen)
    assert (s.feasible, s.infeasible) == (137, 138)


def test_one_noisy_probe_does_not_decide_the_boundary():
    cap = 2.383
    clean, _ = search_against(cap, 10 / 60, 10.0)
    # the feasible side's second probe fails once (a noisy machine): a third settles it
    noisy, seen = search_against(cap, 10 / 60, 10.0, noise=lambda v, n: v == clean.feasible and n == 1)
    assert noisy.feasible == clean.feasible and noisy.infeasible == clean.infeasible
    assert seen.count(clean.feasible) == 3 and noisy.noisy == 1


def test_a_tie_fails_so_no_capacity_is_claimed_on_a_coin_toss():
    s = Search(1.0, 8.0, 0.1, repeats=2)
    s.record(2.0, True)
    s.record(2.0, False)
    assert s.verdict(2.0) is False


def test_outcomes_below_and_above_the_range():
    below, seen = search_against(0.05, low=1.0, high=10.0)
    assert below.outcome == "below" and seen == [1.0]
    above, seen = search_against(100.0, low=1.0, high=10.0)
    assert above.outcome == "above" and seen[-1] == 10.0 and above.feasible == 10.0


def test_vary_reads_the_options_own_unit_and_shows_it_back():
    knob = parse_vary("rate=10/min..600/min", SessionOptions)
    assert (knob.name, knob.unit, knob.integer) == ("rate", "min", False)
    assert math.isclose(knob.low, 10 / 60) and math.isclose(knob.high, 10.0)
    assert knob.show(2.5) == "150/min"
    count = parse_vary("count=10..2000", SessionOptions)
    assert count.integer and count.show(137.0) == "137" and count.value(137.4) == 137


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rate", "--vary takes KNOB=LOW..HIGH"),
        ("rate=600/min..10/min", "HIGH must be above LOW"),
        ("colour=1..2", "not a numeric option of the scenario; one of:"),
        ("login=1..2", "'login' is not a numeric option"),
        ("rate=fast..2", "--vary rate:"),
        ("count=0..10", "--vary count"),
    ],
)
def test_bad_vary_says_what_is_expected(text, says):
    with pytest.raises(OptionError, match=None) as err:
        parse_vary(text, SessionOptions)
    assert says in str(err.value), str(err.value)


def test_grid_values_are_typed_and_checked():
    grid = parse_grid("batch_size=1,8,32")
    assert grid.name == "batch_size" and grid.values == (1, 8, 32)
    with pytest.raises(OptionError, match="KEY=V1,V2"):
        parse_grid("batch_size")
    with pytest.raises(OptionError, match="repeated"):
        parse_grid("batch_size=1,1")


SESSION = ["--sandbox", "--sandbox-spawner", "sim", "--count", "6"]


def capacity(*words):
    name, values = parse_scenario_argv(["capacity", *words])
    assert name == "capacity"
    return registry.make_run("capacity", **values)


def test_the_probes_words_pass_through_capacitys_parser_in_order():
    run = capacity("session-test", *SESSION, "--vary", "rate=10/min..600/min", "--slo", "ready.p90<10s")
    opts = run.options
    assert opts.probe_args == SESSION
    assert opts.template.count == 6 and opts.template.sandbox_spawner == "sim"
    assert opts.template.slo == ["ready.p90<10s"]  # each probe judged by the search's SLO
    probe = opts.probe_options(2.5)
    assert probe.rate == 2.5 and probe.count == 6


def test_a_rate_probe_without_a_count_lasts_the_probe_window_at_any_rate():
    # the default count (100 students) at 10/min would make the first probe last 10 minutes
    words = ["session-test", "--sandbox", "--sandbox-spawner", "sim", "--vary", "rate=10/min..600/min"]
    run = capacity(*words, "--slo", "ready.p90<10s")
    opts = run.options
    assert opts.derives_count and opts.probe_window == 60.0
    assert opts.probe_options(10 / 60).count == 10  # 60 s of arrivals at 10/min
    assert opts.probe_options(600 / 60).count == 600
    assert opts.probe_options(1 / 60).count == 5  # never fewer than a p90 can be read from
    short = capacity(*words, "--slo", "ready.p90<10s", "--probe-window", "30s")
    assert short.options.probe_options(2.0).count == 60
    assert "each probe: 30 s of arrivals at its rate (--count = rate x 30 s" in short.report()
    given = capacity("session-test", *SESSION, "--vary", "rate=1..5", "--slo", "failures<1%").options
    assert not given.derives_count and given.probe_options(5.0).count == 6
    stress = capacity("stress-test", "--sandbox", "--vary", "count=10..20", "--slo", "failures<1%")
    assert not stress.options.derives_count


def test_the_probes_a_search_needs_are_estimated_for_the_budget_warning():
    from hubstress_ext.capacity.run import probes_needed

    # 10..600: 6 doublings, 3 halvings of the last doubling to 10 %, 2 more repeats
    assert probes_needed(10, 600, 0.1, None) == 11
    assert probes_needed(10, 600, 0.1, 3) == 13
    assert probes_needed(1, 2, 0.5, 1) == 2


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["session-test", *SESSION, "--slo", "ready.p90<10s"], "--vary is required"),
        (["session-test", *SESSION, "--vary", "rate=1..2"], "--slo is required"),
        (["purge", "--vary", "count=1..2", "--slo", "failures<1%"], "cannot probe 'purge'"),
        (
            ["session-test", *SESSION, "--rate", "3", "--vary", "rate=1..5", "--slo", "failures<1%"],
            "is what --vary rate changes",
        ),
        (
            ["session-test", *SESSION, "--keep", "--vary", "rate=1..5", "--slo", "failures<1%"],
            "--keep",
        ),
        (
            ["session-test", *SESSION, "--colour", "red", "--vary", "rate=1..5", "--slo", "failures<1%"],
            "--colour",
        ),
        (
            [
                "bench",
                "http://127.0.0.1:1/x",
                "--vary",
                "rate=1..5",
                "--slo",
                "p99<5ms",
                "--grid",
                "nope=1,2",
            ],
            "--grid nope: not an option or setting of bench",
        ),
        (
            ["session-test", *SESSION, "--vary", "rate=1..5", "--slo", "failures<1%", "--budget", "soon"],
            "--budget takes seconds",
        ),
        (
            [
                "session-test",
                *SESSION,
                "--vary",
                "rate=1/min..5/min",
                "--slo",
                "x<1",
                "--expect-capacity",
                "lots",
            ],
            "--expect-capacity",
        ),
    ],
)
def test_bad_capacity_options_say_which_and_why(words, says):
    with pytest.raises((OptionError, SystemExit)) as err:
        capacity(*words)
    text = str(err.value)
    if isinstance(err.value, SystemExit):
        pytest.fail(f"argparse exit instead of one OptionError line: {text}")
    assert says in text, text


def test_the_probes_token_is_masked_where_the_search_shows_its_options():
    run = capacity(
        "session-test",
        "--endpoint",
        "http://127.0.0.1:1/hub/api",
        "--token",
        "s3cr3t-token-value",
        "--vary",
        "rate=1/min..5/min",
        "--slo",
        "failures<1%",
    )
    assert "s3cr3t-token-value" in run.secrets
    assert "s3cr3t-token-value" not in repr(run.options.public())
    assert "s3cr3t-token-value" not in repr(run.record().options)


def test_bench_searches_the_open_loop_rate_beside_its_saturated_throughput():
    run = capacity(
        "bench",
        "http://127.0.0.1:1/hubstress/batch",
        "--duration",
        "2",
        "--vary",
        "rate=100..20000",
        "--slo",
        "p99<50ms, errors<0.1%",
        "--grid",
        "batch_size=1,8",
    )
    assert isinstance(run.options.template, LoadOptions) and run.options.template.warmup == 1.0
    reference = run.probe_class.reference_load(run.options.probe_values, "rate")
    loads, figure, what = reference
    assert [v["workers"] for v in loads] == [4, 32, 128] and figure == "qps"
    assert all(v["rate"] is None for v in loads) and "best of" in what


def test_an_open_loop_that_answered_less_than_it_was_sent_fell_behind():
    """A short probe's p99 may hold while the endpoint builds a queue: its goodput says so."""
    from hubstress_ext.loadgen.run import BenchRun

    run = BenchRun(LoadOptions(url="http://127.0.0.1:1/x", rate=440.0))
    run.stats = {"offered_rate": 440.0, "qps": 408.7}
    assert run.fell_behind() == "the endpoint fell behind: answered 408.7/s of 440/s sent"
    run.stats = {"offered_rate": 420.0, "qps": 415.0}
    assert run.fell_behind() is None
    run.stats = {"offered_rate": 440.0, "qps": 100.0, "generator_behind": True}
    assert run.fell_behind() is None  # then the generator, not the endpoint, set the pace


RULES = ["ready.p90<10s", "failures<1%"]


def probes_table(rows):
    out = []
    for value, p90, failures in rows:
        ok90, okf = p90 < 10, failures < 0.01
        out.append(
            {
                "value": value,
                "passed": ok90 and okf,
                "ready.p90": p90,
                "failures": failures,
                pass_column(RULES[0]): ok90,
                pass_column(RULES[1]): okf,
                "bottleneck": "throttled: 40 429s from concurrent_spawn_limit=4"
                if not ok90
                else "the hub kept up",
                "generator_limited": False,
                "error": "",
                "status": "finished",
            }
        )
    return pd.DataFrame(out)


def test_the_answer_names_the_binding_rule_the_bottleneck_and_a_cliff():
    knob = parse_vary("rate=10/min..600/min", SessionOptions)
    lo, hi = 2.0, 2.2
    probes = probes_table([(1.0, 2.1, 0.0), (lo, 2.3, 0.0), (hi, 14.0, 0.0), (lo, 2.4, 0.0), (hi, 15.0, 0.0)])
    a = answer_of(probes, RULES, knob, "bracket", lo, hi, 372.0)
    assert a.binding == "ready.p90<10s"
    assert (
        "14.500s at 132/min (infeasible)" in a.binding_line
        and "2.350s at 120/min (feasible)" in a.binding_line
    )
    assert a.bottleneck.startswith("throttled") and a.shape == "cliff"
    assert "it was 2.100s at the lightest load probed" in a.shape_line
    # a cliff: nothing past the last load that passed is known to pass
    assert a.estimate == lo and math.isclose(a.plus_minus, 0.1)
    line = answer_line(a, knob)
    assert line.startswith(
        "capacity 120/min (feasible 120/min, infeasible 132/min, the boundary within +10 %"
    )
    assert "5 probes, 6 m 12 s" in line


def test_a_figure_that_rose_smoothly_is_a_knee_and_the_estimate_is_interpolated():
    knob = parse_vary("rate=10/min..600/min", SessionOptions)
    probes = probes_table([(1.0, 5.0, 0.0), (2.0, 9.0, 0.0), (2.2, 11.0, 0.0)])
    a = answer_of(probes, RULES, knob, "bracket", 2.0, 2.2, 60.0)
    assert a.shape == "knee" and math.isclose(a.estimate, 2.1)
    assert "rose from 5.000s at the lightest load probed to 9.000s at 120/min" in a.shape_line


def test_an_unresolved_search_says_why_and_shows_the_best_bracket():
    knob = parse_vary("rate=10/min..600/min", SessionOptions)
    probes = probes_table([(1.0, 2.1, 0.0), (2.0, 12.0, 0.0)])
    a = answer_of(probes, RULES, knob, "open", 1.0, 2.0, 30.0, reason="stopped before it was done")
    assert not a.resolved and a.value is None
    line = answer_line(a, knob)
    assert line.startswith("unresolved: stopped before it was done")
    assert "feasible 60/min, infeasible 120/min" in line


def test_the_panels_find_capacity_mode_adds_the_searchs_fields_and_makes_a_search():
    from hubstress_ext.notebook.panel import Panel

    with pytest.raises(TypeError, match="'find capacity' mode"):
        Panel(scenario="capacity")
    p = Panel(scenario="session-test")
    assert "vary" not in p.fields
    p.count.value = 7
    p.find_capacity.value = True  # the form grows the search's fields and keeps what was typed
    assert {"vary", "precision", "budget", "count", "slo"} <= set(p.fields)
    assert p.count.value == 7
    assert "find capacity needs 'vary'" in _start_error(p)
    p.vary.value = "rate=10/min..600/min"
    p.rate.value = 1.0  # the field of the knob itself: what the search varies, not sent
    assert "'SLO rules' is required" in _start_error(p)  # the form's label, not --slo
    p.slo.value = "ready.p90<10s"
    run = p._make(p.values())
    assert run.scenario == "capacity" and run.options.scenario == "session-test"
    assert run.knob.name == "rate" and run.options.slo == ["ready.p90<10s"]
    assert run.options.probe["count"] == 7 and "rate" not in run.options.probe
    p.find_capacity.value = False
    assert "vary" not in p.fields and p.count.value == 7
    p.scenario.value = "purge"  # nothing to search over: the mode is off for it
    assert p.find_capacity.disabled and not p.searching
    assert "capacity" not in p.scenario.options


def _start_error(p):
    assert p.start() is None
    return p.error.value


def test_the_answer_names_the_grid_value_and_a_knob_without_a_unit():
    from hubstress_ext.capacity.answer import Answer
    from hubstress_ext.loadgen.options import LoadOptions

    workers = parse_vary("workers=1..256", LoadOptions)
    a = Answer("bracket", 181.0, 197.0, 189.0, 0.04, 15, 31.0, grid=1)
    assert answer_line(a, workers, "batch_size").startswith(
        "capacity at batch_size=1: workers=189 (feasible 181, infeasible 197, ±4 %"
    )
    top = Answer("above", 256.0, None, None, None, 9, 18.0, grid=8)
    assert answer_line(top, workers, "batch_size").startswith("capacity at batch_size=8: workers >= 256:")
    per_min = parse_vary("rate=10/min..600/min", SessionOptions)
    low = Answer("below", None, 1 / 6, None, None, 1, 5.0)
    assert answer_line(low, per_min).startswith("capacity < 10/min: the lowest probe already failed")
    open_ = Answer("open", 100.0, 200.0, None, None, 9, 18.0, grid=32, reason="--max-probes 40 reached")
    assert answer_line(open_, workers, "batch_size").startswith("unresolved at batch_size=32: --max-probes")
