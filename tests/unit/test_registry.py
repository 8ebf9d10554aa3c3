"""The registry walked: every scenario's options reach the CLI, the cell magic and the panel
with the same names, values and defaults; the README's "how to add a scenario" example works
in all three front ends."""

import json
import re
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hubstress_ext.cli.main import build_parser, main
from hubstress_ext.engine import registry
from hubstress_ext.engine.argv import parse_command_line, scenario_values
from hubstress_ext.engine.spec import build, options_of
from hubstress_ext.hub.timing import Span
from hubstress_ext.notebook.magics import cell_values
from hubstress_ext.notebook.panel import Panel

README = Path(__file__).parents[2] / "README.md"
URL = "http://127.0.0.1:1/x"
# the panel starts from the defaults except here, so that Start works with no hub of one's own
PANEL_STARTS_ELSEWHERE = {"sandbox", "sandbox_spawner", "count", "batch_size", "session", "think"}


def sample(opt):
    """A valid non-default value as text, for each kind of option."""
    if opt.kind is bool:
        return "true"
    if opt.spec.choices:
        return str(opt.spec.choices[-1])
    if opt.kind is int:
        return str(int(opt.spec.low or 0) + 7)
    if opt.kind is float:
        return "2.5"
    if opt.kind is dict:
        return '{"image": "x"}'
    if opt.spec.metavar == "RULES":
        return "ready.p90<60s"
    if opt.kind is list:
        return "2,3"
    if opt.kind is Span:
        return "3-4"
    return "abc"


# a capacity search needs what to vary and its SLO before it parses; the rest is the probe's
HEADS = {"capacity": ["bench", URL, "--vary", "rate=1..2", "--slo", "p99<1s"]}


def head(name):
    if name in HEADS:
        return [name, *HEADS[name]]
    positional = [o for o in options_of(registry.scenario(name).options_type) if o.spec.positional]
    return [name, *([URL] if positional else [])]


@pytest.mark.parametrize("name", registry.BUILT_IN)
def test_cli_magic_and_panel_agree_on_every_option(name):
    cls = registry.scenario(name)
    opts = options_of(cls.options_type)
    parser = build_parser()
    base = head(name)
    given = scenario_values(parse_command_line(parser, base))
    # nothing given: the same (empty) values from the CLI and the magic; defaults from the class
    assert cell_values(shlex.join(base), "")[1] == given
    defaults = build(cls.options_type, given)
    in_head = {o.name for o in opts if o.flag in base or o.spec.rest}
    for opt in opts:
        if not opt.spec.positional and opt.name not in in_head:
            assert getattr(defaults, opt.name) == opt.default, opt.name
    for opt in opts:
        if opt.spec.positional or opt.spec.rest:
            continue
        text = sample(opt)
        argv = [*base, opt.flag] if opt.kind is bool else [*base, opt.flag, text]
        from_cli = scenario_values(parse_command_line(parser, argv))[opt.name]
        from_cell = cell_values(shlex.join(base), f"{opt.name} = {text}")[1][opt.name]
        assert from_cli == from_cell == opt.parse(text), opt.name
        assert from_cli != opt.default, f"{opt.name}: the sample should differ from the default"
    # the panel: exactly the options declared for it, starting where the spec says
    shown = {o.name for o in opts if o.spec.panel}
    if name == "capacity":  # the panel's "find capacity" mode over a probed scenario's form
        panel = Panel(scenario="bench", find_capacity=True)
        shown |= {o.name for o in options_of(registry.scenario("bench").options_type) if o.spec.panel}
    else:
        panel = Panel(scenario=name)
    assert set(panel.fields) == shown
    for opt in opts:
        if opt.spec.panel and opt.name not in PANEL_STARTS_ELSEWHERE:
            assert opt.panel_value == opt.default, opt.name
    values = panel.values()
    for opt in opts:
        if opt.name in values:
            assert values[opt.name] == opt.panel_value, opt.name


def test_every_scenario_has_help_and_its_own_options_only():
    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name in registry.BUILT_IN:
        cls = registry.scenario(name)
        assert cls.__doc__ and cls.scenario == name
        flags = {s for a in subs[name]._actions for s in a.option_strings}
        declared = {o.flag for o in options_of(cls.options_type) if not o.spec.positional}
        assert flags - declared == {"-h", "--help", "--json", "--file"} | {
            f for o in options_of(cls.options_type) for f in (*o.spec.flags, *o.spec.aliases)
        }
    sandbox_flags = {s for a in subs["sandbox"]._actions for s in a.option_strings}
    assert "--count" not in sandbox_flags and "--save" not in sandbox_flags


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def ping_scenario():
    source = README.read_text().split("<!-- add-a-scenario -->", 1)[1]
    code = re.search(r"```python\n(.*?)```", source, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    registry.unregister("ping")


def test_the_readme_example_scenario_works_in_every_front_end(ping_scenario, capsys):
    url = ping_scenario
    assert main(["ping", url, "--times", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "finished"
    run = registry.make_run("ping", url=url, times=3).execute()
    assert list(run.df["status"]) == [200, 200, 200] and run.summary().loc["latency_ms", "count"] == 3
    assert cell_values(f"ping {url}", "times = 4")[1] == {"url": url, "times": 4}
    panel = Panel(scenario="ping")
    assert set(panel.fields) == {"url", "times", "slo"} and panel.times.value == 3
    assert main(["ping", url, "--times", "0"]) == 2
    assert "--times must be at least 1 (got 0)" in capsys.readouterr().err
