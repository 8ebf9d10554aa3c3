"""Dry-run responder: plausible hub answers so a scenario walks its whole plan offline."""

from __future__ import annotations

import json
from typing import Any

from hubstress_ext.http.client import Response


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
