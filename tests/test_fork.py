"""After os.fork(), the child has none of the parent's consumer threads: its rings must show
their consumers as not running, with a fresh wait state, and let the child publish, drain
and start consumers of its own (issue 8, defect 7). Each scenario runs in a real forked
child, watched with a deadline: a hang is killed and reported, never waited for."""
import os
import threading
import time
import traceback
import warnings

import numpy as np
import pytest

import ringbus

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILD_DEADLINE = 30.0


def _in_child(check):
    """Run ``check()`` in a forked child and return what it reported: "ok", or the
    traceback of what went wrong. A child that does not exit in time is killed."""
    rfd, wfd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads running: that is the scenario here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:                                    # the child
        os.close(rfd)
        try:
            check()
            report = b"ok"
        except BaseException:
            report = traceback.format_exc().encode()
        os.write(wfd, report)
        os._exit(0)
    os.close(wfd)
    deadline = time.monotonic() + CHILD_DEADLINE
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                return "the child hung"
            time.sleep(0.01)
        chunks = []
        while True:
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode() or f"the child died (status {status})"
    finally:
        os.close(rfd)


def _consumed_and_parked(ring_or_bus):
    """Wait until a started consumer has taken everything, then give it time to spin out
    and park on the ring's parker (the state a fork must not inherit)."""
    deadline = time.monotonic() + 10
    while ring_or_bus.pending and time.monotonic() < deadline:
        time.sleep(0.001)
    _parked()


def _parked():
    time.sleep(0.05)


@pytest.mark.parametrize("wait", ["block", "spin"])
def test_child_of_a_running_bus_publishes_drains_and_starts_its_own(wait):
    bus = ringbus.Bus(capacity=64, wait=wait)
    tick = bus.event_type("tick")
    seen = []
    bus.subscribe(tick, seen.append)
    bus.start()
    try:
        bus.publish(tick, 1)
        _consumed_and_parked(bus)

        def child():
            seen.clear()
            assert not bus.ring.started, "the child has no consumer threads"
            assert bus.publish(tick, 2)             # never blocks: nothing to wake
            assert bus.drain() == 1
            assert seen == [2]
            with bus.running():                     # consumers of its own
                for i in range(3, 200):
                    bus.publish(tick, i)
            assert seen == list(range(2, 200))
            assert bus.pending == 0

        assert _in_child(child) == "ok"
        bus.publish(tick, 3)                        # the parent's consumer goes on
    finally:
        bus.stop()
    assert seen == [1, 3]


def test_child_of_a_full_ring_with_a_parked_producer_drains_it():
    bus = ringbus.Bus(capacity=4)
    tick = bus.event_type("tick")
    seen = []
    bus.subscribe(tick, seen.append)
    for i in range(4):
        bus.publish(tick, i)
    blocked = threading.Thread(target=bus.publish, args=(tick, 4), daemon=True)
    blocked.start()                                 # parks for room on the ring's parker
    _parked()

    def child():
        with pytest.raises(ringbus.RingFull):
            bus.publish(tick, 99, timeout=0.05)     # full, no consumer: bounded, not a hang
        assert bus.drain() == 4
        assert seen == [0, 1, 2, 3]
        assert bus.publish(tick, 5)
        assert bus.drain() == 1

    assert _in_child(child) == "ok"
    assert bus.drain() >= 4                         # the parent: its producer gets room
    blocked.join(10)
    assert not blocked.is_alive()
    bus.drain()
    assert seen == [0, 1, 2, 3, 4]


def test_child_of_a_running_record_ring_starts_its_own():
    dt = np.dtype([("v", "<i8")])
    ring = ringbus.RecordRing(dt, 64)
    got = []
    ring.subscribe(lambda view: got.extend(view["v"].tolist()))
    ring.start()
    try:
        ring.publish((1,))
        _consumed_and_parked(ring)

        def child():
            got.clear()
            assert not ring.started
            ring.publish((2,))
            assert ring.drain() == 1
            with ring.running():
                ring.publish_many(np.arange(3, 100, dtype="<i8").view(dt))
            assert got == list(range(2, 100))

        assert _in_child(child) == "ok"
    finally:
        ring.stop()
    assert got == [1]


def test_child_of_a_bus_another_thread_is_draining_can_drain():
    """A drain by another thread (blocked in a handler) did not come along: the child may
    drain, where the parent refuses a second drain."""
    bus = ringbus.Bus(capacity=64)
    tick = bus.event_type("tick")
    seen = []
    inside, release = threading.Event(), threading.Event()

    def handler(x):
        seen.append(x)
        if x == 0:
            inside.set()
            release.wait(10)
    bus.subscribe(tick, handler)
    for i in range(3):
        bus.publish(tick, i)
    drainer = threading.Thread(target=bus.drain, daemon=True)
    drainer.start()
    assert inside.wait(10)
    try:
        with pytest.raises(RuntimeError, match="drain"):
            bus.drain()                             # the parent: one drain at a time

        def child():
            assert bus.drain() == 2                 # the events after the one in flight
            assert seen == [0, 1, 2]

        assert _in_child(child) == "ok"
    finally:
        release.set()
        drainer.join(10)
    assert seen == [0, 1, 2]
