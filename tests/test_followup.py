"""Follow-ups: a handler that publishes into the full ring its own consumer drains.

Only that consumer can make room, so waiting would deadlock; the event goes into the
consumer's bounded backlog instead and is dispatched right after the ring events claimed
before it was published. Everything in these tests is published from one thread at a time,
in a known order, so "claim order" is simply the order of the publish calls: each test
checks that the dispatch order is exactly that order, that nothing is counted as a handler
error, and that the counters add up.
"""
import asyncio
import threading
import time

import pytest

import ringbus
from ringbus import Bus, RingBuffer, RingFull


class Chain:
    """Tags every publish with a global index (the claim order) and logs dispatches."""

    def __init__(self, bus, fanout, depth, how="publish"):
        self.bus, self.fanout, self.depth, self.how = bus, fanout, depth, how
        self.T = bus.event_type("t")
        self.published = []       # tags, in publish (= claim) order
        self.dispatched = []      # tags, in dispatch order
        self.results = []
        self.before = None        # called with each tag before it is logged
        bus.subscribe(self.T, self.handler)

    def publish(self, level):
        tag = (len(self.published), level)
        self.published.append(tag)
        ok = getattr(self.bus, self.how)(self.T, tag)
        self.results.append(ok)
        if not ok:
            self.published.pop()
        return ok

    def handler(self, tag):
        if self.before is not None:
            self.before(tag)
        self.dispatched.append(tag)
        if tag[1] < self.depth:
            for _ in range(self.fanout):
                self.publish(tag[1] + 1)


def _in_thread(fn, timeout=20):
    """Run fn in a thread; fail (instead of hanging the suite) if it does not finish."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:      # re-raised below
            out["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), "deadlock: did not finish in time"
    if "error" in out:
        raise out["error"]
    return out.get("value")


@pytest.mark.parametrize("how", ["publish", "try_publish"])
def test_drain_delivers_every_follow_up_in_claim_order(how):
    bus = Bus(capacity=4, backlog=1000, on_error="raise")
    chain = Chain(bus, fanout=3, depth=3, how=how)
    for _ in range(4):
        chain.publish(0)
    assert bus.pending == 4
    n = _in_thread(bus.drain)
    expected = 4 * (1 + 3 + 9 + 27)
    assert n == expected
    assert all(chain.results)
    assert chain.dispatched == chain.published     # exactly the claim order
    s = bus.stats()
    assert s["handler_errors"] == 0 and s["dropped"] == 0
    assert s["published"] == s["dispatched"] == expected
    assert s["pending"] == 0 and s["backlog"] == 0


def test_follow_ups_keep_their_place_among_later_ring_events():
    # The first handler's follow-ups go to the backlog (ring full); the ring events claimed
    # before them run first, the ones claimed after them run after.
    bus = Bus(capacity=4, on_error="raise")
    T = bus.event_type("t")
    log = []

    def handler(x):
        log.append(x)
        if x == "a":
            for i in range(3):
                assert bus.publish(T, f"f{i}") is True
            assert bus.stats()["backlog"] == 2      # one slot was free: a's own
            assert bus.pending == 4 + 2

    bus.subscribe(T, handler)
    for x in ("a", "b", "c", "d"):
        bus.publish(T, x)
    assert _in_thread(bus.drain) == 7
    assert log == ["a", "b", "c", "d", "f0", "f1", "f2"]


@pytest.mark.parametrize("overflow", ["block", "raise", "drop"])
def test_past_the_backlog_bound_the_overflow_policy_applies(overflow):
    bus = Bus(capacity=4, backlog=2, overflow=overflow, on_error="raise")
    T = bus.event_type("t")
    results = []
    log = []

    def handler(x):
        log.append(x)
        if x == 0:
            for i in range(6):
                try:
                    results.append(bus.publish(T, f"f{i}"))
                except RingFull as exc:
                    results.append(exc)

    bus.subscribe(T, handler)
    for i in range(4):
        bus.publish(T, i)
    _in_thread(bus.drain)
    # f0 takes the slot event 0 freed, f1 and f2 fill the backlog; f3..f5 are past the bound.
    assert results[:3] == [True, True, True]
    assert log == [0, 1, 2, 3, "f0", "f1", "f2"]
    s = bus.stats()
    assert s["handler_errors"] == 0
    if overflow == "drop":
        assert results[3:] == [False, False, False]
        assert s["dropped"] == 3
    else:
        assert all(isinstance(r, RingFull) for r in results[3:])
        assert "backlog" in str(results[3])
        assert s["dropped"] == 0
    assert s["published"] == s["dispatched"] == 7


def test_publish_many_from_a_handler_continues_through_the_backlog():
    bus = Bus(capacity=4, backlog=3, overflow="drop", on_error="raise")
    T = bus.event_type("t")
    log = []
    out = []

    def handler(x):
        log.append(x)
        if x == 0:
            out.append(bus.publish_many(T, [f"m{i}" for i in range(6)]))

    bus.subscribe(T, handler)
    for i in range(4):
        bus.publish(T, i)
    _in_thread(bus.drain)
    assert out == [4]                  # 1 into the ring, 3 into the backlog, 2 dropped
    assert log == [0, 1, 2, 3, "m0", "m1", "m2", "m3"]
    assert bus.stats()["dropped"] == 2


def test_the_consumer_thread_delivers_follow_ups_and_stop_drain_includes_them():
    bus = Bus(capacity=4, on_error="raise")
    T = bus.event_type("t")
    log = []
    gate = threading.Event()

    def handler(x):
        log.append(x)
        if x == "first":
            assert gate.wait(10)
            for i in range(4):
                bus.publish(T, f"f{i}")

    bus.subscribe(T, handler)
    bus.start()
    try:
        bus.publish(T, "first")
        deadline = time.monotonic() + 10
        while bus.stats()["dispatched"] == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        for x in ("a", "b", "c", "d"):
            bus.publish(T, x, timeout=10)          # fills the ring: "first" is running
        assert bus.pending == 4
        # stop(drain=True) is called while the follow-ups are not even published yet.
        stopper = threading.Thread(target=bus.stop, kwargs={"timeout": 10})
        stopper.start()
        time.sleep(0.05)
        gate.set()
        stopper.join(15)
        assert not stopper.is_alive()
    finally:
        gate.set()
        if bus.ring.started:
            bus.stop(timeout=10)
    assert log == ["first", "a", "b", "c", "d", "f0", "f1", "f2", "f3"]
    s = bus.stats()
    assert s["handler_errors"] == 0 and s["pending"] == 0 and s["backlog"] == 0


def test_with_running_delivers_follow_ups_of_follow_ups():
    bus = Bus(capacity=4, backlog=1000, on_error="raise")
    chain = Chain(bus, fanout=2, depth=4)
    gate = threading.Event()

    def before(tag):
        if tag[0] == 0:
            assert gate.wait(10)

    chain.before = before

    def run():
        with bus.running():
            for _ in range(5):                  # the first runs (gated), four fill the ring
                chain.publish(0)
            gate.set()

    # The consumer is gated on the first event, so the producer's five events are claimed
    # before any follow-up: the whole dispatch order is the publish order.
    _in_thread(run)
    assert chain.dispatched == chain.published
    assert len(chain.dispatched) == 5 * (1 + 2 + 4 + 8 + 16)
    s = bus.stats()
    assert s["handler_errors"] == 0 and s["pending"] == 0 and s["dropped"] == 0


def test_follow_ups_survive_a_drain_interrupted_at_their_event():
    ring = RingBuffer(4)
    bus = Bus(on_error="raise")
    T = bus.event_type("t")
    log = []

    def handler(x):
        log.append(x)
        if x == 0:
            for i in range(3):
                ring.publish(T, f"f{i}")
            raise KeyboardInterrupt          # leaves drain() at this event boundary

    bus.subscribe(T, handler)
    for i in range(4):
        ring.publish(T, i)
    with pytest.raises(KeyboardInterrupt):
        ring.drain(bus)
    assert ring.pending == 4 + 2 and ring.backlog == 2
    assert ring.drain(bus) == 6
    assert log == [0, 1, 2, 3, "f0", "f1", "f2"]


def test_backlog_argument_is_checked():
    with pytest.raises(ValueError, match="backlog"):
        RingBuffer(4, backlog=-1)
    for bad in (1.5, "4", True):        # a wrong type is a TypeError (issue 9)
        with pytest.raises(TypeError, match="backlog"):
            RingBuffer(4, backlog=bad)
    assert RingBuffer(4).backlog_limit == 4
    assert Bus(capacity=8, backlog=0).ring.backlog_limit == 0


def test_rings_with_other_stages_keep_ringfull():
    ring = RingBuffer(2)
    bus = Bus(on_error="raise")
    T = bus.event_type("t")
    errors = []
    ring.stage("journal", lambda t, p: None, before="dispatch")

    def handler(x):
        if x == 0:
            try:
                for i in range(3):
                    ring.publish(T, i + 10)
            except RingFull as exc:
                errors.append(exc)

    bus.subscribe(T, handler)
    ring.publish(T, 0)
    ring.publish(T, 1)
    with ring.running(bus):
        pass
    assert errors and "deadlock" in str(errors[0]) and "stages" in str(errors[0])


def test_async_handler_awaiting_publish_async_on_the_loop_consumer():
    bus = Bus(capacity=4, on_error="raise")
    T = bus.event_type("t")
    log = []

    async def handler(x):
        log.append(x)
        if x == 0:
            await asyncio.sleep(0)           # suspended: the loop consumer awaits us
            for i in range(3):
                assert await bus.publish_async(T, f"f{i}") is True

    bus.subscribe(T, handler)

    async def main():
        for i in range(4):
            bus.publish(T, i)
        task = bus.attach()
        deadline = time.monotonic() + 10
        while len(log) < 7 and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        bus.detach()
        try:
            await task
        except asyncio.CancelledError:
            pass

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()
    assert log == [0, 1, 2, 3, "f0", "f1", "f2"]
    s = bus.stats()
    assert s["handler_errors"] == 0 and s["pending"] == 0
