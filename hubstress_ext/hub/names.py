"""Names for the users a run creates: ``<prefix><n>`` with ASCII digits, never an existing name.

``\\d`` in Python matches any Unicode digit (``hubstress-٣``, ``hubstress-６``): names this tool
never makes, so every pattern here spells out ``[0-9]``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from hubstress_ext.hub.api import HubAPI


def _pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix) + r"([0-9]+)")


def ours(names: list[str], prefix: str) -> list[str]:
    """The names this tool could have made: the prefix and ASCII digits, nothing else."""
    pattern = _pattern(prefix)
    return [n for n in names if pattern.fullmatch(n)]


async def next_free_index(api: HubAPI, prefix: str) -> int:
    """One past the highest ``<prefix><n>`` on the hub, whoever made it and whatever its group.

    Looking at every user with the prefix (not only marker-group members) is what keeps a run
    from picking the name of a look-alike user someone created by hand.
    """
    pattern = _pattern(prefix)
    users = [u["name"] for u in await api.list_users(prefix=prefix)]
    members = await api.group_members()
    note_look_alikes(api, users, members, prefix)
    taken = [int(m.group(1)) for n in users + members if (m := pattern.fullmatch(n))]
    return max(taken, default=-1) + 1


def note_look_alikes(api: HubAPI, users: list[str], members: list[str], prefix: str) -> None:
    """A dry run's plan names the users with our prefix that are not ours (no marker)."""
    marked = set(members)
    for name in sorted(n for n in users if n.startswith(prefix) and n not in marked):
        api.client.note_plan(f"left alone (not created by hubstress): {name}")


def name_stream(prefix: str, start: int) -> Iterator[str]:
    """``<prefix><start>``, ``<prefix><start+1>``, ...: creation draws from it until it has enough."""
    return (f"{prefix}{n}" for n in itertools.count(start))
