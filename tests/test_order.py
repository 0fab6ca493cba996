"""Order for one event: after=/before= edges, then higher priority, then registration order;
cycles refused at subscribe, naming the subscriptions, leaving the bus unchanged."""
import pytest


def test_registration_order_for_equal_priority(bus, tick, rec):
    for label in "abcde":
        bus.subscribe(tick, rec.handler(label))
    bus.emit(tick, 0)
    assert rec.labels == list("abcde")


def test_higher_priority_runs_first(bus, tick, rec):
    bus.subscribe(tick, rec.handler("p0"), priority=0)
    bus.subscribe(tick, rec.handler("p10"), priority=10)
    bus.subscribe(tick, rec.handler("p-5"), priority=-5)
    bus.subscribe(tick, rec.handler("p5"), priority=5)
    bus.emit(tick, 0)
    assert rec.labels == ["p10", "p5", "p0", "p-5"]


def test_priority_ties_break_by_registration_order(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a1"), priority=1)
    bus.subscribe(tick, rec.handler("b0"), priority=0)
    bus.subscribe(tick, rec.handler("c1"), priority=1)
    bus.subscribe(tick, rec.handler("d0"), priority=0)
    bus.emit(tick, 0)
    assert rec.labels == ["a1", "c1", "b0", "d0"]


def test_after_edge_beats_priority(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a"), name="a", priority=0)
    bus.subscribe(tick, rec.handler("b"), name="b", priority=100, after=("a",))
    bus.emit(tick, 0)
    assert rec.labels == ["a", "b"]


def test_after_by_subscription_object(bus, tick, rec):
    a = bus.subscribe(tick, rec.handler("a"), priority=0)
    bus.subscribe(tick, rec.handler("b"), priority=100, after=(a,))
    bus.emit(tick, 0)
    assert rec.labels == ["a", "b"]


def test_after_accepts_a_single_name_or_subscription(bus, tick, rec):
    a = bus.subscribe(tick, rec.handler("a"), name="a")
    bus.subscribe(tick, rec.handler("b"), priority=9, after="a")
    bus.subscribe(tick, rec.handler("c"), priority=8, after=a)
    bus.emit(tick, 0)
    assert rec.labels == ["a", "b", "c"]


def test_after_several_dependencies(bus, tick, rec):
    bus.subscribe(tick, rec.handler("x"), name="x", priority=1)
    bus.subscribe(tick, rec.handler("y"), name="y", priority=2)
    bus.subscribe(tick, rec.handler("z"), priority=50, after=("x", "y"))
    bus.emit(tick, 0)
    assert rec.labels == ["y", "x", "z"]


def test_after_edges_are_transitive(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a"), name="a", priority=-10)
    bus.subscribe(tick, rec.handler("b"), name="b", priority=10, after="a")
    bus.subscribe(tick, rec.handler("c"), name="c", priority=20, after="b")
    bus.subscribe(tick, rec.handler("free"), priority=0)
    bus.emit(tick, 0)
    # Ready first: free (0) beats a (-10); then a, b, c along the chain.
    assert rec.labels == ["free", "a", "b", "c"]


def test_among_ready_handlers_priority_then_registration_decides(bus, tick, rec):
    bus.subscribe(tick, rec.handler("x"), name="x", priority=0)
    bus.subscribe(tick, rec.handler("y"), priority=5, after="x")
    bus.subscribe(tick, rec.handler("z"), priority=1)
    bus.emit(tick, 0)
    # z (1) and x (0) are ready at first: z; then x; then y, freed by x.
    assert rec.labels == ["z", "x", "y"]


def test_before_is_the_mirror_of_after(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a"), name="a", priority=100)
    bus.subscribe(tick, rec.handler("b"), priority=0, before="a")
    bus.emit(tick, 0)
    assert rec.labels == ["b", "a"]


def test_edge_to_an_unsubscribed_handler_no_longer_constrains(bus, tick, rec):
    a = bus.subscribe(tick, rec.handler("a"), name="a", priority=0)
    bus.subscribe(tick, rec.handler("b"), priority=1, after="a")
    bus.subscribe(tick, rec.handler("c"), priority=5)
    a.unsubscribe()
    bus.emit(tick, 0)
    assert rec.labels == ["c", "b"]


def test_order_is_per_event_type(bus, tick, rec):
    other = bus.event_type("other")
    bus.subscribe(tick, rec.handler("t-low"), priority=0)
    bus.subscribe(tick, rec.handler("t-high"), priority=1)
    bus.subscribe(other, rec.handler("o-first"), priority=0)
    bus.subscribe(other, rec.handler("o-second"), priority=0)
    bus.emit(other, 0)
    bus.emit(tick, 0)
    assert rec.labels == ["o-first", "o-second", "t-high", "t-low"]


def test_order_is_stable_across_emits(bus, tick, rec):
    for i, p in enumerate([3, 1, 3, 2, 1]):
        bus.subscribe(tick, rec.handler(i), priority=p)
    bus.emit(tick, 0)
    first = rec.labels
    rec.calls.clear()
    bus.emit(tick, 0)
    assert rec.labels == first == [0, 2, 3, 1, 4]


def test_same_name_on_another_event_type_is_not_an_after_target(bus, tick):
    other = bus.event_type("other")
    bus.subscribe(other, lambda p: None, name="a")
    with pytest.raises(ValueError, match="after"):
        bus.subscribe(tick, lambda p: None, after="a")


def test_after_a_subscription_of_another_event_type_is_refused(bus, tick):
    other = bus.event_type("other")
    foreign = bus.subscribe(other, lambda p: None)
    with pytest.raises(ValueError):
        bus.subscribe(tick, lambda p: None, after=(foreign,))


# -- cycles ------------------------------------------------------------------------------

def _three_in_a_row(bus, tick, rec):
    bus.subscribe(tick, rec.handler("alpha"), name="alpha")
    bus.subscribe(tick, rec.handler("beta"), name="beta", after="alpha")
    bus.subscribe(tick, rec.handler("gamma"), name="gamma", after="beta", priority=9)
    bus.subscribe(tick, rec.handler("free"), name="free", priority=1)


def test_cycle_raises_value_error_naming_the_subscriptions(bus, tick, rec):
    _three_in_a_row(bus, tick, rec)
    with pytest.raises(ValueError) as excinfo:
        bus.subscribe(tick, rec.handler("delta"), name="delta", after="gamma",
                      before="alpha")
    message = str(excinfo.value)
    for name in ("alpha", "beta", "gamma", "delta"):
        assert name in message


def test_cycle_leaves_the_bus_unchanged(bus, tick, rec):
    _three_in_a_row(bus, tick, rec)
    before_subs = bus.subscriptions(tick)
    before_stats = bus.stats()
    bus.emit(tick, 0)
    order_before = rec.labels
    rec.calls.clear()

    with pytest.raises(ValueError):
        bus.subscribe(tick, rec.handler("delta"), name="delta", after="gamma",
                      before="alpha")

    assert bus.subscriptions(tick) == before_subs
    assert bus.stats()["subscriptions"] == before_stats["subscriptions"]
    bus.emit(tick, 0)
    assert rec.labels == order_before == ["free", "alpha", "beta", "gamma"]


def test_name_of_a_refused_subscription_is_free_to_reuse(bus, tick, rec):
    _three_in_a_row(bus, tick, rec)
    with pytest.raises(ValueError):
        bus.subscribe(tick, rec.handler("delta"), name="delta", after="gamma",
                      before="alpha")
    bus.subscribe(tick, rec.handler("delta"), name="delta", after="gamma")
    bus.emit(tick, 0)
    assert rec.labels == ["free", "alpha", "beta", "gamma", "delta"]


def test_two_node_cycle_via_before_and_after(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a"), name="a")
    with pytest.raises(ValueError) as excinfo:
        bus.subscribe(tick, rec.handler("b"), name="b", after="a", before="a")
    assert "a" in str(excinfo.value) and "b" in str(excinfo.value)
    assert bus.emit(tick, 0) == 1


def test_cycle_through_subscription_objects(bus, tick, rec):
    a = bus.subscribe(tick, rec.handler("a"), name="first")
    b = bus.subscribe(tick, rec.handler("b"), name="second", after=(a,))
    with pytest.raises(ValueError) as excinfo:
        bus.subscribe(tick, rec.handler("c"), name="third", after=(b,), before=(a,))
    for name in ("first", "second", "third"):
        assert name in str(excinfo.value)
    assert bus.subscriptions(tick) == (a, b)


def test_after_naming_itself_is_a_cycle(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a"), name="a")
    with pytest.raises(ValueError) as excinfo:
        bus.subscribe(tick, rec.handler("self"), name="selfish", after="selfish")
    assert "selfish" in str(excinfo.value)
    assert bus.stats()["subscriptions"] == 1
    assert bus.emit(tick, 0) == 1
    assert rec.labels == ["a"]


def test_before_naming_itself_is_a_cycle(bus, tick):
    with pytest.raises(ValueError, match="selfish"):
        bus.subscribe(tick, lambda p: None, name="selfish", before="selfish")
    assert bus.subscriptions(tick) == ()


def test_cycle_on_one_type_leaves_other_types_alone(bus, tick, rec):
    other = bus.event_type("other")
    bus.subscribe(other, rec.handler("o"), name="o")
    bus.subscribe(tick, rec.handler("a"), name="a")
    with pytest.raises(ValueError):
        bus.subscribe(tick, rec.handler("b"), name="b", after="a", before="a")
    assert bus.emit(other, 0) == 1
    assert bus.emit(tick, 0) == 1
    assert rec.labels == ["o", "a"]
