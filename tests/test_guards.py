"""Guards (issue 13, item 3): a handler returning ringbus.STOP stops the event's later
handlers, counted in stats()["stopped"]; never an answer to a request()."""
import asyncio
import pickle

import numpy as np
import pytest

import ringbus
from ringbus import STOP


def test_a_guard_stops_the_later_handlers_and_is_counted():
    bus = ringbus.Bus()
    t = bus.event_type("guard.order")
    calls = []

    def risk(order):
        calls.append(("risk", order))
        return STOP if order["qty"] > 100 else None

    bus.subscribe(t, risk, name="risk")
    bus.subscribe(t, lambda o: calls.append(("gateway", o["qty"])), after="risk")
    assert bus.emit(t, {"qty": 5}) == 2
    assert bus.emit(t, {"qty": 500}) == 1           # the guard ran, the gateway did not
    assert [c[0] for c in calls] == ["risk", "gateway", "risk"]
    s = bus.stats()
    assert s["stopped"] == 1 and s["handler_calls"] == 3


def test_risk_runs_before_the_gateway_and_can_stop_it_through_the_ring():
    bus = ringbus.Bus()
    t = bus.event_type("guard.order2")
    sent = []
    bus.subscribe(t, lambda o: STOP if o < 0 else None, name="risk")
    bus.subscribe(t, sent.append, after="risk", priority=100)   # after= beats priority
    for o in (1, -1, 2):
        bus.publish(t, o)
    bus.drain()
    with bus.running():
        bus.publish(t, -5)
        bus.publish(t, 3)
    assert sent == [1, 2, 3] and bus.stats()["stopped"] == 2


def test_stop_from_a_pattern_guard_stops_exact_handlers_after_it():
    bus = ringbus.Bus()
    t = bus.event_type("guard.pat.x")
    got = []
    bus.subscribe("guard.pat.*", lambda p: STOP, name="halt")
    bus.subscribe(t, got.append, after="halt")
    bus.emit(t, 1)
    assert got == [] and bus.stats()["stopped"] == 1


def test_the_last_handlers_stop_counts_but_changes_nothing_else():
    bus = ringbus.Bus()
    t = bus.event_type("guard.last")
    got = []
    bus.subscribe(t, got.append)
    bus.subscribe(t, lambda p: STOP)
    assert bus.emit(t, 1) == 2 and got == [1]
    assert bus.stats()["stopped"] == 1


def test_stop_in_a_nested_emit_stops_only_that_event():
    bus = ringbus.Bus()
    outer, inner = bus.event_type("guard.outer"), bus.event_type("guard.inner")
    got = []
    bus.subscribe(inner, lambda p: STOP)
    bus.subscribe(inner, lambda p: got.append("inner-later"))
    bus.subscribe(outer, lambda p: bus.emit(inner, p))
    bus.subscribe(outer, lambda p: got.append("outer-later"))
    bus.emit(outer, 1)
    assert got == ["outer-later"]


def test_with_type_and_weak_guards_stop_too():
    bus = ringbus.Bus()
    t = bus.event_type("guard.kinds")
    got = []

    class Risk:
        def check(self, p):
            return STOP

    risk = Risk()
    bus.subscribe(t, lambda et, p: None, with_type=True)
    bus.subscribe(t, risk.check)                    # a weakly held bound method
    bus.subscribe(t, got.append)
    bus.subscribe(t, lambda et, p: got.append(p), with_type=True)
    bus.emit(t, 1)
    assert got == [] and bus.stats()["stopped"] == 1


def test_stop_in_a_batch():
    bus = ringbus.Bus()
    t = bus.event_type("guard.batch")
    per_row, batches = [], []
    bus.subscribe(t, lambda r: STOP if r > 1 else None, name="row_guard")
    bus.subscribe(t, per_row.append, after="row_guard")
    bus.subscribe_batch(t, lambda rows: batches.append(list(rows)), after="row_guard")
    bus.emit_batch(np.array([t, t, t]), np.array([1, 2, 0]))
    assert per_row == [1, 0]                        # row 2 stopped its later handlers
    assert batches == [[1, 2, 0]]                   # a batch handler gets the group
    assert bus.stats()["stopped"] == 1
    bus.subscribe_batch(t, lambda rows: STOP, name="batch_guard", priority=10)
    batches.clear(); per_row.clear()
    bus.emit_batch(np.array([t, t]), np.array([5, 6]))
    assert batches == [] and per_row == []          # a batch guard stops the whole group


def test_stop_is_not_an_answer_to_a_request():
    bus = ringbus.Bus()
    t = bus.event_type("guard.request")
    later = []
    bus.subscribe(t, lambda p: STOP)
    bus.subscribe(t, lambda p: later.append(p) or "answer")
    fut = bus.request(t, 1, timeout=5)
    bus.drain()
    with pytest.raises(ringbus.NoReplyError):
        fut.result(timeout=5)
    assert later == [] and bus.stats()["stopped"] == 1


def test_a_request_after_a_passing_guard_is_answered():
    bus = ringbus.Bus()
    t = bus.event_type("guard.request2")
    bus.subscribe(t, lambda p: STOP if p < 0 else None)
    bus.subscribe(t, lambda et, p: (et, p * 2), with_type=True)

    async def main():
        bus.attach()
        try:
            ok = await bus.request(t, 21, timeout=5)
            with pytest.raises(ringbus.NoReplyError):
                await bus.request(t, -1, timeout=5)
            return ok
        finally:
            bus.detach()

    assert asyncio.run(main()) == (t, 42)


def test_stop_is_one_object_everywhere():
    assert pickle.loads(pickle.dumps(STOP)) is STOP
    assert repr(STOP) == "ringbus.STOP"


def test_an_async_guard_awaited_by_the_loop_consumer_stops_the_event():
    bus = ringbus.Bus()
    t = bus.event_type("guard.async")
    sent = []

    async def risk(order):
        await asyncio.sleep(0.001)          # suspends: the consumer awaits it in order
        return STOP if order < 0 else None

    bus.subscribe(t, risk, name="risk")
    bus.subscribe(t, sent.append, after="risk")

    async def main():
        bus.attach()
        try:
            for o in (1, -1, 2):
                await bus.publish_async(t, o)
            for _ in range(200):
                if bus.stats()["dispatched"] == 3 and len(sent) == 2:
                    break
                await asyncio.sleep(0.005)
        finally:
            bus.detach()

    asyncio.run(main())
    assert sent == [1, 2] and bus.stats()["stopped"] == 1
