"""Event types: names -> dense int ids; ints accepted as ids; emit on an empty type."""
import enum
import uuid

import pytest

import ringbus


def test_bus_constructs_with_defaults_only():
    bus = ringbus.Bus()
    assert bus.stats()["emitted"] == 0


def test_bus_options_are_keyword_only():
    with pytest.raises(TypeError):
        ringbus.Bus("log")


def test_event_type_returns_an_int(bus):
    t = bus.event_type("md.tick")
    assert type(t) is int


def test_same_name_gives_same_id(bus):
    assert bus.event_type("md.tick") == bus.event_type("md.tick")


def test_distinct_names_get_distinct_dense_ids(bus):
    # Names no other test registered (ids are process-wide: "t3" may have one already).
    fresh = f"dense.{uuid.uuid4().hex}"
    ids = [bus.event_type(f"{fresh}.t{i}") for i in range(5)]
    assert len(set(ids)) == 5
    assert sorted(ids) == list(range(min(ids), min(ids) + 5))
    # Ids are process-wide (issue 13): a fresh bus does not start at 0.
    assert ringbus.Bus().event_type(f"{fresh}.t3") == ids[3]


def test_event_type_accepts_its_own_id(bus, tick):
    assert bus.event_type(tick) == tick


def test_event_name_of_a_named_type(bus, tick):
    assert bus.event_name(tick) == "md.tick"
    assert bus.event_name(bus.event_type(tick)) == "md.tick"


def test_registering_an_int_id_puts_it_in_the_table(bus):
    assert bus.event_type(7) == 7
    assert bus.emit(7, None) == 0
    calls = []
    bus.subscribe(7, calls.append)
    assert bus.emit(7, "x") == 1
    assert calls == ["x"]


def test_names_registered_after_an_int_id_still_map_one_to_one(bus):
    bus.event_type(3)
    a = bus.event_type("a")
    b = bus.event_type("b")
    assert a != b
    assert (bus.event_name(a), bus.event_name(b)) == ("a", "b")
    assert bus.event_type("a") == a


def test_emit_on_a_registered_type_without_subscribers_returns_zero(bus, tick):
    assert bus.emit(tick, "payload") == 0


def test_emit_payload_defaults_to_none(bus, tick):
    calls = []
    bus.subscribe(tick, calls.append)
    assert bus.emit(tick) == 1
    assert calls == [None]


def test_int_enum_member_is_accepted_as_an_id(bus):
    Ev = enum.IntEnum("Ev", {"TICK": bus.event_type("md.tick")})
    assert bus.event_type("md.tick") == Ev.TICK
    calls = []
    bus.subscribe(Ev.TICK, calls.append)
    assert bus.emit(Ev.TICK, 1) == 1
    assert calls == [1]


def test_numpy_integer_ids_are_accepted_on_emit(bus, tick):
    np = pytest.importorskip("numpy")
    calls = []
    bus.subscribe(tick, calls.append)
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64,
                  np.intp):
        assert bus.emit(dtype(tick), dtype.__name__) == 1
    assert len(calls) == 8


def test_numpy_integer_ids_are_accepted_on_event_type_and_subscribe(bus, tick):
    np = pytest.importorskip("numpy")
    assert bus.event_type(np.int64(tick)) == tick
    calls = []
    bus.subscribe(np.int32(tick), calls.append)
    assert bus.emit(tick, 1) == 1


def test_stats_counts_event_types(bus):
    bus.event_type("a")
    bus.event_type("b")
    bus.event_type("a")
    assert bus.stats()["event_types"] == 2
