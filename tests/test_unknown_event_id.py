"""An event id the table does not have never kills the ring's consumer (issue 8, defect 5)."""
import threading

import pytest

import ringbus


def test_ring_publish_refuses_an_id_the_started_table_lacks():
    bus = ringbus.Bus(capacity=8)
    T = bus.event_type("x")
    bus.start()
    try:
        with pytest.raises(ValueError, match="event_type"):
            bus.ring.publish(T + 100, "bad")
    finally:
        bus.stop(timeout=5)


def test_consumer_survives_an_unknown_id_and_counts_it():
    bus = ringbus.Bus(capacity=4)
    T = bus.event_type("x")
    seen = []
    bus.subscribe(T, seen.append)
    bus.ring.publish(T + 100, "bad")       # not started: the ring cannot check it yet
    bus.start()
    done = threading.Event()

    def more():
        for i in range(20):                # more than the capacity: needs a live consumer
            bus.publish(T, i, timeout=5)
        done.set()

    th = threading.Thread(target=more, daemon=True)
    th.start()
    th.join(10)
    assert done.is_set()
    bus.stop(timeout=5)
    assert seen == list(range(20))
    assert bus.stats()["handler_errors"] == 1


def test_drain_survives_an_unknown_id():
    bus = ringbus.Bus()
    T = bus.event_type("x")
    seen = []
    bus.subscribe(T, seen.append)
    bus.ring.publish(T + 7, "bad")
    bus.publish(T, 1)
    assert bus.drain() == 2
    assert seen == [1]
