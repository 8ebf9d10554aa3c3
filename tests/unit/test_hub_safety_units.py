"""Unit checks behind the hub-safety guarantees (names, the dead-hub watch, expected answers)."""

import asyncio

import pandas as pd

from hubstress_ext.http.client import Response
from hubstress_ext.http.records import Record, records_to_frame
from hubstress_ext.hub.health import SUSPECT_STREAK, HubWatch, looks_gone
from hubstress_ext.hub.names import name_stream, ours
from hubstress_ext.results.summary import summarize


def rec(status=None, error=None, start=1.0, expected=False):
    return Record("op", "GET", "/x", start, start + 0.01, 10.0, status, error, expected=expected)


def test_ours_takes_ascii_digits_only():
    names = ["hubstress-1", "hubstress-12", "hubstress-\u0663", "hubstress-\uff16", "hubstress-1a", "x-1"]
    assert ours(names, "hubstress-") == ["hubstress-1", "hubstress-12"]


def test_name_stream_counts_on():
    stream = name_stream("p-", 7)
    assert [next(stream) for _ in range(3)] == ["p-7", "p-8", "p-9"]


def test_what_looks_like_a_dead_hub():
    assert looks_gone(rec(error="connection failed: Connection refused"))
    assert looks_gone(rec(error="server disconnected"))
    assert looks_gone(rec(status=503)) and looks_gone(rec(status=502))
    assert not looks_gone(rec(error="timeout after 30.0s"))  # slow is not gone
    assert not looks_gone(rec(status=429)) and not looks_gone(rec(status=500))


class FakeClient:
    def __init__(self, health_status):
        self.health_status = health_status
        self.observer = None
        self.unreachable = None
        self.probes = 0

    async def probe(self, op, url, timeout):
        self.probes += 1
        return Response(self.health_status)


async def _feed(watch, records):
    for r in records:
        watch.observe(r)
    await asyncio.sleep(0.01)  # let the health probe run


def test_watch_declares_the_hub_down_only_when_health_fails_too():
    down = []
    client = FakeClient(503)
    watch = HubWatch(client, "http://h/hub/health", lambda: down.append(True)).attach()
    assert client.observer == watch.observe
    fails = [rec(status=503, start=10.0 + i) for i in range(SUSPECT_STREAK)]
    asyncio.run(_feed(watch, fails[:-1]))
    assert client.probes == 0 and not watch.down  # a few failures alone prove nothing
    asyncio.run(_feed(watch, fails[-1:]))
    assert client.probes == 1 and watch.down and down == [True]
    assert watch.down_at == 10.0  # the time of the first failure in the streak
    assert client.unreachable == "hub unreachable"
    assert "/hub/health: HTTP 503" in watch.reason


def test_watch_keeps_going_when_health_answers():
    down = []
    client = FakeClient(200)
    watch = HubWatch(client, "u", lambda: down.append(True))
    asyncio.run(_feed(watch, [rec(error="server disconnected") for _ in range(SUSPECT_STREAK)]))
    assert client.probes == 1 and not watch.down and not down and client.unreachable is None


def test_a_good_answer_resets_the_streak():
    client = FakeClient(503)
    watch = HubWatch(client, "u", lambda: None)
    mixed = [rec(status=503)] * (SUSPECT_STREAK - 1) + [rec(status=200)] + [rec(status=503)] * 2
    asyncio.run(_feed(watch, mixed))
    assert client.probes == 0 and not watch.down


def test_expected_answers_are_not_counted_as_errors():
    frame = records_to_frame([rec(status=404, expected=True), rec(status=404), rec(status=200)])
    assert summarize(frame).loc["op", "errors"] == 1


def test_saved_runs_without_the_expected_column_still_summarize():
    frame = records_to_frame([rec(status=404), rec(status=200)]).drop(columns=["expected"])
    assert summarize(pd.DataFrame(frame)).loc["op", "errors"] == 1
