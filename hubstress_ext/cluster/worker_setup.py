"""Preloaded into the worker processes of a ``local:N`` cluster (Dask's ``preload``).

Those processes share the terminal's process group with the CLI, so a Ctrl-C reaches them
too and would kill every shard mid-load. They ignore SIGINT: the coordinator, which got the
same Ctrl-C, tells each shard to stop (and a second Ctrl-C abandons them).
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
