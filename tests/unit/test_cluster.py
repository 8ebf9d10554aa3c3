"""The Dask layer's own logic without a cluster: clock offsets, a shard's start, merging."""

import asyncio
import time

import numpy as np
import pandas as pd
import pytest

from hubstress_ext.cluster import clock
from hubstress_ext.cluster.coordinator import ShardState, degraded
from hubstress_ext.cluster.merge import merge
from hubstress_ext.cluster.shard import ShardJob, ShardLink, drive
from hubstress_ext.cluster.target import parse_target
from hubstress_ext.errors import OptionError
from hubstress_ext.loadgen.options import LoadOptions
from hubstress_ext.loadgen.recorder import Recorder
from hubstress_ext.loadgen.sharding import merged_frame, share, split
from hubstress_ext.loadgen.summary import bench_stats


def test_offset_takes_the_tightest_round_trip():
    # (local before, remote, local after): the 2nd sample has the shortest round trip
    samples = [(0.0, 10.9, 1.0), (2.0, 12.05, 2.1), (3.0, 12.0, 4.0)]
    assert clock.offset_of(samples) == pytest.approx(10.0)
    assert clock.measure_offset(lambda: time.time() + 5.0) == pytest.approx(5.0, abs=0.01)


class FakeLink(ShardLink):
    """The coordinator's side played in-process: the scheduler's clock is the true clock."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.sent: list[dict] = []

    def scheduler_time(self) -> float:
        return time.time()

    def send(self, message: dict) -> None:
        self.sent.append(message)

    def wait_start(self, timeout: float) -> float | None:
        return self.start

    def stop_requested(self, timeout: float) -> bool:
        time.sleep(timeout)
        return False


class Stamp(ShardJob):
    """Notes when (true time) its load began."""

    def __init__(self) -> None:
        self.began: float | None = None

    async def run(self, t0: float) -> None:
        self.began = time.time()


def test_a_shard_whose_clock_is_5_s_ahead_starts_on_time_and_reports_the_true_start():
    start = time.time() + 0.4
    job, link = Stamp(), FakeLink(start)
    result = asyncio.run(drive(job, link, 10.0, 5.0, clock=lambda: time.time() + 5.0))
    assert result["status"] == "finished"
    assert result["offset"] == pytest.approx(-5.0, abs=0.01)
    assert job.began == pytest.approx(start, abs=0.02)  # not 5 s early
    assert result["started"] == pytest.approx(start, abs=0.01)  # on the scheduler's clock
    assert link.sent[0]["kind"] == "ready"


def test_a_shard_that_finds_the_start_long_past_sends_nothing():
    job = Stamp()
    result = asyncio.run(drive(job, FakeLink(time.time() - 3.0), 10.0, 5.0))
    assert result["status"] == "late" and job.began is None


def test_wall_clock_records_of_a_shard_5_s_ahead_are_moved_back():
    """Hub records carry wall-clock stamps: the shard's offset puts them on the coordinator's clock."""
    true = pd.DataFrame({"start": [100.0, 101.0], "end": [100.5, 101.5], "latency_ms": [500.0, 500.0]})
    ahead = true.assign(start=true["start"] + 5.0, end=true["end"] + 5.0)
    shard_offset, coordinator_offset = -5.0, 0.0  # scheduler - shard clock; scheduler - coordinator
    parts = [(0, "w0", true, 0.0), (1, "w1", ahead, shard_offset - coordinator_offset)]
    merged = merge(parts, ("start", "end"))
    assert merged.groupby("shard")["start"].apply(list).to_dict() == {0: [100.0, 101.0], 1: [100.0, 101.0]}
    assert (merged["latency_ms"] == 500.0).all()  # latencies are never shifted


def _frame(rng: np.random.Generator, n: int, start: float = 0.0) -> pd.DataFrame:
    rec = Recorder(origin=0.0)
    intended = np.sort(rng.uniform(0, 2.0, n))
    for i, t in enumerate(intended):
        latency = rng.exponential(0.01)
        ok = i % 17 != 0
        rec.add(t, t, t + latency, 200 if ok else 503, "ok" if ok else "busy")
    return rec.to_frame()


def test_merged_records_summarize_like_one_run_over_their_concatenation():
    rng = np.random.default_rng(3)
    parts = [_frame(rng, 700), _frame(rng, 900)]
    states = []
    for i, frame in enumerate(parts):
        state = ShardState(i, f"tcp://w{i}", status="finished", started=1000.0 + 0.002 * i)
        state.chunks = {1: frame.iloc[:300], 2: frame.iloc[300:]}  # streamed in two pieces
        states.append(state)
    merged = merged_frame(states, 1000.0, 5000.0)
    assert len(merged) == 1600 and merged.groupby("shard").size().to_dict() == {0: 700, 1: 900}
    later = parts[1].assign(t_intended=parts[1]["t_intended"] + 0.002, t_done=parts[1]["t_done"] + 0.002)
    whole = pd.concat([parts[0], later])
    assert bench_stats(merged, 2.0) == bench_stats(whole, 2.0)
    assert merged["time"].iloc[0] == pd.Timestamp(5000.0 + merged["t_done"].iloc[0], unit="s", tz="UTC")


def test_load_split_evenly_with_offsets_and_seeds():
    assert [share(10, 3, i) for i in range(3)] == [4, 3, 3]
    closed = split(LoadOptions(url="http://127.0.0.1:1/x", workers=9, requests=2000), 2)
    assert [(o.workers, o.requests) for o, _ in closed] == [(5, 1000), (4, 1000)]
    opened = split(LoadOptions(url="http://127.0.0.1:1/x", rate=400, duration=3), 2)
    assert [(o.rate, phase) for o, phase in opened] == [(200, 0.0), (200, 0.0025)]
    poisson = split(LoadOptions(url="http://127.0.0.1:1/x", rate=400, arrival="poisson", seed=4), 2)
    assert [o.seed for o, _ in poisson] == [4000, 4001] and {p for _, p in poisson} == {0.0}
    with pytest.raises(OptionError, match="fewer than the 2 shards"):
        split(LoadOptions(url="http://127.0.0.1:1/x", workers=1), 2)


def test_dask_targets_are_checked_before_anything_starts():
    assert parse_target("local:2").workers == 2
    assert parse_target("gateway").kind == "gateway" and parse_target("gateway:4").workers == 4
    assert parse_target("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "local:x", "8786", "http://host:8786"):
        with pytest.raises(OptionError, match="--dask"):
            parse_target(bad)


def test_a_lost_shard_makes_the_run_degraded():
    assert degraded(pd.DataFrame({"status": ["finished", "lost"]}))
    assert not degraded(pd.DataFrame({"status": ["finished", "stopped"]}))
    assert not degraded(None)


def test_a_shard_that_sent_nothing_is_named():
    from hubstress_ext.loadgen.sharding import shard_warnings

    table = pd.DataFrame(
        [
            {"shard": 0, "worker": "w0", "status": "finished", "requests": 900, "cpu_pct": 40.0},
            {"shard": 1, "worker": "w1", "status": "finished", "requests": 0, "cpu_pct": 20.0},
        ]
    )
    warnings = shard_warnings(table)
    assert warnings == ["shard 1 (w1) sent no request: its share of the load is missing from the result"]
    table["first_sent_ms"] = [3.0, 1200.0]
    table.loc[1, "requests"] = 2
    assert shard_warnings(table) == [
        "shard 1 (w1) sent its first request 1,200 ms after the start (connecting to the target "
        "took that long): the start of its share was lost"
    ]


class VersionsOf:
    """A stand-in client: what ``client.run(importlib.metadata.version, ...)`` answers per worker."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers

    def run(self, function, *args, on_error="raise"):
        return self.answers


def test_every_worker_must_have_this_version_of_hubstress():
    import importlib.metadata

    from hubstress_ext import __version__
    from hubstress_ext.cluster.target import check_workers
    from hubstress_ext.errors import RunError

    both = {"tcp://b:1": __version__, "tcp://a:1": __version__}
    assert check_workers(VersionsOf(both)) == ["tcp://a:1", "tcp://b:1"]
    with pytest.raises(RunError, match=r"needs hubstress_ext .* \(tcp://b:1: 0\.0\.1\)"):
        check_workers(VersionsOf({"tcp://a:1": __version__, "tcp://b:1": "0.0.1"}))
    missing = importlib.metadata.PackageNotFoundError("hubstress_ext")
    with pytest.raises(RunError, match="tcp://a:1: not installed"):
        check_workers(VersionsOf({"tcp://a:1": missing}))
    with pytest.raises(RunError, match="has no workers"):
        check_workers(VersionsOf({}))


def test_gateway_without_dask_gateway_says_what_to_install(monkeypatch):
    import sys

    from hubstress_ext.cluster.target import open_cluster
    from hubstress_ext.errors import RunError

    monkeypatch.setitem(sys.modules, "dask_gateway", None)  # not installed
    with pytest.raises(RunError, match="pip install dask-gateway"):
        open_cluster("gateway")


def test_a_dask_call_that_never_answers_is_one_clear_error(monkeypatch):
    from hubstress_ext.cluster import coordinator as coordinator_module
    from hubstress_ext.cluster.coordinator import Coordinator
    from hubstress_ext.cluster.target import Cluster
    from hubstress_ext.errors import RunError

    monkeypatch.setattr(coordinator_module, "ANSWER_TIMEOUT_S", 0.2)
    coordinator = Coordinator(Cluster(object(), ["tcp://w:1"], "test"), [Stamp()], max_seconds=1.0)
    with pytest.raises(RunError, match=r"did not answer within 0\.2 s \(reading the scheduler's clock\)"):
        asyncio.run(coordinator._answered("reading the scheduler's clock", time.sleep, 1.0))
