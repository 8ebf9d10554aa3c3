import json

import pandas as pd

from hubstress_ext import load_run
from hubstress_ext.http.records import Record
from hubstress_ext.hub.options import StressOptions
from hubstress_ext.hub.stress import StressTestRun
from hubstress_ext.results.lifecycle import LIFECYCLE_COLUMNS
from hubstress_ext.results.summary import summarize


def rec(op, latency, status=200, will_retry=False, start=0.0, error=None):
    return Record(op, "GET", "/x", start, start + latency / 1000, latency, status, error, 1, None, will_retry)


def frame(records):
    from hubstress_ext.http.records import records_to_frame

    return records_to_frame(records)


def test_summary_counts_final_attempts_and_retries_separately():
    df = frame(
        [rec("a", 500, 429, will_retry=True), rec("a", 10), rec("a", 20), rec("a", 30, 500), rec("b", 5)]
    )
    s = summarize(df)
    assert s.loc["a", "count"] == 3 and s.loc["a", "retries"] == 1 and s.loc["a", "errors"] == 1
    assert s.loc["a", "max_ms"] == 30  # the retried 500 ms attempt is counted, not timed
    assert s.loc["a", "p50_ms"] == 20
    assert s.loc["b", "count"] == 1


def test_transport_errors_count_as_errors():
    s = summarize(frame([rec("a", 5, None, error="connection failed: refused")]))
    assert s.loc["a", "errors"] == 1


def make_stress_run(token="tok-not-saved-123"):
    run = StressTestRun(StressOptions(endpoint="http://127.0.0.1:1/hub/api", token=token, count=2))
    run.started_at, run.status = 1700000000.0, "finished"
    for r in [rec("create", 50, 201), rec("spawn", 100, 202, start=1.0), rec("delete", 5, 204)]:
        run.sink.add(r)
    for i, name in enumerate(["u0", "u1"]):
        row = run.users[name]
        row.spawn_requested = 1.0 + i
        row.ready = 1.5 + i * 2  # latencies 0.5 s and 1.5 s
    run.users["u1"].spawn_attempts = 3
    return run


def test_phase_table_reports_per_user_spawn_latency():
    phases = make_stress_run().phases()
    assert list(phases.index) == ["create", "spawn", "ready", "delete"]
    assert phases.loc["ready", "p50_ms"] == 1000.0
    assert phases.loc["ready", "max_ms"] == 1500.0
    assert phases.loc["ready", "retries"] == 2


def test_saved_run_round_trips_without_the_token(tmp_path):
    run = make_stress_run()
    path = run.save(tmp_path)
    for f in path.iterdir():
        assert "tok-not-saved-123" not in f.read_text()
    meta = json.loads((path / "meta.json").read_text())
    assert meta["options"]["count"] == 2 and meta["options"]["token"] == "***"
    saved = load_run(path)
    pd.testing.assert_frame_equal(saved.summary(), run.phases(), check_dtype=False)
    assert saved.df["will_retry"].dtype == bool


def test_load_run_rejects_a_non_run_directory(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="not a saved hubstress run"):
        load_run(tmp_path)


def test_summary_counts_are_integers_and_times_what_the_clock_resolves():
    from hubstress_ext.http.records import RECORD_COLUMNS
    from hubstress_ext.results.phases import phase_table

    rows = [
        ["spawn", "POST", "/users/u/server", 1.0, 1.5, 500.123456789, 429, None, 1, "u", True, False],
        ["spawn", "POST", "/users/u/server", 3.0, 3.25, 250.987654321, 201, None, 2, "u", False, False],
    ]
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS)
    users = pd.DataFrame({"user": ["u"], "spawn_requested": [1.0], "ready": [3.5], "stop_requested": [None]})
    for table in (summarize(records), phase_table(records, users.reindex(columns=LIFECYCLE_COLUMNS))):
        for column in ("count", "errors", "retries"):
            assert pd.api.types.is_integer_dtype(table[column]), (column, table.dtypes)
    spawn = summarize(records).loc["spawn"]
    assert spawn["retries"] == 1 and spawn["p50_ms"] == 250.988  # a microsecond, no finer
