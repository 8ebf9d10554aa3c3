"""Admission on time and the adaptive batch size (the Batcher alone, a real event loop)."""

import asyncio
import math

import pytest

from hubstress_ext.batching.admission import BatchCap, Refused, ServiceTime, predict
from hubstress_ext.batching.batcher import Batcher, BatchSettings, DeadlineExpired, ModelError

asyncio_test = pytest.mark.asyncio


class Timed:
    """An async model taking ``base + per_item x n`` seconds per batch (the CPU stays free)."""

    def __init__(self, base=0.02, per_item=0.0):
        self.base, self.per_item = base, per_item
        self.sizes = []

    async def __call__(self, items):
        self.sizes.append(len(items))
        await asyncio.sleep(self.base + self.per_item * len(items))
        return [None] * len(items)


def settings(**kw):
    base = {"batch_size": 2, "max_wait_ms": 0, "max_queue": 1000, "deadline_ms": 10_000, "max_delay_ms": 0}
    return BatchSettings(**{**base, **kw})


async def warm(b: Batcher, n: int = 3) -> None:
    """Serve a few full batches so the batcher knows the model's time per batch."""
    for _ in range(n):
        await asyncio.gather(*(b.submit({}).future for _ in range(b.settings.batch_size)))


def test_prediction_counts_the_running_batch_and_whole_batches_ahead():
    p = predict(age_s=0.001, busy_left_s=0.010, ahead=5, cap=2, per_batch_s=0.020)
    assert p.delay_s == pytest.approx(0.001 + 0.010 + 2 * 0.020)  # 5 ahead: 2 full batches first
    assert p.completion_s == pytest.approx(p.delay_s + 0.020)
    assert p.drain_s == pytest.approx(0.010 + 3 * 0.020)
    # an idle model, but the request waited 200 ms before the batcher saw it: the server is
    # that far behind, so a retry is not due before then
    late = predict(age_s=0.2, busy_left_s=0.0, ahead=0, cap=2, per_batch_s=0.020)
    assert late.drain_s == pytest.approx(0.2)


def test_service_time_prefers_full_batches():
    st = ServiceTime()
    st.observe(0.002, 1, 8)  # a partial batch only
    assert st.per_batch == pytest.approx(0.002)
    st.observe(0.010, 8, 8)
    assert st.per_batch == pytest.approx(0.010)


def test_service_time_ignores_one_stalled_batch_and_follows_a_slowdown():
    st = ServiceTime()
    for _ in range(6):
        st.observe(0.003, 4, 4)
    st.observe(0.100, 4, 4)  # the process was descheduled for one batch
    assert st.per_batch == pytest.approx(0.003)
    # an arrival as the next batch starts, nothing queued: well within a 20 ms max_delay
    assert predict(0.0, st.per_batch, 0, 4, st.per_batch).delay_s < 0.020
    for _ in range(4):  # the model really got slower
        st.observe(0.030, 4, 4)
    assert st.per_batch == pytest.approx(0.030)


def test_batch_cap_is_aimd_within_the_configured_size():
    cap = BatchCap(limit=4, slo_ms=100)  # model budget 40 ms
    for _ in range(10):
        cap.observe(0.010, cap.value)  # full batches within budget: +1 each, up to the limit
    assert cap.value == 4
    cap.observe(0.050, 4)  # over budget: multiplicative decrease
    assert cap.value == 3
    cap.observe(0.001, 1)  # a partial batch says nothing about the cap
    assert cap.value == 3


@asyncio_test
async def test_refused_when_the_predicted_wait_exceeds_max_delay():
    model = Timed(base=0.02)
    b = Batcher(model, settings(max_delay_ms=50))
    await warm(b)
    accepted, refused = [], []
    for _ in range(30):  # all at once: the queue grows, the prediction with it
        try:
            accepted.append(b.submit({}))
        except Refused as r:
            refused.append(r)
    # about 20 ms per batch of 2: a wait of at most 50 ms holds the running batch and two more
    assert 4 <= len(accepted) <= 8, len(accepted)
    assert refused and {r.reason for r in refused} == {"queue_delay"}
    first = refused[0]
    assert "max_delay_ms=50" in str(first) and first.expected_ms > 50
    assert first.retry_after_s > 0 and first.retry_after_header == "1"
    await asyncio.gather(*(p.future for p in accepted))
    st = b.snapshot()
    assert st["rejected"] == len(refused) == st["refused_by_reason"]["queue_delay"]
    assert st["served"] == st["accepted"]
    assert st["effective"]["model_ms_per_batch"] >= 15


@asyncio_test
async def test_refused_at_once_when_it_would_miss_its_deadline():
    b = Batcher(Timed(base=0.03), settings(batch_size=1))
    await warm(b)
    first = b.submit({})  # the model is busy for ~30 ms
    with pytest.raises(Refused) as info:
        b.submit({}, deadline_s=0.02)  # cannot be done in 20 ms: refused now, not a 504 later
    assert info.value.reason == "deadline"
    await first.future


@asyncio_test
async def test_age_counts_against_the_wait_and_the_deadline():
    b = Batcher(Timed(base=0.001), settings(batch_size=1, max_delay_ms=100))
    with pytest.raises(Refused, match="max_delay_ms=100"):
        b.submit({}, age_s=0.2)  # already waited 200 ms before reaching the batcher
    with pytest.raises(Refused) as info:
        b.submit({}, age_s=0.2)
    assert info.value.retry_after_s == pytest.approx(0.2)  # not 0 with an idle model
    with pytest.raises(Refused) as info:
        b.submit({}, deadline_s=0.05, age_s=0.09)  # within max_delay, past its deadline
    assert info.value.reason == "deadline"


@asyncio_test
async def test_time_unread_in_the_socket_counts_toward_the_deadline_only():
    b = Batcher(Timed(base=0.001), settings(batch_size=1, max_delay_ms=100))
    # 300 ms unread: within a 30 s deadline, so not refused for delay (it cannot be served any
    # sooner by refusing others: the time was spent before the server read it)
    await b.submit({}, unread_s=0.3).future
    with pytest.raises(Refused) as info:
        b.submit({}, deadline_s=0.2, unread_s=0.3)
    r = info.value
    assert r.reason == "deadline" and "300 ms of it unread in its socket" in str(r)
    assert r.expected_ms >= 300 and r.retry_after_s == pytest.approx(0.3)
    assert b.admit(deadline_s=0.2, unread_s=0.3).reason == "deadline"  # the same at the headers
    assert b.serve_now({}, 0.2, unread_s=0.3) is None  # and never on the fast path


@asyncio_test
async def test_requests_admitted_at_their_headers_together_are_judged_again_on_the_queue():
    """A server reads many requests' headers in one turn of its loop and admits each against the
    queue as it is then, before any of them joins it: at submit they meet the real queue."""
    b = Batcher(Timed(base=0.02), settings(batch_size=1, max_delay_ms=50))
    await warm(b)
    passed = [b.admit() for _ in range(20)]
    assert passed == [None] * 20  # each saw an empty queue
    accepted, refused = [], []
    for _ in range(20):
        try:
            accepted.append(b.submit({}, age_s=0.5, admitted=True))  # 0.5 s in the loop since
        except Refused as r:
            refused.append(r)
    # 20 ms a batch within 50 ms: the running one and two more; the loop wait itself is not
    # held against them (else none would pass)
    assert 2 <= len(accepted) <= 4 and {r.reason for r in refused} == {"queue_delay"}, len(accepted)
    await asyncio.gather(*(p.future for p in accepted))
    # a server that counts the requests it admitted at their headers as ahead of the next one
    # refuses the surplus at the headers already
    assert b.admit(incoming=0) is None and b.admit(incoming=5).reason == "queue_delay"


@asyncio_test
async def test_nothing_reaches_the_model_after_its_deadline_even_if_its_timer_is_late():
    model = Timed(base=0.05)
    b = Batcher(model, settings(batch_size=2))
    blocker = b.submit({})  # runs alone: the model is busy
    queued = [b.submit({}, deadline_s=0.01), b.submit({}, deadline_s=5.0)]
    # a dispatch that happens after the first deadline, before its timer has run (a late loop)
    loop = asyncio.get_running_loop()
    batch = b._take_batch(2, loop.time() + 0.02)
    assert batch == [queued[1]]
    with pytest.raises(DeadlineExpired):
        await queued[0].future
    assert b.stats.timed_out == 1
    await blocker.future


@asyncio_test
async def test_adaptive_mode_grows_the_batch_within_the_slo_and_reports_it():
    model = Timed(base=0.002, per_item=0.001)  # 12 ms at 10 items
    b = Batcher(model, settings(batch_size=64, latency_slo_ms=40, max_wait_ms=50))  # budget 16 ms
    assert b.batch_cap == 1 and b.max_wait_s == 0  # starts at 1, greedy
    outstanding = set()
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.0
    while loop.time() < end:  # keep 40 items in flight for a second
        while len(outstanding) < 40:
            try:
                outstanding.add(asyncio.ensure_future(b.submit({}).future))
            except Refused:
                break
        done, outstanding = await asyncio.wait(outstanding, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*outstanding)
    chosen = b.snapshot()["effective"]["batch_size"]
    assert 3 <= chosen <= 16, chosen  # grew from 1; a batch of 16 would take 18 ms > budget
    assert max(model.sizes) <= 16
    b.reconfigure(latency_slo_ms=0)
    assert b.batch_cap == 64 and b.max_wait_s == pytest.approx(0.05)


@asyncio_test
async def test_serve_now_fast_path_and_its_model_errors():
    def echo(items):
        return [None] * len(items)

    echo.inline = True

    def broken(items):
        raise RuntimeError("boom")

    broken.inline = True
    b = Batcher(echo, settings(batch_size=1))
    r = b.serve_now({"ts": 1}, deadline_s=1.0)
    assert r is not None and r.batch_size == 1 and r.queue_ms == 0.0
    assert b.serve_now({}, deadline_s=1.0, age_s=math.inf) is None  # left for submit to refuse
    bad = Batcher(broken, settings(batch_size=1))
    with pytest.raises(ModelError, match="boom"):
        bad.serve_now({}, deadline_s=1.0)
    assert bad.stats.errors == 1 and bad.stats.accepted == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"max_delay_ms": math.nan},
        {"max_delay_ms": -1},
        {"latency_slo_ms": math.inf},
        {"latency_slo_ms": -5},
        {"refuse_status": 500},
        {"refuse_status": True},
    ],
)
def test_new_settings_are_validated(bad):
    with pytest.raises(ValueError):
        settings(**bad).validate()
