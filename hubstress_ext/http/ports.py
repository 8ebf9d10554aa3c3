"""A free TCP port on loopback, for the servers hubstress starts (sandbox hub, endpoint).

A port is chosen a moment before the server that will listen on it binds it (the sandbox
hub starts its proxy seconds later). A port from the kernel's ephemeral range could be
handed, meanwhile, to any outgoing connection as its source port, and the server would then
fail with "address already in use" (seen: the sandbox's proxy API port). Ports below that
range are never given out that way, so they are drawn from there, checked by binding.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 10000
TRIES = 100


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free on 127.0.0.1 now, outside the ephemeral range when there is room (bind it soon)."""
    top = _ephemeral_start()
    if top - LOWEST > 1000:
        rng = random.SystemRandom()
        for _ in range(TRIES):
            port = rng.randrange(LOWEST, top)
            if _bindable(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
