"""Names for the users a run creates: ``<prefix><n>``, continuing after this tool's existing ones."""

from __future__ import annotations

import re

from hubstress_ext.hub.api import HubAPI


async def allocate_names(api: HubAPI, prefix: str, count: int) -> list[str]:
    """Next ``count`` free names; only marker-group members with the prefix are considered ours."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    taken = [int(m.group(1)) for n in await api.group_members() if (m := pattern.match(n))]
    start = max(taken, default=-1) + 1
    return [f"{prefix}{i}" for i in range(start, start + count)]


def ours(names: list[str], prefix: str) -> list[str]:
    pattern = re.compile(re.escape(prefix) + r"\d+$")
    return [n for n in names if pattern.match(n)]
