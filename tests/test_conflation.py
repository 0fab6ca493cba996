"""Conflation (issue 13, item 5): a conflating publish replaces a queued, not yet dispatched
payload of the same (type, key), keeps keys in first-arrival order and counts what it
conflated; nothing else about delivery changes."""
import threading

import pytest

import ringbus
from stress import scaled


def test_latest_payload_per_key_in_first_arrival_order():
    bus = ringbus.Bus()
    quote = bus.event_type("conflate.quote")
    got = []
    bus.subscribe(quote, got.append)
    for sym, px in [("ES", 1), ("NQ", 2), ("ES", 3), ("CL", 4), ("NQ", 5), ("ES", 6)]:
        assert bus.publish_conflated(quote, sym, (sym, px)) is True
    bus.drain()
    assert got == [("ES", 6), ("NQ", 5), ("CL", 4)]
    assert bus.stats()["conflated"] == 3
    # Dispatched: the key is no longer pending, the next publish queues again.
    bus.publish_conflated(quote, "ES", ("ES", 7))
    bus.drain()
    assert got[-1] == ("ES", 7) and bus.stats()["conflated"] == 3


def test_keys_are_per_event_type_and_plain_events_keep_their_place():
    bus = ringbus.Bus()
    quote, trade = bus.event_type("conflate.q"), bus.event_type("conflate.t")
    got = []
    bus.subscribe(quote, lambda p: got.append(("q", p)))
    bus.subscribe(trade, lambda p: got.append(("t", p)))
    bus.publish_conflated(quote, "ES", 1)
    bus.publish(trade, "fill-1")                    # not conflated: delivered as ever
    bus.publish_conflated(trade, "ES", 10)          # same key, other type: its own entry
    bus.publish(trade, "fill-2")
    bus.publish_conflated(quote, "ES", 2)
    bus.drain()
    assert got == [("q", 2), ("t", "fill-1"), ("t", 10), ("t", "fill-2")]


def test_an_unhashable_key_or_an_unknown_type_is_refused_at_the_call():
    bus = ringbus.Bus()
    t = bus.event_type("conflate.bad")
    with pytest.raises(TypeError, match="key must be hashable"):
        bus.publish_conflated(t, ["ES"], 1)
    other = ringbus.Bus().event_type("conflate.elsewhere")
    with pytest.raises(ValueError, match="not registered on this bus"):
        bus.publish_conflated(other, "ES", 1)
    assert bus.pending == 0


def test_a_dropped_conflating_publish_leaves_nothing_pending():
    bus = ringbus.Bus(capacity=2, overflow="drop")
    t = bus.event_type("conflate.drop")
    got = []
    bus.subscribe(t, got.append)
    assert bus.publish_conflated(t, "a", 1) and bus.publish_conflated(t, "b", 2)
    assert bus.publish_conflated(t, "c", 3) is False        # the ring is full: dropped
    assert bus.publish_conflated(t, "a", 4) is True         # conflates into the queued one
    bus.drain()
    assert got == [4, 2]
    assert bus.publish_conflated(t, "c", 5) is True         # "c" was not left pending
    bus.drain()
    assert got == [4, 2, 5]


def test_stress_latest_value_per_key_and_sequence_of_plain_events():
    # Producers on threads, the consumer thread lagging: every key's last value arrives,
    # values of a key never go backwards, and plain events arrive complete and in order.
    bus = ringbus.Bus(capacity=1024)
    md, fills = bus.event_type("conflate.md"), bus.event_type("conflate.fills")
    last, seen_fills = {}, []
    backwards, calls = [], [0]

    def on_md(p):
        calls[0] += 1
        key, seq = p
        if seq < last.get(key, -1):
            backwards.append(p)
        last[key] = seq

    bus.subscribe(md, on_md)
    bus.subscribe(fills, seen_fills.append)
    n = scaled(20_000)
    keys = [f"k{i}" for i in range(8)]

    def feed():
        for i in range(n):
            key = keys[i % len(keys)]
            bus.publish_conflated(md, key, (key, i))

    def fill_producer():
        for i in range(n // 10):
            bus.publish(fills, i)

    with bus.running():
        threads = [threading.Thread(target=feed),
                   threading.Thread(target=fill_producer)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert seen_fills == list(range(n // 10))
    assert not backwards
    for j, key in enumerate(keys):
        assert last[key] == max(i for i in range(n - len(keys), n) if i % len(keys) == j)
    assert calls[0] + bus.stats()["conflated"] == n       # each publish: one or the other
