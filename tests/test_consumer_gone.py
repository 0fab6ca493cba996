"""A blocking publish into a full ring whose consumer thread ended (a handler raised
SystemExit) raises ringbus.ConsumerGone instead of waiting forever (issue 8, defect 9)."""
import threading
import time

import pytest

import ringbus

try:
    import numpy as np
except ImportError:        # pragma: no cover
    np = None


def _bounded(fn, seconds=10.0):
    """Run fn in a thread; fail (not hang) if it does not return in time."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds}s"
    return box


def test_consumer_gone_is_a_runtime_error():
    assert issubclass(ringbus.ConsumerGone, RuntimeError)
    assert "ConsumerGone" in ringbus.__all__


def _wait_dead(is_dead):
    deadline = time.monotonic() + 5
    while not is_dead() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert is_dead()


def test_bus_blocking_publish_raises_when_consumer_thread_died():
    bus = ringbus.Bus(capacity=4)
    T = bus.event_type("x")

    def fatal(payload):
        raise SystemExit(3)

    bus.subscribe(T, fatal)
    bus.start()
    bus.publish(T, 0)
    _wait_dead(lambda: not bus.ring.stages["dispatch"].running)
    for i in range(4):                  # fill the ring: nobody consumes it any more
        bus.publish(T, i, timeout=1)
    box = _bounded(lambda: bus.publish(T, 99))
    assert isinstance(box.get("exc"), ringbus.ConsumerGone), box
    assert "consumer" in str(box["exc"])
    # Nothing was lost: the queued events are still there; stop() reports the SystemExit.
    assert bus.pending == 4
    with pytest.raises(SystemExit):
        bus.stop()
    # A new consumer may be started: it delivers what was queued.
    for sub in bus.subscriptions(T):
        sub.unsubscribe()
    seen = []
    bus.subscribe(T, seen.append)
    with bus.running():
        bus.publish(T, 5)
    assert seen == [0, 1, 2, 3, 5]


def test_ring_publish_many_raises_when_consumer_thread_died():
    bus = ringbus.Bus()
    ring = ringbus.RingBuffer(4)
    T = bus.event_type("x")
    bus.subscribe(T, lambda p: (_ for _ in ()).throw(SystemExit(1)))
    ring.start(bus)
    ring.publish(T, 0)
    _wait_dead(lambda: not ring.stages["dispatch"].running)
    box = _bounded(lambda: ring.publish_many(T, range(10)))
    assert isinstance(box.get("exc"), ringbus.ConsumerGone), box
    assert box["exc"].published == 4
    with pytest.raises(SystemExit):
        ring.stop()


@pytest.mark.skipif(np is None, reason="numpy is needed for record rings")
def test_record_ring_blocking_publish_raises_when_consumer_thread_died():
    dt = np.dtype([("v", "<i8")])
    ring = ringbus.RecordRing(dt, 4)

    def fatal(view):
        raise SystemExit(2)

    ring.subscribe(fatal)
    ring.start()
    ring.publish((0,))
    _wait_dead(lambda: ring.dispatched == 1)
    for i in range(4):
        ring.publish((i,), timeout=1)
    box = _bounded(lambda: ring.publish((99,)))
    assert isinstance(box.get("exc"), ringbus.ConsumerGone), box
    box = _bounded(lambda: ring.publish_many(np.zeros(3, dt)))
    assert isinstance(box.get("exc"), ringbus.ConsumerGone), box
    with pytest.raises(SystemExit):
        ring.stop()
    # After stop(), no consumer was started: a later drain delivers the queued records.
    ring.unsubscribe(fatal)
    got = []
    ring.subscribe(lambda view: got.extend(view["v"].tolist()))
    assert ring.drain() == 4
    assert got == [0, 1, 2, 3]


def test_publish_async_raises_when_consumer_thread_died():
    """publish_async waits for room on the loop: with the consumer gone, nothing would ever
    wake it, so it raises ConsumerGone as the blocking publish does."""
    import asyncio

    bus = ringbus.Bus(capacity=4)
    T = bus.event_type("x")
    release = threading.Event()

    def fatal(payload):
        release.wait(10)
        raise SystemExit(3)

    bus.subscribe(T, fatal)
    bus.start()

    async def main():
        bus.publish(T, 0)                   # the consumer takes it and blocks in fatal()
        while bus.pending:
            await asyncio.sleep(0.001)
        for i in range(4):
            bus.publish(T, i, timeout=1)    # full now
        waiting = asyncio.ensure_future(bus.publish_async(T, 98))
        await asyncio.sleep(0.05)
        assert not waiting.done()           # waits for room while the consumer lives
        release.set()                       # the consumer dies, the ring stays full
        with pytest.raises(ringbus.ConsumerGone, match="consumer"):
            await asyncio.wait_for(waiting, 5)  # woken by the consumer's end
        with pytest.raises(ringbus.ConsumerGone, match="consumer"):
            await asyncio.wait_for(bus.publish_async(T, 99), 5)

    try:
        asyncio.run(main())
    finally:
        with pytest.raises(SystemExit):
            bus.stop(drain=False)
