"""Snapshot: (un)subscribing inside a handler applies from the next event.
Re-entrancy: handlers may emit; nesting is limited by max_depth with EmitDepthError."""
import logging

import pytest

import ringbus


# -- snapshot ------------------------------------------------------------------------------

def test_subscribe_inside_handler_applies_from_next_event(bus, tick, rec):
    added = []

    def adder(payload):
        rec.calls.append(("adder", payload))
        if not added:
            added.append(bus.subscribe(tick, rec.handler("new"), priority=100))

    bus.subscribe(tick, adder)
    bus.subscribe(tick, rec.handler("last"), priority=-1)
    assert bus.emit(tick, 1) == 2
    assert rec.labels == ["adder", "last"]
    rec.calls.clear()
    assert bus.emit(tick, 2) == 3
    assert rec.labels == ["new", "adder", "last"]


def test_subscribe_later_in_order_inside_handler_not_called_this_event(bus, tick, rec):
    def adder(payload):
        rec.calls.append(("adder", payload))
        bus.subscribe(tick, rec.handler(f"new{payload}"), priority=-100)

    bus.subscribe(tick, adder)
    bus.emit(tick, 1)
    assert rec.labels == ["adder"]
    rec.calls.clear()
    bus.emit(tick, 2)
    assert rec.labels == ["adder", "new1"]


def test_unsubscribe_inside_handler_applies_from_next_event(bus, tick, rec):
    victim = {}

    def killer(payload):
        rec.calls.append(("killer", payload))
        victim["sub"].unsubscribe()

    bus.subscribe(tick, killer, priority=1)
    victim["sub"] = bus.subscribe(tick, rec.handler("victim"), priority=0)
    assert bus.emit(tick, 1) == 2
    assert rec.labels == ["killer", "victim"]
    assert victim["sub"].active is False
    rec.calls.clear()
    assert bus.emit(tick, 2) == 1
    assert rec.labels == ["killer"]


def test_handler_unsubscribing_itself_runs_once(bus, tick, rec):
    holder = {}

    def once(payload):
        rec.calls.append(("once", payload))
        holder["sub"].unsubscribe()

    holder["sub"] = bus.subscribe(tick, once)
    bus.subscribe(tick, rec.handler("other"))
    assert bus.emit(tick, 1) == 2
    assert bus.emit(tick, 2) == 1
    assert rec.calls == [("once", 1), ("other", 1), ("other", 2)]


def test_unsubscribe_everything_inside_handler_still_finishes_the_event(bus, tick, rec):
    subs = []

    def clear_all(payload):
        rec.calls.append(("clear", payload))
        for s in subs:
            s.unsubscribe()

    subs.append(bus.subscribe(tick, clear_all, priority=1))
    for label in "abc":
        subs.append(bus.subscribe(tick, rec.handler(label)))
    assert bus.emit(tick, 1) == 4
    assert rec.labels == ["clear", "a", "b", "c"]
    assert bus.emit(tick, 2) == 0


def test_nested_emit_sees_a_subscription_made_before_it(bus, rec):
    outer = bus.event_type("outer")
    inner = bus.event_type("inner")

    def outer_handler(payload):
        bus.subscribe(inner, rec.handler("inner-new"))
        bus.emit(inner, payload)

    bus.subscribe(outer, outer_handler)
    bus.emit(outer, 1)
    assert rec.labels == ["inner-new"]


def test_handler_unsubscribing_itself_and_failing_is_reported_with_its_subscription(
        make_bus):
    # Nothing but the bus holds this handler and its subscription: the dispatch in flight
    # must keep them alive after the unsubscribe, even through a collection.
    import gc
    seen = []
    bus = make_bus(on_error=lambda t, p, s, e: seen.append((s.name, s.active, e.args)))
    t = bus.event_type("t")

    def install(name):
        holder = []

        def handler(payload):
            holder[0].unsubscribe()
            gc.collect()
            raise ValueError(name)

        holder.append(bus.subscribe(t, handler, name=name))

    install("only")
    assert bus.emit(t, 1) == 1
    assert seen == [("only", False, ("only",))]
    assert bus.emit(t, 2) == 0

    seen.clear()
    for name in ("a", "b", "c"):
        install(name)
    assert bus.emit(t, 3) == 3
    assert seen == [("a", False, ("a",)), ("b", False, ("b",)), ("c", False, ("c",))]
    assert bus.emit(t, 4) == 0


def test_unsubscribe_inside_nested_emit_of_the_same_type(bus, tick, rec):
    # outer: A re-emits; inner: A, B (unsubscribes C), C still runs (inner snapshot);
    # back in outer: B, C (outer snapshot). The next event has no C.
    import gc
    subs = {}

    def a(payload):
        rec.calls.append(("A", payload))
        if payload == "outer":
            bus.emit(tick, "inner")

    def b(payload):
        rec.calls.append(("B", payload))
        if payload == "inner":
            subs["C"].unsubscribe()
            gc.collect()

    bus.subscribe(tick, a, priority=2)
    bus.subscribe(tick, b, priority=1)
    subs["C"] = bus.subscribe(tick, rec.handler("C"), priority=0)
    assert bus.emit(tick, "outer") == 3
    assert rec.calls == [("A", "outer"), ("A", "inner"), ("B", "inner"), ("C", "inner"),
                         ("B", "outer"), ("C", "outer")]
    rec.calls.clear()
    assert bus.emit(tick, "next") == 2
    assert rec.labels == ["A", "B"]


def test_registering_event_types_inside_handler_does_not_disturb_dispatch(bus, tick, rec):
    # Growing the table while a dispatch of it is in flight.
    def grow(payload):
        rec.calls.append(("grow", payload))
        for i in range(500):
            bus.event_type(f"grown.{payload}.{i}")

    bus.subscribe(tick, grow, priority=1)
    bus.subscribe(tick, rec.handler("after"))
    assert bus.emit(tick, 1) == 2
    assert bus.emit(tick, 2) == 2
    assert rec.calls == [("grow", 1), ("after", 1), ("grow", 2), ("after", 2)]
    assert bus.stats()["event_types"] == 1001


def test_replacing_every_handler_inside_dispatch_many_times(bus, tick, rec):
    import gc
    state = {"subs": []}

    def rebuild(payload):
        rec.calls.append(("rebuild", payload))
        for s in state["subs"]:
            s.unsubscribe()
        state["subs"] = [bus.subscribe(tick, (lambda p, i=i: rec.calls.append((i, p))))
                         for i in range(3)]
        gc.collect()

    bus.subscribe(tick, rebuild, priority=10)
    bus.emit(tick, 0)
    assert rec.calls == [("rebuild", 0)]
    for n in range(1, 20):
        rec.calls.clear()
        assert bus.emit(tick, n) == 4
        assert rec.calls == [("rebuild", n), (0, n), (1, n), (2, n)]


# -- re-entrancy -----------------------------------------------------------------------------

def test_handler_may_emit_another_event(bus, rec):
    order_t = bus.event_type("order")
    fill_t = bus.event_type("fill")

    def on_order(payload):
        rec.calls.append(("order", payload))
        assert bus.emit(fill_t, payload * 10) == 1
        rec.calls.append(("order-done", payload))

    bus.subscribe(order_t, on_order)
    bus.subscribe(fill_t, rec.handler("fill"))
    assert bus.emit(order_t, 1) == 1
    assert rec.calls == [("order", 1), ("fill", 10), ("order-done", 1)]


def test_handler_may_emit_its_own_event_with_bounded_recursion(bus, tick, rec):
    def countdown(n):
        rec.calls.append(("n", n))
        if n > 0:
            bus.emit(tick, n - 1)

    bus.subscribe(tick, countdown)
    bus.emit(tick, 5)
    assert [p for _, p in rec.calls] == [5, 4, 3, 2, 1, 0]
    assert bus.stats()["emitted"] == 6


def test_emit_depth_error_is_a_recursion_error():
    assert issubclass(ringbus.EmitDepthError, RecursionError)


@pytest.mark.parametrize("policy", ["log", "raise", "callable"])
def test_runaway_recursion_raises_emit_depth_error_from_outermost_emit(make_bus, policy,
                                                                        caplog):
    seen = []
    bus = make_bus(on_error=(lambda *a: seen.append(a)) if policy == "callable" else policy)
    t = bus.event_type("loop")
    depth = []

    def forever(payload):
        depth.append(payload)
        bus.emit(t, payload + 1)

    bus.subscribe(t, forever)
    with caplog.at_level(logging.CRITICAL + 1, logger="ringbus"):
        with pytest.raises(ringbus.EmitDepthError) as excinfo:
            bus.emit(t, 1)
    assert isinstance(excinfo.value, RecursionError)
    assert str(excinfo.value)          # a message, not a bare class
    assert max(depth) == 64            # the default max_depth
    assert seen == []                  # not handed to the error policy


def test_depth_limit_is_max_depth_nested_emits(make_bus):
    for limit in (1, 2, 5):
        bus = make_bus(max_depth=limit)
        t = bus.event_type("t")

        def nest(n, bus=bus, t=t):
            if n > 1:
                bus.emit(t, n - 1)

        bus.subscribe(t, nest)
        bus.emit(t, limit)                 # `limit` nested emits: allowed
        with pytest.raises(ringbus.EmitDepthError):
            bus.emit(t, limit + 1)         # one more: refused


def test_emit_depth_error_stops_the_rest_of_the_outer_handlers(make_bus, rec):
    bus = make_bus(max_depth=3)
    t = bus.event_type("t")

    def forever(payload):
        bus.emit(t, payload + 1)

    bus.subscribe(t, forever)
    bus.subscribe(t, rec.handler("after"), priority=-1)
    with pytest.raises(ringbus.EmitDepthError):
        bus.emit(t, 0)
    assert rec.labels == []


def test_bus_still_works_after_emit_depth_error(make_bus, rec):
    bus = make_bus(max_depth=8)
    loop = bus.event_type("loop")
    chain = bus.event_type("chain")

    def forever(payload):
        bus.emit(loop, payload)

    def nest(n):
        rec.calls.append(("nest", n))
        if n > 1:
            bus.emit(chain, n - 1)

    bus.subscribe(loop, forever)
    bus.subscribe(chain, nest)
    for _ in range(3):
        with pytest.raises(ringbus.EmitDepthError):
            bus.emit(loop, 0)
    # The depth is back to zero: the full max_depth is available again.
    assert bus.emit(chain, 8) == 1
    assert [n for _, n in rec.calls] == [8, 7, 6, 5, 4, 3, 2, 1]


def test_max_depth_option_is_respected(make_bus):
    bus = make_bus(max_depth=10)
    t = bus.event_type("t")
    depth = []

    def forever(payload):
        depth.append(payload)
        bus.emit(t, payload + 1)

    bus.subscribe(t, forever)
    with pytest.raises(ringbus.EmitDepthError):
        bus.emit(t, 1)
    assert max(depth) == 10
