"""What a stop means, in words every front end shows the same way.

A run is driven by its front end (the CLI's signal handler, a notebook's interrupt or Stop
button) through ``Run.interrupt()`` and ended by ``Run.finish()`` (verdict, save, exit status);
this module says what each press of Ctrl-C does, so the CLI and the magics cannot drift.
"""

from __future__ import annotations


def interrupt_message(presses: int, cleans_up: bool, sandbox: bool, purge: str) -> str | None:
    """What the user is told on the ``presses``-th interrupt (None: nothing new to say).

    Once: nothing new is sent; a run that created things removes them (else it keeps what it
    measured). Twice: it leaves at once; what is left is in the marker group (``purge``), or
    goes away with the sandbox hub."""
    if presses == 1 and not cleans_up:
        return "interrupted: stopping, keeping what was measured"
    if presses == 1:
        return (
            "interrupted: sending nothing new, removing what this run created "
            "(interrupt again to leave at once)"
        )
    if presses == 2 and cleans_up and sandbox:
        return "leaving now: the sandbox hub goes away with everything on it"
    if presses == 2 and cleans_up:
        return f"leaving now: what is left is in the marker group; `{purge}` removes it"
    return None
