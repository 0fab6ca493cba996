"""One overflow rule for every publish: a full ring waits for room up to ``timeout`` seconds,
then the policy acts ("drop": dropped, counted, False; "block" and "raise": RingFull).
``timeout=None`` is the policy's own wait: forever under "block", none under "raise" and
"drop". Checked on every publishing verb of the bus, the object ring and the record ring
(the C API's codes are checked in test_records_capi.py)."""
import asyncio
import threading

import pytest

import ringbus
from ringbus import Bus, RingBuffer, RingFull

try:
    import numpy as np     # at module level: .ci/sanitize leaves such files out of its leak check
except ImportError:        # pragma: no cover
    np = None

GRACE = 0.02               # a timeout that runs out: no consumer makes room meanwhile


def _full_bus(overflow):
    bus = Bus(capacity=2, overflow=overflow)
    T = bus.event_type("t")
    bus.subscribe(T, lambda x: None)
    bus.publish_many(T, [0, 1])
    return bus, T


def _bus_verbs():
    """(name, publish one event into bus as that verb, what 'dropped' returns)."""
    def publish(bus, T, timeout):
        return bus.publish(T, "x", timeout=timeout)

    def publish_many(bus, T, timeout):
        return bus.publish_many(T, ["x", "y"], timeout=timeout)

    def publish_async(bus, T, timeout):
        async def main():
            return await bus.publish_async(T, "x", timeout=timeout)
        return asyncio.run(main())

    verbs = [("publish", publish, False), ("publish_many", publish_many, 0),
             ("publish_async", publish_async, False)]
    if np is not None:
        def publish_batch(bus, T, timeout):
            return bus.publish_batch(np.array([T, T]), np.array([1.0, 2.0]), timeout=timeout)
        verbs.append(("publish_batch", publish_batch, False))
    return verbs


VERBS = _bus_verbs()
IDS = [v[0] for v in VERBS]


@pytest.mark.parametrize("name,verb,dropped_result", VERBS, ids=IDS)
@pytest.mark.parametrize("timeout", [None, GRACE])
def test_drop_drops_and_counts_with_or_without_a_timeout(name, verb, dropped_result, timeout):
    bus, T = _full_bus("drop")
    assert verb(bus, T, timeout) == dropped_result
    expected = 2 if name == "publish_many" else 1
    assert bus.stats()["dropped"] == expected        # never a RingFull under "drop"
    assert bus.drain() == 2                          # what was queued is still there


@pytest.mark.parametrize("name,verb,dropped_result", VERBS, ids=IDS)
@pytest.mark.parametrize("overflow,timeout", [("raise", None), ("raise", GRACE),
                                              ("block", GRACE)])
def test_raise_and_block_raise_ringfull_once_the_wait_ends(name, verb, dropped_result,
                                                           overflow, timeout):
    bus, T = _full_bus(overflow)
    with pytest.raises(RingFull) as info:
        verb(bus, T, timeout)
    assert isinstance(info.value, ringbus.RingFull)
    assert bus.stats()["dropped"] == 0
    assert bus.drain() == 2


def _make_room_soon(drain):
    """A consumer that makes room a little later, while the publisher waits."""
    t = threading.Timer(0.05, drain)
    t.start()
    return t


@pytest.mark.parametrize("name,verb,dropped_result", VERBS, ids=IDS)
@pytest.mark.parametrize("overflow", ["block", "raise", "drop"])
def test_a_timeout_waits_for_room_under_every_policy(name, verb, dropped_result, overflow):
    bus, T = _full_bus(overflow)
    room = _make_room_soon(bus.drain)
    try:
        result = verb(bus, T, 30.0)
    finally:
        room.join()
    assert result is True or (name == "publish_many" and result == 2)
    assert bus.stats()["dropped"] == 0


@pytest.mark.parametrize("overflow", ["raise", "drop"])
def test_without_a_timeout_raise_and_drop_never_wait(overflow):
    """Room made later does not help a call without a timeout: it acted at once."""
    bus, T = _full_bus(overflow)
    room = _make_room_soon(bus.drain)
    try:
        if overflow == "raise":
            with pytest.raises(RingFull):
                bus.publish(T, "x")
        else:
            assert bus.publish(T, "x") is False
    finally:
        room.join()


def test_publish_many_timeout_bounds_the_whole_call_then_drops_the_rest():
    ring = RingBuffer(2, overflow="drop")
    for _ in range(2):
        ring.publish(0)
    assert ring.publish_many(0, range(5), timeout=GRACE) == 0
    assert ring.dropped == 5


def test_ring_without_a_bus_follows_the_rule():
    for overflow in ("block", "raise", "drop"):
        ring = RingBuffer(2, overflow=overflow)
        ring.publish(0)
        ring.publish(0)
        if overflow == "drop":
            assert ring.publish(0, None, timeout=GRACE) is False
            assert ring.dropped == 1
        else:
            with pytest.raises(RingFull, match="timeout"):
                ring.publish(0, None, timeout=GRACE)
            assert ring.dropped == 0


@pytest.mark.skipif(np is None, reason="numpy is needed for record rings")
@pytest.mark.parametrize("overflow", ["block", "raise", "drop"])
def test_record_ring_follows_the_rule(overflow):
    tick = np.dtype([("seq", "<i8")])
    ring = ringbus.RecordRing(tick, 2, overflow=overflow)
    ring.subscribe(lambda view: None)
    ring.publish_many(np.zeros(2, tick))
    if overflow == "drop":
        assert ring.publish((5,), timeout=GRACE) is False
        assert ring.publish_many(np.zeros(3, tick), timeout=GRACE) == 0
        assert ring.dropped == 4
    else:
        with pytest.raises(RingFull, match="timeout"):
            ring.publish((5,), timeout=GRACE)
        with pytest.raises(RingFull, match="timeout"):
            ring.publish_many(np.zeros(3, tick), timeout=GRACE)
        assert ring.dropped == 0
    room = _make_room_soon(ring.drain)
    try:
        assert ring.publish((6,), timeout=30.0) is True
    finally:
        room.join()


def test_a_followup_past_the_backlog_is_dropped_under_drop_even_with_a_timeout():
    """A handler's follow-up cannot wait (only its own consumer makes room): past the
    backlog's bound the policy acts at once, whatever the timeout."""
    bus = Bus(capacity=2, backlog=0, overflow="drop", on_error="raise")
    T = bus.event_type("t")
    out = []

    def refill(x):
        if x == 0:
            out.append(bus.publish(T, "a", timeout=5.0))       # the slot event 0 freed
            out.append(bus.publish(T, "b", timeout=5.0))
            out.append(bus.publish_many(T, ["c", "d"], timeout=5.0))

    bus.subscribe(T, refill)
    bus.publish_many(T, [0, 1])
    bus.drain()
    assert out == [True, False, 0]
    assert bus.stats()["dropped"] == 3
    assert bus.stats()["handler_errors"] == 0
