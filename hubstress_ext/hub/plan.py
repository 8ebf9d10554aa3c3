"""A dry run's hub: the real one read where that decides what the run would touch (its users
with the prefix, the marker group), plausible answers for everything else (nothing written)."""

from __future__ import annotations

import json
from typing import Any

from hubstress_ext.http.client import Response


def plan_reads(method: str, path: str) -> bool:
    """The reads a dry run sends to the real hub: the user list and the marker group."""
    return method == "GET" and (path == "/users" or path.startswith("/groups/"))


def plan_responder(method: str, path: str, body: Any) -> Response:
    if method == "POST" and path == "/users":
        users = [{"name": n, "servers": {}} for n in (body or {}).get("usernames", [])]
        return Response(201, json.dumps(users).encode())
    if method == "GET" and path.startswith("/groups/"):
        return Response(404, b'{"message": "dry run: no group"}')
    if method == "GET" and path == "/users":
        return Response(200, b"[]")
    if method == "POST" and path.endswith(("/server", "/activity")) or "/servers/" in path:
        return Response(201 if method == "POST" else 204, b"")
    if method == "DELETE":
        return Response(204, b"")
    return Response(200, b"{}")
