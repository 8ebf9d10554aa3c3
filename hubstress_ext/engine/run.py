"""Run: the object every front end drives (CLI, magics, panel, notebooks).

A run is started with ``execute()`` (blocking, its own event loop) or ``run_async()`` (on the
caller's loop), can be stopped from any thread with ``request_stop()``, and afterwards holds
its results as DataFrames (``.df``, ``.summary()``) and can ``save()`` itself. Hub scenarios
(``hub.run.HubRun``) and endpoint load (``loadgen``) are subclasses; a front end only needs
this interface.

Each scenario's Run class also says how it reports, from a ``RunRecord`` (``engine.record``)
and nothing else: ``summary_of(record)`` (the table) and ``report_of(record)`` (the closing
text). ``run.summary()`` / ``run.report()`` hand them ``run.record()``; a saved run
(``engine.saved``) is a record read back, so it reports through the same two functions.
``chart_data()`` + ``figure()`` draw the chart, ``frame_sources()`` names what ``save()``
writes. Front ends call these and never ask which scenario they hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from hubstress_ext.engine import slo
from hubstress_ext.engine.lifecycle import interrupt_message
from hubstress_ext.engine.options import RunOptions
from hubstress_ext.engine.progress import Progress
from hubstress_ext.engine.record import LazyFrames, RunRecord
from hubstress_ext.engine.spec import secret_values
from hubstress_ext.errors import RunError

log = logging.getLogger("hubstress")


class Run:
    """Lifecycle shared by every run: status, timing, stop requests, results, saving."""

    scenario: ClassVar[str] = "run"  # its name in the registry, the CLI and saved runs
    options_type: ClassVar[type[RunOptions]] = RunOptions
    cleans_up: ClassVar[bool] = False  # a stop is followed by removing what the run created
    # prefixes of the --slo figures a run may be unable to see (a rule on one is then skipped)
    optional_figures: ClassVar[tuple[str, ...]] = ()
    # settings of the target (not options of the run) that a run made of runs may change
    # between its runs (``capacity --grid``: the endpoint's batch_size): see ``set_external``
    external_settings: ClassVar[tuple[str, ...]] = ()
    help_epilog: ClassVar[str | None] = None  # after the options in `hubstress NAME --help`

    def __init__(self, options: Any) -> None:
        self.options = options
        self.progress = Progress()
        self.status = "created"
        self.error: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.meta: dict[str, Any] = {}
        self.saved_to: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stops = 0
        self._presses = 0  # interrupts from the front end (``interrupt()``)
        self._finish_lock = threading.Lock()
        self._done = threading.Event()
        self._started = threading.Event()  # set once the run's loop is known (stop() works)
        self.outcomes: list[slo.Outcome] = []  # the --slo rules, evaluated when the run ends
        self.cluster: Any = None  # a --dask run's cluster (``cluster.target.Cluster``) while it runs
        self._lent_cluster: Any = None  # one a run made of runs opened for all of its runs

    # -- what a subclass implements ----------------------------------------------------------

    async def main(self) -> None:
        """Do the work; set ``self.status`` ("finished", "interrupted", ...)."""
        raise NotImplementedError

    def on_stop(self) -> None:
        """Called on the run's loop for each ``request_stop()``; ``self._stops`` counts them."""

    def succeeded(self) -> bool:
        return self.status == "finished"

    # -- running ---------------------------------------------------------------------------

    def execute(self) -> Run:
        """Run to completion in a fresh event loop (blocking)."""
        asyncio.run(self.run_async())
        return self

    async def run_async(self) -> Run:
        self._loop = asyncio.get_running_loop()
        self._started.set()
        self.status = "running"
        self.started_at = time.time()
        try:
            await self.main()
        except RunError as exc:
            self.status, self.error = "failed", str(exc)
        except Exception as exc:  # keep the run object usable; the front end shows the error
            log.debug("run failed", exc_info=True)
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.finished_at = time.time()
            self._finish_verdict()
            self._done.set()
        return self

    @contextlib.asynccontextmanager
    async def shard_cluster(self) -> AsyncIterator[None]:
        """For a ``--dask`` run: connect to the cluster (``self.cluster``), let go afterwards."""
        target = getattr(self.options, "dask", None)
        if not target:
            yield
            return
        from hubstress_ext.cluster.target import open_cluster

        lent = self._lent_cluster
        self.cluster = lent if lent is not None else await asyncio.to_thread(open_cluster, target)
        self.meta["dask"] = {"cluster": self.cluster.description, "workers": self.cluster.workers}
        try:
            yield
        finally:
            if lent is None:  # a lent cluster is closed by whoever opened it
                await asyncio.to_thread(self.cluster.close)

    def lend_cluster(self, cluster: Any) -> None:
        """Shard on ``cluster`` (already open) instead of opening one from ``--dask``: a
        capacity search opens its probes' cluster once, not once per probe (a local cluster
        takes seconds to start)."""
        self._lent_cluster = cluster

    @contextlib.asynccontextmanager
    async def cluster_for(self, options: Any) -> AsyncIterator[Any]:
        """The cluster that runs with ``options`` would open (None without ``--dask``), opened
        once for a run made of them and closed after."""
        target = getattr(options, "dask", None)
        if not target:
            yield None
            return
        from hubstress_ext.cluster.target import open_cluster

        cluster = await asyncio.to_thread(open_cluster, target)
        self.meta["dask"] = {"cluster": cluster.description, "workers": cluster.workers}
        try:
            yield cluster
        finally:
            await asyncio.to_thread(cluster.close)

    # -- a run made of runs (``capacity``): what its runs share, and what each one concluded ----

    @classmethod
    @contextlib.asynccontextmanager
    async def shared_target(cls, options: Any) -> AsyncIterator[Any]:
        """Something runs of this scenario with these options can share (a hub run's sandbox,
        started once for a whole search instead of once per probe); hand it to ``adopt``."""
        yield None

    def adopt(self, shared: Any) -> None:
        """Run against what ``shared_target`` gave instead of setting up a target of its own."""

    @classmethod
    async def set_external(cls, options: Any, name: str, value: Any) -> Any:
        """Set one of ``external_settings`` on the target; returns the value it had."""
        raise RunError(f"{cls.scenario} has no setting {name!r} to change between runs")

    @classmethod
    def reference_load(
        cls, values: dict[str, Any], knob: str
    ) -> tuple[list[dict[str, Any]], str, str] | None:
        """Loads to measure before searching over ``knob`` (each one's options, the figure they
        give, the best of which is the reference, and what it is called): bench's saturated
        throughput, closed loops; None: no reference."""
        return None

    def fell_behind(self) -> str | None:
        """Why the target did not keep up with the load offered (an open loop answering less
        than it was sent), though every rule may hold over a short run; None: it kept up."""
        return None

    def bottleneck_line(self) -> str | None:
        """What limited this run, as its report's bottleneck line says (None: the scenario has none)."""
        return None

    @property
    def generator_limited(self) -> bool:
        """The load generator, not the target, set the pace (its figures then bound the target's)."""
        return False

    # -- the verdict (--slo, --junit) ---------------------------------------------------------

    def figures(self) -> dict[str, float]:
        """What ``--slo`` rules can name: ``<row>.p50|p90|p99|max`` (seconds) of each summary
        row, ``<row>.count``, ``<row>.errors``, and ``failures`` (a fraction)."""
        out: dict[str, float] = {}
        try:
            summary = self.summary()
        except Exception:  # a run that failed before it had anything to summarize
            return out
        for name, row in summary.iterrows():
            for stat in ("p50", "p90", "p99", "max"):
                if f"{stat}_ms" in row and pd.notna(row[f"{stat}_ms"]):
                    out[f"{name}.{stat}"] = float(row[f"{stat}_ms"]) / 1000.0
            for stat in ("count", "errors"):
                if stat in row and pd.notna(row[stat]):
                    out[f"{name}.{stat}"] = float(row[stat])
        rate = self.failure_rate()
        if rate is not None:
            out["failures"] = rate
        return out

    def failure_rate(self) -> float | None:
        """The fraction of the run's units of work that failed (users, sessions, requests)."""
        try:
            summary = self.summary()
        except Exception:
            return None
        if "count" not in summary or "errors" not in summary or summary["count"].sum() == 0:
            return None
        return float(summary["errors"].sum() / summary["count"].sum())

    def _finish_verdict(self) -> None:
        """Evaluate the ``--slo`` rules once the run has ended; write ``--junit`` if asked."""
        rules = getattr(self.options, "slo", None) or []
        path = getattr(self.options, "junit", None)
        if not rules and not path:
            return
        run_ok = self.status == "finished" and self.succeeded()
        figures = self.figures() if rules and self.status != "failed" else None
        self.outcomes = slo.evaluate(rules, figures, self.optional_figures) if figures is not None else []
        if rules:
            self.meta["verdict"] = slo.verdict_lines(self.outcomes, run_ok)
        if path:
            note = self.error or ("" if run_ok else f"run {self.status}")
            seconds = (self.finished_at or time.time()) - (self.started_at or time.time())
            try:
                Path(path).expanduser().write_text(
                    slo.junit_xml(f"hubstress.{self.scenario}", self.outcomes, run_ok, note, seconds)
                )
            except OSError as exc:
                log.warning("could not write the JUnit file %s: %s", path, exc.strerror or exc)

    def verdict_lines(self) -> list[str]:
        """PASS/FAIL and each rule's outcome (nothing when no ``--slo`` was given)."""
        return verdict_lines(self.record())

    def start(self) -> threading.Thread:
        """Run in a background thread with its own event loop; returns at once.

        What the notebook front ends use, so the kernel stays responsive and displays update.
        """
        thread = threading.Thread(target=self.execute, name=f"hubstress-{self.scenario}", daemon=True)
        thread.start()
        self._started.wait(10)  # stop() works as soon as we return
        return thread

    def request_stop(self) -> None:
        """Stop the run; safe to call from any thread (a notebook's Stop button, a signal)."""
        loop = self._loop
        if loop is None or self._done.is_set():
            return
        loop.call_soon_threadsafe(self._stop_in_loop)

    def _stop_in_loop(self) -> None:
        self._stops += 1
        self.on_stop()

    stop = request_stop

    def interrupt(self, purge: str = "hubstress purge") -> str | None:
        """A Ctrl-C, a kernel interrupt or a Stop button: the first stops the run (and it cleans
        up), the second leaves at once. Returns what to tell the user (``engine.lifecycle``);
        ``purge`` is how this front end spells the purge command."""
        self._presses += 1
        self.request_stop()
        return interrupt_message(self._presses, self.cleans_up, self.target_is_throwaway, purge)

    @property
    def target_is_throwaway(self) -> bool:
        """What the run loads goes away with it (a hub run's sandbox): leaving early leaves nothing."""
        return False

    @property
    def wants_saving(self) -> bool:
        """Saved at the end when ``save`` names a folder, whatever the outcome (a failed run's
        record says why), except a dry run, which measured nothing."""
        return bool(self.save_dir) and not getattr(self.options, "dry_run", False)

    def finish(self) -> Path | None:
        """Once the run has ended: save it if asked (once, however often this is called) and
        return where; the verdict was evaluated when it ended; ``exit_code`` is the status."""
        if not self.done:
            raise RuntimeError("finish() before the run ended: wait() first")
        with self._finish_lock:
            if self.wants_saving and self.saved_to is None:
                self.save(self.save_dir)
        return self.saved_to

    @property
    def stopping(self) -> bool:
        """A stop was asked for: a scenario's loop sends nothing new once this is true."""
        return self._stops > 0

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run has finished; False if ``timeout`` passed first."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- results ----------------------------------------------------------------------------

    @property
    def df(self) -> pd.DataFrame:
        raise NotImplementedError

    def summary(self) -> pd.DataFrame:
        """The run's table, now (live) or at its end: ``summary_of(run.record())``."""
        return type(self).summary_of(self.record())

    def chart_data(self) -> Any:
        """What the chart is drawn from: small and picklable (drawn in a helper process)."""
        return None

    @staticmethod
    def figure(data: Any) -> Any:
        """A matplotlib Figure of ``chart_data()``, or None while there is nothing to draw."""
        return None

    def report(self) -> str:
        """The closing report as text (what the CLI prints): ``report_of(run.record())``."""
        return type(self).report_of(self.record())

    def report_json(self) -> dict[str, Any]:
        """The result as one JSON-able object (``--json``)."""
        out: dict[str, Any] = {"status": self.status, "error": self.error}
        if self.outcomes:
            out["verdict"] = "PASS" if self.exit_code == 0 else "FAIL"
            out["rules"] = [
                {"rule": o.rule.text, "actual": o.actual, "passed": o.passed, "note": o.note}
                for o in self.outcomes
            ]
        return out

    # -- the record, and the one report path ---------------------------------------------------

    def frame_sources(self) -> dict[str, Callable[[], pd.DataFrame]]:
        """What the run measured, by file stem (made when asked for): what ``save()`` writes and
        what its report reads."""
        return {"records": lambda: self.df}

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every frame of ``frame_sources()``, made now."""
        return dict(self.record().frames)

    def record(self) -> RunRecord:
        """The run as its report sees it; a saved run is the same record read back."""
        return RunRecord(
            scenario=self.scenario,
            status=self.status,
            error=self.error,
            options=self.options.public(),
            meta=self.meta,
            frames=LazyFrames(self.frame_sources()),
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    @classmethod
    def summary_of(cls, record: RunRecord) -> pd.DataFrame:
        """The summary table of a run of this scenario, live or saved."""
        from hubstress_ext.results.summary import summarize

        return summarize(record.frame("records"))

    @classmethod
    def report_of(cls, record: RunRecord) -> str:
        """The closing report of a run of this scenario, live or saved."""
        from hubstress_ext.results.summary import format_table

        lines = [f"hubstress {record.scenario}: {record.status}"]
        if record.error:
            lines.append(f"error: {record.error}")
        summary = cls.summary_of(record)
        lines += ["", format_table(summary) if not summary.empty else "(no requests recorded)"]
        return "\n".join(lines + verdict_lines(record))

    # -- front-end settings carried by the options --------------------------------------------

    @property
    def save_dir(self) -> str | None:
        """Where front ends save the finished run (the ``save`` option)."""
        return getattr(self.options, "save", None)

    @property
    def log_options(self) -> tuple[bool, str | None]:
        """(verbose, log file) for the front end's logging set-up."""
        return bool(getattr(self.options, "verbose", False)), getattr(self.options, "log_to_file", None)

    @property
    def secrets(self) -> list[str]:
        """The values of the options declared secret (the token, a password): what every log
        line is masked of, whatever the option is called."""
        return secret_values(self.options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scenario}: {self.status}>"

    @property
    def exit_code(self) -> int:
        """0 passed; 130 stopped; 1 otherwise. A ``degraded`` run (a Dask shard was lost) is 1
        unless ``--allow-lost-shards`` accepts it."""
        whole = self.status == "finished" or (
            self.status == "degraded" and getattr(self.options, "allow_lost_shards", False)
        )
        if whole and self.succeeded() and slo.passed(self.outcomes):
            return 0
        if self.status in ("interrupted", "aborted"):
            return 130
        return 1

    def save(self, directory: str | Path) -> Path:
        from hubstress_ext.results.store import save_run

        self.saved_to = save_run(self, directory)
        return self.saved_to


def verdict_lines(record: RunRecord) -> list[str]:
    """PASS/FAIL and each rule's outcome, once the run has ended (none without ``--slo``)."""
    return list(record.meta.get("verdict", [])) if record.ended else []
