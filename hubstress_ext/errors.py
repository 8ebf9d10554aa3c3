"""Every error hubstress raises on purpose sits under :class:`HubstressError`.

Two kinds matter to a front end: :class:`OptionError` (bad input: one line naming the option,
nothing was started) and :class:`RunError` (a run failed: one readable line, the run object
keeps what it measured). ``except HubstressError`` catches both and nothing unexpected.
This module imports nothing from the package, so every layer may use it.
"""

from __future__ import annotations


class HubstressError(Exception):
    """The root of hubstress's own errors."""


class OptionError(HubstressError, ValueError):
    """Bad user input: the message is one line naming the option and what is wrong."""


class RunError(HubstressError):
    """A failure the run reports as one readable line (unreachable target, bad token...)."""
