"""subscribe / on / unsubscribe, Subscription attributes, subscriptions(), stats()."""
import pytest

import ringbus


def test_subscribe_returns_a_subscription():
    bus = ringbus.Bus()
    t = bus.event_type("md.tick")
    sub = bus.subscribe(t, lambda p: None)
    assert isinstance(sub, ringbus.Subscription)


def test_handler_is_called_with_the_payload(bus, tick):
    calls = []
    bus.subscribe(tick, calls.append)
    payload = object()
    assert bus.emit(tick, payload) == 1
    assert calls == [payload]
    assert calls[0] is payload


def test_emit_returns_how_many_handlers_ran(bus, tick):
    for _ in range(3):
        bus.subscribe(tick, lambda p: None)
    assert bus.emit(tick, 1) == 3


def test_emit_runs_only_the_handlers_of_its_type(bus, tick, rec):
    other = bus.event_type("md.trade")
    bus.subscribe(tick, rec.handler("tick"))
    bus.subscribe(other, rec.handler("trade"))
    assert bus.emit(other, 5) == 1
    assert rec.calls == [("trade", 5)]


def test_emit_runs_inline_before_returning(bus, tick):
    seen = []
    bus.subscribe(tick, seen.append)
    bus.emit(tick, 1)
    assert seen == [1]          # no drain/flush needed


def test_same_function_subscribed_twice_runs_twice(bus, tick):
    calls = []
    bus.subscribe(tick, calls.append)
    bus.subscribe(tick, calls.append)
    assert bus.emit(tick, 1) == 2
    assert calls == [1, 1]


def test_on_decorator_returns_the_function_unchanged(bus, tick):
    calls = []

    def on_tick(payload):
        calls.append(payload)

    decorated = bus.on(tick, priority=5)(on_tick)
    assert decorated is on_tick
    bus.emit(tick, 3)
    assert calls == [3]


def test_on_decorator_syntax_subscribes_with_priority(bus, tick, rec):
    bus.subscribe(tick, rec.handler("low"))

    @bus.on(tick, priority=5)
    def on_tick(payload):
        rec.calls.append(("high", payload))

    assert callable(on_tick)
    bus.emit(tick, 0)
    assert rec.labels == ["high", "low"]


def test_unsubscribe_stops_delivery(bus, tick):
    calls = []
    sub = bus.subscribe(tick, calls.append)
    sub.unsubscribe()
    assert bus.emit(tick, 1) == 0
    assert calls == []


def test_unsubscribe_is_idempotent(bus, tick):
    calls = []
    sub = bus.subscribe(tick, calls.append)
    keep = bus.subscribe(tick, calls.append)
    sub.unsubscribe()
    sub.unsubscribe()
    sub.unsubscribe()
    assert sub.active is False
    assert keep.active is True
    assert bus.emit(tick, 1) == 1
    assert bus.stats()["subscriptions"] == 1


def test_subscription_is_a_context_manager(bus, tick):
    calls = []
    with bus.subscribe(tick, calls.append) as sub:
        assert sub.active
        assert bus.emit(tick, 1) == 1
    assert not sub.active
    assert bus.emit(tick, 2) == 0
    assert calls == [1]


def test_context_manager_unsubscribes_on_exception(bus, tick):
    with pytest.raises(RuntimeError):
        with bus.subscribe(tick, lambda p: None) as sub:
            raise RuntimeError("boom")
    assert not sub.active
    assert bus.emit(tick, 1) == 0


def test_unsubscribe_inside_context_then_exit_is_fine(bus, tick):
    with bus.subscribe(tick, lambda p: None) as sub:
        sub.unsubscribe()
    assert not sub.active


def test_subscription_attributes(bus, tick):
    def handler(payload):
        pass

    sub = bus.subscribe(tick, handler, priority=7, name="risk")
    assert sub.active is True
    assert sub.handler is handler
    assert sub.name == "risk"
    assert sub.priority == 7
    assert sub.event_type == tick


def test_subscription_defaults(bus, tick):
    sub = bus.subscribe(tick, lambda p: None)
    assert sub.name is None
    assert sub.priority == 0
    assert sub.active is True


def test_subscriptions_is_a_tuple_in_dispatch_order(bus, tick):
    a = bus.subscribe(tick, lambda p: None, name="a")
    b = bus.subscribe(tick, lambda p: None, name="b", priority=3)
    c = bus.subscribe(tick, lambda p: None, name="c", after=("a",))
    subs = bus.subscriptions(tick)
    assert isinstance(subs, tuple)
    assert subs == (b, a, c)


def test_subscriptions_excludes_unsubscribed(bus, tick):
    a = bus.subscribe(tick, lambda p: None)
    b = bus.subscribe(tick, lambda p: None)
    a.unsubscribe()
    assert bus.subscriptions(tick) == (b,)
    b.unsubscribe()
    assert bus.subscriptions(tick) == ()


def test_subscriptions_of_a_type_without_subscribers_is_empty(bus, tick):
    assert bus.subscriptions(tick) == ()


def test_stats_has_the_documented_counters(bus):
    stats = bus.stats()
    for key in ("emitted", "handler_errors", "handler_calls", "subscriptions", "event_types"):
        assert key in stats
        assert stats[key] == 0


def test_stats_counts_emits_calls_and_subscriptions(bus, tick):
    other = bus.event_type("other")
    bus.subscribe(tick, lambda p: None)
    bus.subscribe(tick, lambda p: None)
    sub = bus.subscribe(other, lambda p: None)
    bus.emit(tick, 1)
    bus.emit(tick, 2)
    bus.emit(other, 3)
    stats = bus.stats()
    assert stats["emitted"] == 3
    assert stats["handler_calls"] == 5
    assert stats["handler_errors"] == 0
    assert stats["subscriptions"] == 3
    assert stats["event_types"] == 2
    sub.unsubscribe()
    assert bus.stats()["subscriptions"] == 2


def test_stats_counts_emits_of_types_without_subscribers(bus, tick):
    bus.emit(tick, 1)
    assert bus.stats()["emitted"] == 1
    assert bus.stats()["handler_calls"] == 0


def test_stats_is_a_mapping(bus):
    from collections.abc import Mapping
    assert isinstance(bus.stats(), Mapping)
