"""Why a server did not start, in the few words an operator acts on.

"throttled": ``concurrent_spawn_limit`` (429 with Retry-After); "hub full":
``active_server_limit`` (429 without); "spawn timeout"; "spawner error" (the spawner's own
failure); "proxy error" (502/503/504 in front of the hub); "hub unreachable" (no answer);
"refused" (any other 4xx: a bad request, a missing scope).
"""

from __future__ import annotations

from hubstress_ext.http.client import Response

THROTTLED = "throttled"
HUB_FULL = "hub full"
SPAWN_TIMEOUT = "spawn timeout"
SPAWNER_ERROR = "spawner error"
PROXY_ERROR = "proxy error"
UNREACHABLE = "hub unreachable"
REFUSED = "refused"
CAUSES = (THROTTLED, HUB_FULL, SPAWN_TIMEOUT, SPAWNER_ERROR, PROXY_ERROR, UNREACHABLE, REFUSED)


def cause_of_answer(resp: Response) -> str:
    """The cause of a failed spawn request's final answer."""
    if resp.error is not None or resp.status is None:
        return UNREACHABLE
    if resp.status == 429:
        return THROTTLED if "Retry-After" in resp.headers else HUB_FULL
    if resp.status in (502, 503, 504):
        return PROXY_ERROR
    if resp.status >= 500:
        return SPAWNER_ERROR
    return REFUSED


def cause_of_message(message: str) -> str:
    """The cause of a spawn that failed after it was accepted (its progress stream's end)."""
    text = message.lower()
    if "timeout" in text or "timed out" in text or "no final event within" in text:
        return SPAWN_TIMEOUT
    if "progress stream" in text and any(code in text for code in ("502", "503", "504")):
        return PROXY_ERROR
    if "progress stream" in text and ("connection" in text or "disconnected" in text):
        return UNREACHABLE
    return SPAWNER_ERROR
