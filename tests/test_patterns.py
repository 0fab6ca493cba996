"""Topic patterns (issue 13, item 1): NATS token semantics, resolved at registration into the
integer table, for types registered later too; with subscribe_batch, on, once and with_type
(item 2), and the order between exact and pattern subscriptions."""
import gc

import numpy as np
import pytest

import ringbus
from ringbus.patterns import check_pattern, matches


@pytest.mark.parametrize("pattern, name, expected", [
    ("md.*", "md.tick", True),
    ("md.*", "md.tick.aapl", False),
    ("md.*", "md", False),
    ("md.>", "md.tick", True),
    ("md.>", "md.tick.aapl", True),
    ("md.>", "md", False),
    ("*.tick", "md.tick", True),
    ("*.tick", "md.trade", False),
    ("*.*.aapl", "md.tick.aapl", True),
    (">", "anything.at.all", True),
    ("md.*.>", "md.tick", False),
    ("md.*.>", "md.tick.aapl.x", True),
])
def test_nats_token_semantics(pattern, name, expected):
    assert matches(check_pattern(pattern), name) is expected


@pytest.mark.parametrize("bad", ["md.>.x", "md..*", "md*", "md.t*", ".*", "md.>>"])
def test_malformed_patterns_are_refused_at_the_call(bad):
    bus = ringbus.Bus()
    with pytest.raises(ValueError, match="event_type"):
        bus.subscribe(bad, print)


def test_pattern_reaches_matching_types_now_and_registered_later():
    bus = ringbus.Bus()
    tick = bus.event_type("pat.md.tick")
    order = bus.event_type("pat.order.new")
    got = []
    sub = bus.subscribe("pat.md.*", got.append)
    trade = bus.event_type("pat.md.trade")        # registered after the pattern
    deep = bus.event_type("pat.md.trade.aapl")    # '*' is one token: not matched
    bus.emit(tick, 1)
    bus.emit(trade, 2)
    bus.emit(order, 3)
    bus.emit(deep, 4)
    bus.publish(trade, 5)
    bus.drain()
    assert got == [1, 2, 5]
    assert set(sub.members) == {tick, trade}
    assert isinstance(sub, ringbus.Subscription)


def test_greater_than_matches_one_or_more_trailing_tokens():
    bus = ringbus.Bus()
    got = []
    bus.subscribe("pat2.md.>", got.append)
    for name in ("pat2.md", "pat2.md.tick", "pat2.md.tick.aapl"):
        bus.emit(bus.event_type(name), name)
    assert got == ["pat2.md.tick", "pat2.md.tick.aapl"]


def test_unsubscribe_removes_every_member_and_stops_matching():
    bus = ringbus.Bus()
    tick = bus.event_type("pat3.md.tick")
    got = []
    with bus.subscribe("pat3.md.*", got.append) as sub:
        bus.emit(tick, 1)
    later = bus.event_type("pat3.md.later")
    bus.emit(tick, 2)
    bus.emit(later, 3)
    assert got == [1] and not sub.active and sub.members == {}
    assert bus.stats()["subscriptions"] == 0


def test_a_pattern_only_sees_this_buss_types():
    a, b = ringbus.Bus(), ringbus.Bus()
    got = []
    b.subscribe("pat4.*", got.append)
    t = a.event_type("pat4.x")                  # registered on a, not b
    assert len(b.subscriptions(b.event_type("pat4.y"))) == 1
    a.emit(t, 1)
    assert got == []
    b.event_type("pat4.x")
    b.emit(t, 2)
    assert got == [2]


def test_order_between_exact_and_pattern_is_edges_priority_then_subscribe_order():
    bus = ringbus.Bus()
    calls = []
    t = bus.event_type("pat5.order")
    bus.subscribe(t, lambda p: calls.append("exact1"))
    bus.subscribe("pat5.*", lambda p: calls.append("pattern"))
    bus.subscribe(t, lambda p: calls.append("exact2"))
    bus.subscribe(t, lambda p: calls.append("high"), priority=5)
    bus.emit(t)
    assert calls == ["high", "exact1", "pattern", "exact2"]
    # A type registered later: the pattern keeps its place (its subscribe time).
    calls.clear()
    u = bus.event_type("pat5.later")
    bus.subscribe(u, lambda p: calls.append("exact_u"))
    bus.emit(u)
    assert calls == ["pattern", "exact_u"]


def test_after_edges_work_both_ways_between_exact_and_pattern():
    bus = ringbus.Bus()
    calls = []
    t = bus.event_type("pat6.order")
    bus.subscribe(t, lambda p: calls.append("gateway"), name="gateway")
    audit = bus.subscribe("pat6.*", lambda p: calls.append("audit"), name="audit",
                          after="gateway")
    bus.subscribe(t, lambda p: calls.append("risk"), name="risk", before="gateway",
                  priority=-1)
    bus.subscribe(t, lambda p: calls.append("after_audit"), after=audit, priority=9)
    bus.emit(t)
    assert calls == ["risk", "gateway", "audit", "after_audit"]
    # A later type without "gateway": the edge simply does not apply there.
    calls.clear()
    bus.emit(bus.event_type("pat6.other"))
    assert calls == ["audit"]


def test_a_cycle_through_a_pattern_is_refused_and_leaves_the_bus_unchanged():
    bus = ringbus.Bus()
    t = bus.event_type("pat7.x")
    a = bus.subscribe(t, print, name="a")
    with pytest.raises(ringbus.OrderCycleError):
        bus.subscribe("pat7.*", print, name="p", after="a", before="a")
    assert bus.subscriptions(t) == (a,)


def test_once_on_a_pattern_is_once_in_all():
    bus = ringbus.Bus()
    a, b = bus.event_type("pat8.a"), bus.event_type("pat8.b")
    got = []
    sub = bus.subscribe("pat8.*", got.append, once=True)
    bus.emit(b, 1)
    bus.emit(a, 2)
    bus.emit(bus.event_type("pat8.c"), 3)
    assert got == [1] and not sub.active
    assert bus.stats()["subscriptions"] == 0


def test_on_decorator_with_a_pattern_and_with_type():
    bus = ringbus.Bus()
    tick, trade = bus.event_type("pat9.tick"), bus.event_type("pat9.trade")
    got = []

    @bus.on("pat9.*", with_type=True)
    def handle(event_type, payload):
        got.append((bus.event_name(event_type), payload))

    bus.emit(tick, 1)
    bus.publish(trade, 2)
    bus.drain()
    assert got == [("pat9.tick", 1), ("pat9.trade", 2)]


def test_with_type_once_on_a_pattern():
    bus = ringbus.Bus()
    t = bus.event_type("pat10.x")
    got = []
    bus.subscribe("pat10.*", lambda et, p: got.append((et, p)), once=True, with_type=True)
    bus.emit(t, 1)
    bus.emit(t, 2)
    assert got == [(t, 1)]


def test_subscribe_batch_with_a_pattern_gets_each_groups_rows_and_type():
    bus = ringbus.Bus()
    a, b = bus.event_type("pat11.a"), bus.event_type("pat11.b")
    got = []
    bus.subscribe_batch("pat11.*", lambda et, rows: got.append((et, list(rows))),
                        with_type=True)
    bus.emit_batch(np.array([a, b, a]), np.array([1.0, 2.0, 3.0]))
    assert sorted(got) == sorted([(a, [1.0, 3.0]), (b, [2.0])])


def test_a_weakly_held_pattern_handler_goes_with_its_object():
    bus = ringbus.Bus()
    t = bus.event_type("pat12.x")

    class Strategy:
        def __init__(self):
            self.got = []

        def on_md(self, p):
            self.got.append(p)

    s = Strategy()
    sub = bus.subscribe("pat12.*", s.on_md)
    bus.emit(t, 1)
    assert s.got == [1]
    del s
    gc.collect()
    assert not sub.active
    bus.event_type("pat12.y")
    assert bus.stats()["subscriptions"] == 0


def test_pattern_name_must_not_clash_on_a_matching_type():
    bus = ringbus.Bus()
    t = bus.event_type("pat13.x")
    bus.subscribe(t, print, name="risk")
    with pytest.raises(ValueError, match="'risk' is already used"):
        bus.subscribe("pat13.*", print, name="risk")


def test_exact_and_pattern_handlers_run_alike_from_every_dispatcher():
    bus = ringbus.Bus()
    t = bus.event_type("pat14.x")
    got = []
    bus.subscribe(t, lambda p: got.append(("exact", p)))
    bus.subscribe("pat14.>", lambda p: got.append(("pattern", p)))
    bus.emit(t, 1)
    bus.publish_many(t, [2, 3])
    with bus.running():
        bus.publish(t, 4)
    assert got == [(k, i) for i in (1, 2, 3, 4) for k in ("exact", "pattern")]
