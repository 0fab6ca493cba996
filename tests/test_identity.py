"""One event identity per process (issue 13, item 4): a name has one id on every bus, and a
bus given an id it never registered refuses it, naming the event."""
import numpy as np
import pytest

import ringbus
from ringbus import identity


def test_a_name_has_the_same_id_on_every_bus():
    a, b = ringbus.Bus(), ringbus.Bus()
    ta = a.event_type("identity.same")
    other = b.event_type("identity.other_first")
    assert b.event_type("identity.same") == ta != other
    assert a.event_name(ta) == b.event_name(ta) == "identity.same"


def test_ids_stay_dense_small_ints():
    bus = ringbus.Bus()
    first = bus.event_type("identity.dense.0")
    ids = [bus.event_type(f"identity.dense.{i}") for i in range(1, 5)]
    assert ids == list(range(first + 1, first + 5))


@pytest.mark.parametrize("call", [
    lambda bus, t: bus.emit(t, 1),
    lambda bus, t: bus.publish(t, 1),
    lambda bus, t: bus.try_publish(t, 1),
    lambda bus, t: bus.publish_many(t, [1, 2]),
    lambda bus, t: bus.subscribe(t, print),
    lambda bus, t: bus.subscriptions(t),
    lambda bus, t: bus.event_name(t),
    lambda bus, t: bus.emit_batch(np.array([t]), np.array([1.0])),
])
def test_an_id_this_bus_never_registered_raises_naming_the_event(call):
    a, b = ringbus.Bus(), ringbus.Bus()
    b.event_type("identity.b_only_later")       # b's table reaches past a's id below
    t = a.event_type("identity.a_only")
    b.event_type("identity.b_only_later2")
    calls = []
    b.subscribe(b.event_type("identity.b_only_later2"), calls.append)
    with pytest.raises(ValueError, match=r"'identity\.a_only'.*not registered on this bus"):
        call(b, t)
    assert calls == [] and b.pending == 0


def test_a_name_registered_elsewhere_is_named_at_subscribe():
    a, b = ringbus.Bus(), ringbus.Bus()
    a.event_type("identity.named_elsewhere")
    with pytest.raises(ValueError, match=r"'identity\.named_elsewhere' \(id \d+\) is not "
                                         r"registered on this bus"):
        b.subscribe("identity.named_elsewhere", print)


def test_an_id_no_bus_allocated_is_refused():
    bus = ringbus.Bus()
    bus.event_type("identity.some")
    with pytest.raises(ValueError, match="no event type in this process has it"):
        bus.emit(identity.MAX_EVENT_TYPES - 1, 1)


def test_event_type_of_an_allocated_id_registers_it_with_its_name():
    a, b = ringbus.Bus(), ringbus.Bus()
    t = a.event_type("identity.by_id")
    assert b.event_type(t) == t
    assert b.event_name(t) == "identity.by_id"
    assert b.event_types["identity.by_id"] == t
    assert b.emit(t, 1) == 0


def test_a_bare_int_is_allocated_process_wide_and_never_given_to_a_name():
    a, b = ringbus.Bus(), ringbus.Bus()
    bare = len(identity.table()) + 5
    assert a.event_type(bare) == bare
    assert a.event_name(bare) is None
    named = a.event_type("identity.after_bare")
    assert named == bare + 1            # names never take the bare id (nor the gap before it)
    assert identity.name_of(bare) is None
    with pytest.raises(ValueError, match=rf"{bare} \(unnamed\) is not registered on this bus"):
        b.emit(bare, 1)
    assert b.event_type(bare) == bare and b.emit(bare, 1) == 0


def test_stats_count_only_this_buss_types():
    a, b = ringbus.Bus(), ringbus.Bus()
    for i in range(3):
        a.event_type(f"identity.count.{i}")
    b.event_type("identity.count.1")
    assert b.stats()["event_types"] == 1
    assert a.stats()["event_types"] == 3
    assert set(b.event_types) == {"identity.count.1"}


def test_the_consumer_counts_an_unregistered_id_and_goes_on():
    a, b = ringbus.Bus(capacity=8), ringbus.Bus(capacity=8)
    foreign = a.event_type("identity.foreign")
    mine = b.event_type("identity.mine")
    seen = []
    b.subscribe(mine, seen.append)
    b.ring.publish(foreign, "bad")          # the bare ring cannot check before it runs
    b.publish(mine, "good")
    b.drain()
    assert seen == ["good"] and b.stats()["handler_errors"] == 1
