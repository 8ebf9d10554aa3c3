"""Fixtures of the load generator's integration tests: the test app and a real endpoint."""

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hubstress_ext.http.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def process(cmd: list[str], ready: str):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    assert ready in line, line
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def app():
    """The test app (tests/apps.py) on a free port; yields its base URL."""
    port = free_port()
    with process([sys.executable, "-m", "tests.apps", str(port)], "ready"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def endpoint():
    """A real `hubstress serve` (echo model); yields its batch URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "hubstress_ext", "serve", "--port", str(port), "--batch-size", "4"]
    with process(cmd + ["--max-wait-ms", "5"], "batching endpoint on"):
        yield f"http://127.0.0.1:{port}/hubstress/batch"
