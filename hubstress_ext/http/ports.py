"""A free TCP port on loopback, for the servers hubstress starts (sandbox hub, endpoint)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the OS has just handed out on 127.0.0.1 (free now; bind it soon)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
