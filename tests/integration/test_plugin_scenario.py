"""A scenario from another package, found through the ``hubstress.scenarios`` entry point: a
tiny package is built and installed for real (pip, no network), then run from the CLI and
from the magic, saved and reopened, with no line of hubstress changed."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

PYPROJECT = """
[build-system]
requires = ["flit_core>=3.9"]
build-backend = "flit_core.buildapi"

[project]
name = "hubstress-hello"
version = "0.1"
description = "a hubstress scenario from outside"

[project.entry-points."hubstress.scenarios"]
hello = "hubstress_hello:HelloRun"
"""

MODULE = '''
"""A scenario that says hello COUNT times, each a record."""

import asyncio
import time
from dataclasses import dataclass

import pandas as pd

from hubstress_ext.engine.options import RunOptions
from hubstress_ext.engine.run import Run
from hubstress_ext.engine.spec import option


@dataclass
class HelloOptions(RunOptions):
    count: int = option(3, "how many greetings", flags=("-c",), low=1)


class HelloRun(Run):
    """say hello COUNT times (a scenario from another package)"""

    scenario = "hello"
    options_type = HelloOptions

    def __init__(self, options):
        super().__init__(options)
        self.rows = []

    async def main(self):
        for n in range(self.options.count):
            self.rows.append({"op": "hello", "n": n, "at": time.time()})
            await asyncio.sleep(0)
        self.status = "finished"

    @property
    def df(self):
        return pd.DataFrame(self.rows, columns=["op", "n", "at"])

    @classmethod
    def summary_of(cls, record):
        return pd.DataFrame({"count": [len(record.frame("records"))]}, index=["hello"])
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    source, site = root / "src", root / "site"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "hubstress_hello.py").write_text(textwrap.dedent(MODULE))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [*pip, "--target", str(site), str(source)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(site.glob("hubstress_hello-0.1.dist-info/entry_points.txt"))
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }


def run(args, env, timeout=120):
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
    )


def test_an_installed_scenario_runs_from_the_cli_saves_and_reopens(plugin_env, tmp_path):
    listed = run([sys.executable, "-m", "hubstress_ext"], plugin_env)
    assert "hello" in listed.stderr and "say hello COUNT times" in listed.stderr
    helped = run([sys.executable, "-m", "hubstress_ext", "hello", "--help"], plugin_env)
    assert "how many greetings" in helped.stdout
    done = run(
        [sys.executable, "-m", "hubstress_ext", "hello", "-c", "4", "--save", str(tmp_path)], plugin_env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hubstress hello: finished" in done.stdout and "saved run to" in done.stdout
    (saved,) = tmp_path.iterdir()
    again = run([sys.executable, "-m", "hubstress_ext", "report", str(saved)], plugin_env)
    live = done.stdout.split("saved run to")[0].strip()
    assert live in again.stdout and "4" in live
    bad = run([sys.executable, "-m", "hubstress_ext", "hello", "-c", "0"], plugin_env)
    assert bad.returncode == 2 and "--count" in bad.stderr, bad.stderr


def test_an_installed_scenario_runs_from_the_magic(plugin_env):
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'hubstress_ext')\n"
        "r = ip.run_line_magic('hubstress', 'hello --count 2')\n"
        "print('RESULT', r.scenario, r.status, len(r.df))\n"
    )
    done = run([sys.executable, "-c", code], plugin_env)
    assert "RESULT hello finished 2" in done.stdout, done.stdout + done.stderr


def test_without_the_package_the_scenario_is_unknown(tmp_path):
    done = run([sys.executable, "-m", "hubstress_ext", "hello"], dict(os.environ))
    assert done.returncode == 2 and "invalid choice: 'hello'" in done.stderr
