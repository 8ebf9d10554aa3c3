"""When a request reached this machine: the kernel's receive timestamp of its bytes.

A server that is behind leaves requests unread in their sockets, and Tornado can only start a
request's clock when it reads the headers, so that wait is invisible to admission: under
overload the server keeps admitting requests that have already waited longer than their SLO.
Linux stamps each received segment when asked (``SO_TIMESTAMPNS``) and hands the stamp of the
last segment read to ``recvmsg``; a stream read that way knows how long its newest bytes sat
in the kernel. Elsewhere (another OS, a socket that refuses the option) nothing is stamped and
a request's age starts at its headers, as before.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

from tornado import iostream

SO_TIMESTAMPNS = 35  # asm-generic/socket.h (SO_TIMESTAMPNS_OLD; == SCM_TIMESTAMPNS); not in Python
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


class StampedStream:
    """``read_from_fd`` for an IOStream whose socket stamps its receives: reads as Tornado's
    does, and keeps the wall-clock time (``time.time()``) the newest bytes arrived."""

    __slots__ = ("sock", "arrived_at")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.arrived_at = 0.0  # 0: nothing stamped yet

    def read_from_fd(self, buf: bytearray | memoryview) -> int | None:
        try:
            nbytes, ancillary, _, _ = self.sock.recvmsg_into((buf,), _ANCILLARY)
        except BlockingIOError:
            return None
        finally:
            del buf
        if ancillary:  # the one message asked for (nothing else is enabled on the socket)
            level, kind, data = ancillary[0]
            if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET and len(data) >= _TIMESPEC.size:
                seconds, nanos = _TIMESPEC.unpack_from(data)
                self.arrived_at = seconds + nanos * 1e-9
        return nbytes


def stamp_receives(stream: iostream.IOStream) -> StampedStream | None:
    """Read ``stream`` with kernel receive stamps; None (and the stream unchanged) where the
    kernel cannot stamp."""
    if not _ANCILLARY or not sys.platform.startswith("linux"):
        return None
    sock = stream.socket
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return None
    stamped = StampedStream(sock)
    stream.read_from_fd = stamped.read_from_fd  # type: ignore[method-assign]
    return stamped


def waited_unread(stamped: StampedStream | None) -> float:
    """Seconds the newest bytes read from a stamped stream waited before being read (0 if none)."""
    if stamped is None or not stamped.arrived_at:
        return 0.0
    return max(0.0, time.time() - stamped.arrived_at)
