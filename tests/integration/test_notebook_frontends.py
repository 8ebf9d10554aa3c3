"""The magics and the widget panel in a real IPython kernel (nbclient), against real hubs and
a real batching endpoint."""

import base64

import nbformat
import pytest

from tests.kernel import errors, execute, text

pytestmark = pytest.mark.slow


def test_line_magic_runs_a_spawn_storm_and_returns_the_run(tmp_path):
    outs = execute(
        [
            "%load_ext hubstress_ext",
            "run = %hubstress stress-test --sandbox --sandbox-spawner sim --count 3 --batch-size 3 "
            f"--save {tmp_path}",
            "import pandas as pd\n"
            "assert run.status == 'finished', run.error\n"
            "assert isinstance(run.df, pd.DataFrame) and isinstance(run.summary(), pd.DataFrame)\n"
            "assert len(run.users_df) == 3 and run.users_df['ready'].notna().all()\n"
            "html = get_ipython().display_formatter.format(run)[0]['text/html']\n"
            "assert 'hubstress stress-test' in html and '<img' in html and 'spawn' in html\n"
            "print('checked', len(run.df))",
            "again = %hubstress --count 2 --sandbox --sandbox-spawner sim\nagain",  # no scenario: a storm
            # shown by the cell's value: the live view kept only its bars (the table appears once)
            "from hubstress_ext.notebook.display import _live, _static\n"
            "view = _live[again][0]\nassert view._collapsed and not view.table.value\n"
            "assert run in _static and again in _static\nprint('once')",
        ]
    )
    assert all(not errors(o) for o in outs), [errors(o) for o in outs]
    assert "application/vnd.jupyter.widget-view+json" in text(outs[1])  # the live view
    assert "saved run to" in text(outs[1]) and len(list(tmp_path.iterdir())) == 1
    assert "checked" in text(outs[2])
    shown = text(outs[3])
    assert "StressTestRun stress-test: finished" in shown and "text/html" in shown
    assert "once" in text(outs[4])


def test_a_saved_notebook_shows_the_run_without_a_kernel(tmp_path):
    """Opened where no kernel runs (GitHub, nbviewer), a notebook has only what it saved: the
    run's table, report and chart must be static outputs, not only the live widget's state."""
    saved = tmp_path / "storm.ipynb"
    execute(
        [
            "%load_ext hubstress_ext",
            "run = %hubstress stress-test --sandbox --sandbox-spawner sim --count 3 --batch-size 3",
        ],
        save=str(saved),
    )
    outputs = nbformat.read(saved, as_version=4).cells[1].outputs
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert html and "<table" in html[0] and "ready" in html[0] and "errors" in html[0]
    assert "bottleneck: " in html[0] and "the hub&#x27;s account" in html[0]  # what the CLI prints
    assert pngs and base64.b64decode(pngs[0]).startswith(b"\x89PNG")


def test_cell_magic_errors_name_the_line():
    outs = execute(
        [
            "%load_ext hubstress_ext",
            "%%hubstress stress-test\ncount = 5\ncuont = 3",
            "%%hubstress stress-test\n# a comment\ncount = many",
            "%%hubstress stress-test\nsandbox = maybe",
            "%%hubstress stress-test\ncount = 0\nsandbox = true",
            "%%hubstress teleport\ncount = 1",
            "%hubstress stress-test --count",
            "%hubstress bench http://127.0.0.1:9/x --requests 3",
        ]
    )
    shown = [text(o) for o in outs]
    assert "line 3: unknown option 'cuont' for stress-test" in shown[1]
    assert "line 3: count must be a whole number (got 'many')" in shown[2]
    assert "line 2: sandbox is a switch: true or false (got 'maybe')" in shown[3]
    assert "line 2: --count must be at least 1 (got 0)" in shown[4]
    assert "line 1: unknown scenario 'teleport'" in shown[5]
    assert "hubstress: error: argument -c/--count: expected one argument" in shown[6]
    assert "cannot connect to http://127.0.0.1:9/x" in shown[7]
    assert all("Traceback" not in s and not errors(o) for s, o in zip(shown, outs, strict=True))


def test_token_from_a_notebook_variable_never_shows(sim_hub, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monkeypatch.delenv("JUPYTERHUB_ENDPOINT", raising=False)
    monkeypatch.setenv("HUBSTRESS_TEST_TOKEN", sim_hub.token)
    api = sim_hub.api_url
    outs = execute(
        [
            "import os\nmy_token = os.environ.pop('HUBSTRESS_TEST_TOKEN')\n%load_ext hubstress_ext",
            f"run = %hubstress activity-stress-test -e {api} --token $my_token --count 2 --duration 1",
            "assert run.status == 'finished', run.error\nrun",
            f"%%hubstress purge\nendpoint = {api}\ntoken = $my_token",
            f"JUPYTERHUB_ENDPOINT = '{api}'\nJUPYTERHUB_API_TOKEN = my_token\n"
            "listed = %hubstress purge\nprint(listed.status, listed.options.endpoint)",
            f"%hubstress activity-stress-test -e {api} --token not-the-token --count 1 --duration 1",
            "print(run.options.public(), run.meta, repr(run), run.summary().to_string())",
        ]
    )
    assert all(not errors(o) for o in outs), [errors(o) for o in outs]
    everything = "\n".join(text(o) for o in outs)
    assert sim_hub.token not in everything
    assert f"finished {api}" in text(outs[4])  # endpoint and token came from notebook variables
    assert "token rejected" in text(outs[5]) and "Traceback" not in text(outs[5])


def test_background_run_keeps_going_and_stops_cleanly():
    outs = execute(
        [
            "from hubstress_ext.batching.process import EndpointProcess\n%load_ext hubstress_ext\n"
            "endpoint = EndpointProcess('--batch-size', '4').start()",
            "run = %hubstress bench {endpoint.url} --workers 4 --duration 60 --background",
            "import time\nassert not run.done\ntime.sleep(1.5)\nrun.stop()\nassert run.wait(15)\n"
            "assert run.status == 'interrupted', run.status\nassert run.stats['ok'] > 50\n"
            "assert run.stats['requests'] == len(run.df)\nprint('stopped after', run.stats['requests'])",
            "endpoint.stop()",
        ]
    )
    assert all(not errors(o) for o in outs), [errors(o) for o in outs]
    assert "stopped after" in text(outs[2])


def test_panel_validates_inline_and_runs_a_storm():
    outs = execute(
        [
            "import hubstress_ext\np = hubstress_ext.panel(sandbox=True, sandbox_spawner='sim', count=0)\np",
            "assert p.start() is None\nprint(p.error.value)",
            "p.scenario.value = 'bench'\nassert p.start() is None\nprint(p.error.value)",
            "p.scenario.value = 'stress-test'\np.count.value = 3\np.batch_size.value = 3\nrun = p.start()\n"
            "assert run is not None and p.wait(180)\n"
            "assert p.run is run and run.status == 'finished', run.error\n"
            "assert len(p.run.df) > 0 and p.view.chart.value and 'ready' in p.view.table.value\n"
            "shown = p.view.table.value  # what the CLI's report shows, after the table\n"
            "assert '>errors<' in shown and 'bottleneck: ' in shown and 'the hub&#x27;s account' in shown\n"
            "assert '$JUPYTERHUB_API_TOKEN' in p.token.placeholder and p.token.layout.width == '480px'\n"
            "assert not p.start_button.disabled and p.stop_button.disabled\nprint('panel ok')",
        ]
    )
    assert all(not errors(o) for o in outs), [errors(o) for o in outs]
    assert "application/vnd.jupyter.widget-view+json" in text(outs[0])
    assert "'count' must be at least 1 (got 0)" in text(outs[1])  # the form's field, not a flag
    assert "bench needs the endpoint URL" in text(outs[2])
    assert "panel ok" in text(outs[3])


def test_a_fresh_panel_starts_a_run_with_no_hub_of_ones_own():
    outs = execute(
        [
            "import hubstress_ext\np = hubstress_ext.panel()\n"
            "print(p.scenario.value, p.sandbox.value, p.sandbox_spawner.value, p.count.value)",
            "run = p.start()\nassert run is not None, p.error.value\nassert p.wait(180)\n"
            "assert run.status == 'finished', run.error\nassert len(run.users_df) == 20\n"
            "assert p.view.chart.layout.display is None and p.view.chart.value\nprint('default ok')",
        ]
    )
    assert all(not errors(o) for o in outs), [errors(o) for o in outs]
    assert "stress-test True sim 20" in text(outs[0])
    assert "default ok" in text(outs[1])
    assert "Traceback" not in "\n".join(text(o) for o in outs)
