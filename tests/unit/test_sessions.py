"""session-test's parts without a hub: durations and ranges, the arrival plan, the scenario
file, the stand-in kernel's evaluator, and the report built from records."""

import math
import random
import shlex

import pandas as pd
import pytest

from hubstress_ext.cli.main import build_parser
from hubstress_ext.engine.argv import scenario_values
from hubstress_ext.engine.scenario_file import file_values, run_from_file
from hubstress_ext.errors import OptionError
from hubstress_ext.hub.arrivals import arrival_times, plan_class
from hubstress_ext.hub.sessions import SessionOptions
from hubstress_ext.hub.timing import Span, check_span, parse_duration, parse_rate, parse_span
from hubstress_ext.notebook.magics import cell_values
from hubstress_ext.results.sessions import active_over_time, failures_by_reason, peak_active
from hubstress_ext.sandbox.simserver import evaluate


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("20s", 20.0), ("2m", 120.0), ("1.5h", 5400.0), (" 3 s ", 3.0)]
)
def test_durations(text, seconds):
    assert parse_duration("--period")(text) == seconds


@pytest.mark.parametrize(
    ("text", "span"),
    [("2-5m", (120, 300)), ("5-20", (5, 20)), ("90s-2m", (90, 120)), ("20", (20, 20)), ("1m", (60, 60))],
)
def test_ranges(text, span):
    assert parse_span("--session")(text) == Span(*span)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5-2", "low end is above its high end"),
        ("abc", "--session takes seconds or a range"),
        ("-3", "--session takes seconds or a range"),
        ("2-5d", "--session takes seconds or a range"),
    ],
)
def test_bad_ranges_name_the_flag(text, message):
    with pytest.raises(OptionError, match=message):
        parse_span("--session")(text)


def test_span_round_trips_through_text_and_checks_values_given_in_code():
    assert parse_span("--think")(str(Span(2.0, 5.0))) == Span(2.0, 5.0)
    assert check_span((1, 2), "--think") == Span(1.0, 2.0)
    assert check_span(3, "--think") == Span(3.0, 3.0)
    for bad in [(math.nan, 1), (-1, 2), "x", (1, 2, 3)]:
        with pytest.raises(OptionError, match="--think"):
            check_span(bad, "--think")


@pytest.mark.parametrize(
    ("text", "per_s"), [("60/min", 1.0), ("2/s", 2.0), ("3600/h", 1.0), ("0.5", 0.5), ("120/MIN", 2.0)]
)
def test_rates(text, per_s):
    assert parse_rate("--rate")(text) == pytest.approx(per_s)


def test_bad_rate():
    with pytest.raises(OptionError, match="--rate takes a rate such as 60/min"):
        parse_rate("--rate")("3/fortnight")


def test_arrival_shapes():
    rng = random.Random(1)
    assert arrival_times("burst", 3, rng) == [0.0, 0.0, 0.0]
    assert arrival_times("even", 4, rng, period=8) == [0.0, 2.0, 4.0, 6.0]
    assert arrival_times("batches", 5, rng, wave_size=2, wave_every=30) == [0, 0, 30, 30, 60]


def ks_exponential_p(samples, rate):
    """Kolmogorov-Smirnov test of samples against Exp(rate): the asymptotic p-value."""
    xs = sorted(samples)
    n = len(xs)
    d = max(
        max((i + 1) / n - (1 - math.exp(-rate * x)), (1 - math.exp(-rate * x)) - i / n)
        for i, x in enumerate(xs)
    )
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    return max(
        0.0, min(1.0, 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101)))
    )


def test_poisson_plan_is_exponential_and_reproducible():
    plan = plan_class("poisson", 2000, Span(5, 15), seed=7, rate=2.0)
    gaps = [b.arrive - a.arrive for a, b in zip(plan, plan[1:], strict=False)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.5, rel=0.05)
    assert ks_exponential_p(gaps, 2.0) > 0.01
    # and a uniform sample is told apart (the test can fail)
    assert ks_exponential_p([0.5] * 500, 2.0) < 0.01
    assert all(5 <= s.session <= 15 for s in plan)
    assert plan_class("poisson", 2000, Span(5, 15), seed=7, rate=2.0) == plan
    assert plan_class("poisson", 2000, Span(5, 15), seed=8, rate=2.0) != plan


def options(**values):
    return SessionOptions(dry_run=True, **values).resolve({})


def test_options_check_the_plan_and_read_code_from_a_file(tmp_path):
    cell = tmp_path / "cell.py"
    cell.write_text("5*4\n")
    opts = options(code=f"@{cell}", session="2-5m", arrival="even", count=10, rate=2.0)
    assert opts.code == "5*4\n" and opts.session == Span(120, 300) and opts.period == 5.0
    with pytest.raises(OptionError, match=r"--code @.*missing.py: cannot read it"):
        options(code=f"@{tmp_path}/missing.py")
    with pytest.raises(OptionError, match="--code is empty"):
        options(code="  ")
    with pytest.raises(OptionError, match="--arrival must be one of burst, even, poisson, batches"):
        options(arrival="trickle")
    with pytest.raises(OptionError, match="--login must be one of token, form"):
        options(login="saml")


def test_a_scenario_file_gives_the_same_options_as_the_flags_and_the_cell(tmp_path):
    path = tmp_path / "class.toml"
    path.write_text(
        'scenario = "session-test"\ncount = 200\narrival = "poisson"\nrate = "120/min"\n'
        'session = "5-15"\nseed = 7\nexpect-output = "20"\ncode = "5*4"\npoll_interval = 0\n'
    )
    flags = "--count 200 --arrival poisson --rate 120/min --session 5-15 --seed 7 --expect-output 20 "
    flags += "--code 5*4 --poll-interval 0"
    from_flags = scenario_values(build_parser().parse_args(["session-test", *shlex.split(flags)]))
    name, from_file = file_values(path)
    assert name == "session-test" and from_file == from_flags
    body = "\n".join(f"{k} = {v}" for k, v in [("count", 200), ("rate", "120/min"), ("session", "5-15")])
    _, from_cell, _ = cell_values(
        "session-test --seed 7 --expect-output 20 --code 5*4 --poll-interval 0", body
    )
    assert {**from_cell, "arrival": "poisson"} == from_flags
    # the same plan, whichever way it came; flags given with --file win
    plan = options(**from_flags).plan()
    assert options(**from_file).plan() == plan
    run = run_from_file(path, dry_run=True)
    assert run.plan == plan
    argv = ["session-test", "--file", str(path), "--count", "3"]
    assert scenario_values(build_parser().parse_args(argv))["count"] == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("count = 2\nsesion = '5'\n", "'sesion' is not an option of session-test"),
        ("scenario = 'stress-test'\n", "is for 'stress-test', not 'session-test'"),
        ("count = [\n", "not valid TOML"),
        ("session = '9-1'\n", "low end is above its high end"),
    ],
)
def test_scenario_file_errors_are_one_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(OptionError, match=message):
        file_values(path, "session-test")


def test_the_stand_in_kernel_evaluates_numbers_only():
    assert evaluate("5*4") == 20
    assert evaluate("x = 1\n2 ** 10") == 1024
    assert evaluate("import os; os.getcwd()") is None  # never runs code
    assert evaluate("print('hi')") is None
    with pytest.raises(SyntaxError):
        evaluate("5 *")
    with pytest.raises(ZeroDivisionError):
        evaluate("1/0")


def test_active_sessions_and_failures_from_the_tables():
    sessions = pd.DataFrame(
        {
            "user": ["a", "b", "c"],
            "arrived": [0.0, 1.0, 2.0],
            "started": [1.0, 2.0, None],
            "ended": [5.0, 4.0, 2.5],
            "reason": [None, "output mismatch", "spawn failed: HTTP 500"],
        }
    )
    users = pd.DataFrame({"user": ["a", "b", "c"], "stopped": [6.0, 4.5, None]})
    assert peak_active(sessions, users) == 2
    active = active_over_time(sessions, users)
    assert active.set_index("t")["active"].to_dict() == {0: 0, 1: 1, 2: 2, 3: 2, 4: 2, 5: 1, 6: 0}
    assert failures_by_reason(sessions)["sessions"].to_dict() == {
        "output mismatch": 1,
        "spawn failed: HTTP 500": 1,
    }


def test_dry_run_prints_the_same_plan_twice_for_the_same_seed(capsys):
    from hubstress_ext.cli.main import main

    argv = ["session-test", "--dry-run", "--count", "5", "--rate", "30/min", "--seed", "3"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert "5 students arrive at random, 30/min (seed 3)" in first
    assert first.count("DRY-RUN student") == 5
    assert main([*argv[:-1], "4"]) == 0
    assert capsys.readouterr().out != first
