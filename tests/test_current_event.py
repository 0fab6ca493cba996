"""ringbus.current_event(): inside a handler, the event being handled; None outside."""
import asyncio
import threading

import pytest

import ringbus


def _seen(bus, t, into):
    def handler(payload):
        into.append(ringbus.current_event())
    return bus.subscribe(t, handler)


def test_none_outside_a_handler():
    assert ringbus.current_event() is None
    bus = ringbus.Bus()
    t = bus.event_type("ce.none")
    bus.subscribe(t, lambda p: None)
    bus.emit(t, 1)
    assert ringbus.current_event() is None


def test_emit_gives_type_name_payload_and_no_sequence():
    bus = ringbus.Bus()
    t = bus.event_type("ce.emit")
    unnamed = bus.event_type(len(ringbus.identity.table()) + 40)   # a new bare int id
    seen = []
    _seen(bus, t, seen)
    _seen(bus, unnamed, seen)
    bus.emit(t, "p")
    bus.emit(unnamed, None)
    ev, bare = seen
    assert isinstance(ev, ringbus.EventInfo)
    assert (ev.type, ev.name, ev.sequence, ev.published_at, ev.payload) == (
        t, "ce.emit", None, None, "p")
    assert (bare.type, bare.name) == (unnamed, None)
    assert "ce.emit" in repr(ev) and "sequence=None" in repr(ev)
    with pytest.raises(AttributeError):
        ev.type = 3                     # read-only


def test_nested_emit_sees_the_innermost_event_then_its_own_again():
    bus = ringbus.Bus()
    outer, inner = bus.event_type("ce.outer"), bus.event_type("ce.inner")
    seen = []

    def on_outer(payload):
        seen.append(("before", ringbus.current_event().type))
        bus.emit(inner, "i")
        seen.append(("after", ringbus.current_event().type))

    bus.subscribe(outer, on_outer)
    bus.subscribe(inner, lambda p: seen.append(("inner", ringbus.current_event().type)))
    bus.emit(outer, "o")
    assert seen == [("before", outer), ("inner", inner), ("after", outer)]
    assert ringbus.current_event() is None


def test_drain_gives_each_event_its_ring_sequence():
    bus = ringbus.Bus(capacity=8)
    t = bus.event_type("ce.drain")
    seen = []
    _seen(bus, t, seen)
    for i in range(20):                 # past the capacity: sequences keep counting
        bus.publish(t, i)
        if i % 5 == 4:
            bus.drain()
    bus.emit(t, "inline")
    assert [e.payload for e in seen] == list(range(20)) + ["inline"]
    sequences = [e.sequence for e in seen]
    assert sequences[:-1] == list(range(sequences[0], sequences[0] + 20))
    assert sequences[-1] is None


def test_consumer_thread_sees_sequences_in_publish_order():
    bus = ringbus.Bus(capacity=16)
    t = bus.event_type("ce.thread")
    seen = []
    _seen(bus, t, seen)
    threads = []

    def on_thread(payload):
        threads.append(threading.get_ident())
    bus.subscribe(t, on_thread)
    with bus.running():
        for i in range(100):
            bus.publish(t, i)
    assert threading.get_ident() not in threads
    assert [e.payload for e in seen] == list(range(100))
    assert [e.sequence for e in seen] == list(range(seen[0].sequence, seen[0].sequence + 100))
    assert all(e.type == t for e in seen)


def test_frame_is_popped_after_a_handler_raised():
    bus = ringbus.Bus(on_error="raise")
    t = bus.event_type("ce.raise")

    def fails(payload):
        raise ValueError(ringbus.current_event().type)
    bus.subscribe(t, fails)
    with pytest.raises(ValueError):
        bus.emit(t, 1)
    assert ringbus.current_event() is None
    bus.publish(t, 2)
    with pytest.raises(ValueError):
        bus.drain()
    assert ringbus.current_event() is None

    def interrupts(payload):
        raise KeyboardInterrupt
    u = bus.event_type("ce.interrupt")
    bus.subscribe(u, interrupts)
    with pytest.raises(KeyboardInterrupt):
        bus.emit(u, 3)
    assert ringbus.current_event() is None


def test_emit_batch_rows_are_events_of_their_type():
    np = pytest.importorskip("numpy")
    bus = ringbus.Bus()
    t = bus.event_type("ce.batch")
    seen = []
    _seen(bus, t, seen)
    bus.subscribe_batch(t, lambda rows: seen.append(ringbus.current_event()))
    bus.emit_batch(np.array([t, t]), np.array([5, 6]))
    assert [e.type for e in seen] == [t, t, t]
    assert [int(e.payload) for e in seen[:2]] == [5, 6]
    assert len(seen[2].payload) == 2
    assert ringbus.current_event() is None


def test_async_handler_sees_its_event_after_an_await_on_the_loop_consumer():
    bus = ringbus.Bus()
    t, other = bus.event_type("ce.async"), bus.event_type("ce.async.other")
    seen = []

    async def handler(payload):
        seen.append(("start", payload, ringbus.current_event().sequence))
        await asyncio.sleep(0.01)
        ev = ringbus.current_event()
        seen.append(("resumed", ev.payload, ev.sequence, ev.type == t))
        bus.emit(other, payload)        # nested inside a resumed step: the innermost
        seen.append(("after emit", ringbus.current_event().payload))

    bus.subscribe(t, handler)
    bus.subscribe(other, lambda p: seen.append(("other", ringbus.current_event().type)))

    async def main():
        bus.attach()
        try:
            bus.publish(t, "a")
            bus.publish(t, "b")
            for _ in range(300):
                if len(seen) >= 8:
                    break
                await asyncio.sleep(0.01)
            assert ringbus.current_event() is None
        finally:
            bus.detach()
            await asyncio.sleep(0)
    asyncio.run(asyncio.wait_for(main(), 10))
    s_a, s_b = seen[0][2], seen[4][2]
    assert s_b == s_a + 1
    assert seen == [("start", "a", s_a), ("resumed", "a", s_a, True), ("other", other),
                    ("after emit", "a"),
                    ("start", "b", s_b), ("resumed", "b", s_b, True), ("other", other),
                    ("after emit", "b")]


def test_async_handler_as_a_task_and_on_a_private_loop():
    bus = ringbus.Bus()
    t = bus.event_type("ce.task")
    seen = []

    async def handler(payload):
        await asyncio.sleep(0)
        seen.append((payload, ringbus.current_event().payload))
    bus.subscribe(t, handler)

    bus.emit(t, "private loop")         # no running loop here: run to completion

    async def main():
        bus.emit(t, "task")             # a running loop: it goes on as a task
        assert ringbus.current_event() is None
        await asyncio.sleep(0.05)
    asyncio.run(main())
    assert seen == [("private loop", "private loop"), ("task", "task")]


def test_request_handlers_see_the_requested_event():
    bus = ringbus.Bus()
    q = bus.event_type("ce.quote")
    seen = []

    def record(where):
        ev = ringbus.current_event()
        seen.append((where, ev.type, ev.name, ev.payload))

    bus.subscribe(q, lambda payload: record("sync"), priority=1)    # returns None: no reply

    async def quote(payload):
        await asyncio.sleep(0)
        record("async, resumed")
        return 42
    bus.subscribe(q, quote)

    async def main():
        bus.attach()
        try:
            return await asyncio.wait_for(bus.request(q, "ESZ6"), 5)
        finally:
            bus.detach()
            await asyncio.sleep(0)
    assert asyncio.run(main()) == 42
    assert seen == [("sync", q, "ce.quote", "ESZ6"), ("async, resumed", q, "ce.quote", "ESZ6")]
