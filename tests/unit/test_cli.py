import pytest

from hubstress_ext.cli.main import build_parser, main
from hubstress_ext.engine import registry
from hubstress_ext.engine.argv import scenario_values
from hubstress_ext.engine.logs import RedactSecrets
from hubstress_ext.engine.spec import build


def parse(*argv):
    return build_parser().parse_args(list(argv))


def _options(args):
    """The options object the CLI builds (before the environment and checks)."""
    return build(registry.scenario(args.command).options_type, scenario_values(args))


def test_global_options_before_or_after_the_subcommand():
    before = _options(parse("-c", "7", "-b", "3", "-k", "stress-test"))
    after = _options(parse("stress-test", "-c", "7", "-b", "3", "-k"))
    assert (before.count, before.batch_size, before.keep) == (after.count, after.batch_size, after.keep)
    assert before.count == 7 and before.keep is True


def test_defaults_match_the_original_script():
    opts = _options(parse("stress-test"))
    assert (opts.count, opts.batch_size, opts.keep, opts.dry_run) == (100, 10, False, False)


def test_profile_is_passed_as_user_option():
    assert _options(parse("stress-test", "-p", "large")).spawn_options() == {"profile": "large"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stress-test", "--count", "0", "--sandbox"], "--count must be at least 1"),
        (["stress-test", "--batch-size", "0", "--sandbox"], "--batch-size must be at least 1"),
        (["activity-stress-test", "--workers", "0", "--sandbox"], "--workers must be at least 1"),
        (["stress-test", "-e", "http://127.0.0.1:1"], "missing token"),
        (["stress-test", "-t", "x"], "missing endpoint"),
        (["stress-test", "-e", "localhost:8000", "-t", "x"], "must be an http(s) URL"),
    ],
)
def test_validation_is_one_clear_line(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_ENDPOINT", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and message in err[0] and "Traceback" not in err[0]
    assert (
        err[0].startswith(f"hubstress {argv[0]}: error: ") and err[1] == f"see `hubstress {argv[0]} --help`"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["bench", "http://127.0.0.1:1/x", "--rate", "abc"],
            "hubstress bench: error: --rate must be a number",
        ),
        (
            ["stress-test", "--count", "x"],
            "hubstress stress-test: error: --count must be a whole number (got 'x')",
        ),
        (["session-test", "--session", "soon"], "hubstress session-test: error: --session"),
    ],
)
def test_a_bad_value_is_one_line_and_where_the_help_is(argv, message, capsys):
    """Not 15-24 lines of usage, not "argument --rate: --rate takes..."."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(message), err
    assert "argument" not in err[0] and err[1] == f"see `hubstress {argv[0]} --help`"


def test_no_subcommand_lists_the_commands_and_the_help_fits_a_screen(capsys):
    assert main([]) == 2
    listed = capsys.readouterr().err.splitlines()
    assert any(line.split()[:1] == ["stress-test"] for line in listed) and len(listed) <= 15
    assert all(any(line.split()[:1] == [c] for line in listed) for c in registry.names())
    with pytest.raises(SystemExit):
        main(["--help"])
    assert len(capsys.readouterr().out.splitlines()) <= 40


SANDBOX_ONLY = [
    ("sandbox_spawner", "sim", ["--sandbox-spawner", "sim"]),
    ("sandbox_spawn_limit", 3, ["--spawn-limit", "3"]),
    ("sandbox_active_limit", 5, ["--active-server-limit", "5"]),
    ("sim_exec_time", 0.5, ["--sim-exec-time", "0.5"]),
]


@pytest.mark.parametrize(("name", "value", "flags"), SANDBOX_ONLY)
def test_a_sandbox_option_without_sandbox_is_refused_by_every_front_end(name, value, flags, capsys, tmp_path):
    """Never ignored while the run goes to the hub in the environment."""
    from hubstress_ext.engine.scenario_file import run_from_file
    from hubstress_ext.errors import OptionError
    from hubstress_ext.notebook.magics import cell_values
    from hubstress_ext.notebook.panel import Panel

    hub = ["-e", "http://127.0.0.1:9/hub/api", "-t", "x"]
    flag = flags[0]
    expected = f"{flag} needs --sandbox"
    assert main(["stress-test", *hub, *flags]) == 2  # the CLI
    assert expected in capsys.readouterr().err
    with pytest.raises(OptionError, match=expected):  # code (and the line magic, which builds the same)
        registry.make_run("stress-test", endpoint="http://127.0.0.1:9", token="x", **{name: value})
    with pytest.raises(OptionError, match=expected):  # the cell magic
        _, values, _ = cell_values("stress-test -e http://127.0.0.1:9 -t x", f"{name} = {flags[1]}")
        registry.make_run("stress-test", **values)
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'scenario = "stress-test"\nendpoint = "http://127.0.0.1:9"\n{name} = {value!r}\n')
    with pytest.raises(OptionError, match=expected):  # a scenario file
        run_from_file(scenario, token="x")
    # all four are fine with the sandbox
    registry.make_run("stress-test", sandbox=True, **{name: value})
    if name == "sandbox_spawner":  # the panel's one sandbox field: not sent when the sandbox is off
        form = Panel(sandbox=False, endpoint="http://127.0.0.1:9", token="x")
        assert "sandbox_spawner" not in form.values()


def test_dry_run_prints_the_plan(capsys, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert main(["--dry-run", "stress-test", "-c", "3", "-b", "2", "-e", "http://127.0.0.1:9"]) == 0
    out = capsys.readouterr().out
    assert out.count("POST   /users  ") == 2  # two create batches
    assert out.count("/server") >= 6  # three spawns + three stops
    assert "DELETE /users/hubstress-2" in out and "nothing was sent" in out


def test_redact_filter_masks_tokens_in_formatted_messages():
    import logging

    record = logging.LogRecord("x", logging.INFO, "f", 1, "auth %s ok", ("tok123",), None)
    RedactSecrets(["tok123"]).filter(record)
    assert record.getMessage() == "auth *** ok"


def test_bad_user_options_say_what_is_wrong(capsys):
    with pytest.raises(SystemExit):
        main(["stress-test", "--sandbox", "--user-options", "{bad"])
    err = capsys.readouterr().err
    assert "--user-options must be a JSON object" in err and "double quotes at character 1" in err
    assert "parse_user_options" not in err


def test_each_subcommand_lists_only_its_own_options(capsys):
    with pytest.raises(SystemExit):
        main(["sandbox", "--help"])
    out = capsys.readouterr().out
    assert "--sandbox-spawner" in out and "--port" in out
    for other in ("--count", "--dry-run", "--keep", "--save"):
        assert other not in out


def test_an_option_before_a_scenario_that_lacks_it_is_refused(capsys):
    assert main(["--ramp", "5", "purge", "--sandbox"]) == 2
    assert "--ramp is not an option of purge" in capsys.readouterr().err


def test_without_a_terminal_progress_is_a_plain_line_every_few_seconds(capsys):
    """CI logs and `make demo | tee`: no bars, and never a minute of silence."""
    import time
    import types

    from hubstress_ext.cli.output import plain_progress_lines, progress_line
    from hubstress_ext.engine.progress import Progress

    run = types.SimpleNamespace(scenario="stress-test", progress=Progress(), phase="starting")
    assert progress_line(run, 3.2) == "hubstress stress-test, 3 s: starting"
    run.progress.begin("create", 20)
    for _ in range(20):
        run.progress.advance("create")
    run.progress.begin("ready", 20)
    for i in range(12):
        run.progress.advance("ready", failed=i == 0)
    assert progress_line(run, 15) == "hubstress stress-test, 15 s: create 20/20, ready 12/20 (1 failed)"
    with plain_progress_lines(run, every=0.05):
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 3 and all(line.startswith("hubstress stress-test, ") for line in lines)


def test_every_option_declared_secret_is_masked_in_logs_and_saved_runs(tmp_path):
    """Not only the one called "token": a --login form password is masked the same way."""
    import logging

    from hubstress_ext.engine.logs import setup_logging

    run = registry.make_run(
        "session-test",
        endpoint="http://127.0.0.1:9",
        token="tok-secret-1",
        login="form",
        password="pw-secret-2",
    )
    assert sorted(run.secrets) == ["pw-secret-2", "tok-secret-1"]
    log, logger = tmp_path / "run.log", logging.getLogger("hubstress")
    before = (list(logger.handlers), logger.level, logger.propagate)
    try:
        setup_logging(False, str(log), run.secrets)
        logger.warning("login with %s and %s", "pw-secret-2", "tok-secret-1")
        for handler in logger.handlers:
            handler.close()
    finally:
        logger.handlers[:], logger.level, logger.propagate = before
    text = log.read_text()
    assert "login with *** and ***" in text and "secret-" not in text
    run.meta["note"] = "pw-secret-2"  # as if a message had carried it into the run's meta
    saved = run.save(tmp_path / "runs")
    assert all("secret-" not in f.read_text() for f in saved.iterdir())
