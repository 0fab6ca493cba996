"""Queued delivery through the public Bus: publish, try_publish, drain, consumer thread."""
import threading
import time

import pytest

import ringbus


def make(**kw):
    bus = ringbus.Bus(**kw)
    t = bus.event_type("t")
    got = []
    bus.subscribe(t, got.append)
    return bus, t, got


@pytest.mark.parametrize("producers", ["single", "multi"])
def test_publish_then_drain_dispatches_in_publish_order(producers):
    bus, t, got = make(capacity=64, producers=producers)
    for i in range(50):
        assert bus.publish(t, i) is True
    assert bus.pending == 50
    assert got == []
    assert bus.drain() == 50
    assert got == list(range(50))
    s = bus.stats()
    assert (s["published"], s["dispatched"], s["dropped"], s["pending"]) == (50, 50, 0, 0)


def test_drain_max_events_leaves_the_rest_queued():
    bus, t, got = make(capacity=16)
    for i in range(10):
        bus.publish(t, i)
    assert bus.drain(max_events=3) == 3
    assert got == [0, 1, 2]
    assert bus.pending == 7
    assert bus.drain() == 7
    assert got == list(range(10))


def test_overflow_raise_gives_ringfull_and_keeps_what_was_queued():
    bus, t, got = make(capacity=4, overflow="raise")
    for i in range(4):
        bus.publish(t, i)
    with pytest.raises(ringbus.RingFull):
        bus.publish(t, 99)
    assert bus.try_publish(t, 99) is False
    bus.drain()
    assert got == [0, 1, 2, 3]
    assert bus.stats()["dropped"] == 0


def test_overflow_drop_counts_the_dropped_events():
    bus, t, got = make(capacity=4, overflow="drop")
    results = [bus.publish(t, i) for i in range(6)]
    assert results == [True] * 4 + [False] * 2
    assert bus.stats()["dropped"] == 2
    bus.drain()
    assert got == [0, 1, 2, 3]


def test_blocking_publish_times_out_with_ringfull():
    bus, t, _ = make(capacity=2, overflow="block")
    bus.publish(t, 0)
    bus.publish(t, 1)
    start = time.monotonic()
    with pytest.raises(ringbus.RingFull):
        bus.publish(t, 2, timeout=0.05)
    assert time.monotonic() - start >= 0.04


def test_blocked_publisher_resumes_when_a_consumer_makes_room():
    bus, t, got = make(capacity=2)
    bus.publish(t, 0)
    bus.publish(t, 1)
    done = threading.Event()

    def producer():
        bus.publish(t, 2, timeout=5)
        done.set()

    th = threading.Thread(target=producer)
    th.start()
    time.sleep(0.02)
    bus.drain()
    th.join(5)
    assert done.is_set()
    bus.drain()
    assert got == [0, 1, 2]


def test_handler_publish_enqueues_behind_the_current_event():
    bus = ringbus.Bus(capacity=16)
    t = bus.event_type("t")
    log = []

    def handler(x):
        log.append(("start", x))
        if x == 0:
            bus.publish(t, 1)
        log.append(("end", x))

    bus.subscribe(t, handler)
    bus.publish(t, 0)
    bus.drain()
    assert log == [("start", 0), ("end", 0), ("start", 1), ("end", 1)]


def test_handler_publishing_into_the_full_ring_it_drains_past_the_backlog_gets_ringfull():
    # backlog=0: no room for follow-ups (tests/test_followup.py has the backlog itself).
    bus = ringbus.Bus(capacity=2, overflow="block", on_error="raise", backlog=0)
    t = bus.event_type("t")
    u = bus.event_type("u")
    bus.subscribe(t, lambda x: [bus.publish(u, i) for i in range(3)])
    bus.publish(t, 0)
    with pytest.raises(ringbus.RingFull, match="(?i)deadlock|drain|consum"):
        bus.drain()


def test_baseexception_in_drain_stops_at_an_event_boundary_and_loses_nothing():
    bus = ringbus.Bus(capacity=16)
    t = bus.event_type("t")
    got = []

    def handler(x):
        if x == 3 and not got.count("interrupted"):
            got.append("interrupted")
            raise KeyboardInterrupt
        got.append(x)

    bus.subscribe(t, handler)
    for i in range(6):
        bus.publish(t, i)
    with pytest.raises(KeyboardInterrupt):
        bus.drain()
    assert got == [0, 1, 2, "interrupted"]
    assert bus.pending == 2
    bus.drain()
    assert got == [0, 1, 2, "interrupted", 4, 5]


def test_consumer_thread_stop_drains_everything_published_before():
    bus, t, got = make(capacity=1024)
    bus.start()
    for i in range(20000):
        bus.publish(t, i)
    bus.stop(drain=True)
    assert got == list(range(20000))
    assert bus.pending == 0


@pytest.mark.parametrize("wait", ["block", "spin", "yield", "sleep"])
def test_running_context_manager_with_each_wait_strategy(wait):
    bus, t, got = make(capacity=256, wait=wait)
    with bus.running():
        for i in range(2000):
            bus.publish(t, i)
    assert got == list(range(2000))


def test_several_producer_threads_fifo_per_producer():
    bus = ringbus.Bus(capacity=256, producers="multi")
    t = bus.event_type("t")
    got = []
    bus.subscribe(t, got.append)
    n = 5000

    def producer(p):
        for i in range(n):
            bus.publish(t, (p, i))

    with bus.running():
        threads = [threading.Thread(target=producer, args=(p,)) for p in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert len(got) == 3 * n
    for p in range(3):
        assert [i for q, i in got if q == p] == list(range(n))


def test_publish_many_queues_every_payload_in_order():
    bus, t, got = make(capacity=64)
    assert bus.publish_many(t, range(50)) == 50
    bus.drain()
    assert got == list(range(50))


@pytest.mark.parametrize("kw", [dict(capacity=3), dict(capacity=1), dict(capacity=0),
                                dict(overflow="nope"), dict(wait="nope"),
                                dict(producers="many")])
def test_bad_ring_options_are_value_errors(kw):
    with pytest.raises(ValueError):
        ringbus.Bus(**kw)


def test_bad_publish_arguments():
    bus, t, _ = make(capacity=4)
    with pytest.raises(ValueError, match="timeout"):
        bus.publish(t, 1, timeout=-1)
    with pytest.raises(TypeError, match="event_type"):
        bus.publish("t", 1)
    with pytest.raises(ValueError, match="event_type"):
        bus.publish(99, 1)
    with pytest.raises(ValueError, match="max_events"):
        bus.drain(max_events=-1)
    assert bus.pending == 0


def test_queued_payload_is_released_after_dispatch():
    import gc
    import weakref

    class Payload:
        pass

    bus, t, got = make(capacity=4)
    got_ref = []
    bus.subscribe(t, lambda p: got_ref.append(weakref.ref(p)))
    p = Payload()
    bus.publish(t, p)
    del p
    bus.drain()
    got.clear()
    gc.collect()
    assert got_ref[0]() is None
