"""What the batching benchmarks share: starting and stopping the endpoints they measure, each
on its own CPU when the machine has two, and the median of repeated rounds. One module that
``batching.py``, ``overload.py`` and ``adaptive.py`` all import (none imports another back)."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time
from typing import Any

from hubstress_ext.http.ports import free_port

__all__ = ["free_port", "median_round", "on_cpu", "pin_self", "start", "stop"]

STARTED: list[subprocess.Popen] = []
PIN = bool(shutil.which("taskset")) and len(os.sched_getaffinity(0)) >= 2


def median_round(rounds: list, key) -> Any:
    """The round in the middle by ``key`` (an upper median): reported in full, its neighbours
    as the spread; a shared machine makes any single round unreliable."""
    return sorted(rounds, key=key)[len(rounds) // 2]


def on_cpu(cpu: int, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if PIN else cmd


def pin_self() -> None:
    """A benchmark that generates load from its own process keeps it off the servers' CPU."""
    if PIN:
        os.sched_setaffinity(0, {0})


@atexit.register
def _stop_all() -> None:
    """A benchmark that fails half-way must not leave servers running."""
    for proc in STARTED:
        if proc.poll() is None:
            stop(proc)


def start(cmd: list[str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(on_cpu(1, cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(proc)
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(0.3)
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
