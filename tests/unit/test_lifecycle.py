"""One lifecycle for every front end: interrupt (once, twice), finish (save once), exit status."""

import asyncio
from dataclasses import dataclass

import pandas as pd
import pytest

from hubstress_ext.engine.options import RunOptions
from hubstress_ext.engine.run import Run
from hubstress_ext.engine.spec import option


@dataclass
class WaitOptions(RunOptions):
    dry_run: bool = option(False, "send nothing")


class WaitsForStop(Run):
    """Runs until stopped; a run that created things when ``cleans_up``."""

    scenario = "waits"
    options_type = WaitOptions

    async def main(self) -> None:
        while not self.stopping:  # noqa: ASYNC110 - a test stand-in
            await asyncio.sleep(0.01)
        self.status = "interrupted"

    @property
    def df(self) -> pd.DataFrame:
        return pd.DataFrame({"op": ["wait"]})


def started(cls=WaitsForStop, **values):
    run = cls(WaitOptions(**values).resolve())
    run.start()
    return run


def test_first_interrupt_stops_and_keeps_what_was_measured(tmp_path):
    run = started(save=str(tmp_path))
    assert run.interrupt() == "interrupted: stopping, keeping what was measured"
    assert run.wait(10) and run.exit_code == 130
    saved = run.finish()
    assert saved is not None and saved.parent == tmp_path
    assert run.finish() == saved and len(list(tmp_path.iterdir())) == 1  # saved once


def test_a_run_that_cleans_up_says_so_and_the_second_press_names_purge_as_the_front_end_spells_it():
    class CleansUp(WaitsForStop):
        cleans_up = True

        async def main(self) -> None:
            while self._stops < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            self.status = "interrupted"

    run = started(CleansUp)
    assert "removing what this run created" in run.interrupt(purge="%hubstress purge")
    assert run.interrupt(purge="%hubstress purge") == (
        "leaving now: what is left is in the marker group; `%hubstress purge` removes it"
    )
    assert run.wait(10)


def test_a_dry_run_is_not_saved_and_finish_needs_an_ended_run(tmp_path):
    run = started(save=str(tmp_path), dry_run=True)
    with pytest.raises(RuntimeError, match="before the run ended"):
        run.finish()
    run.interrupt()
    run.wait(10)
    assert run.finish() is None and not list(tmp_path.iterdir())
