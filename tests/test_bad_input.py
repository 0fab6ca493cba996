"""Bad input: a clear exception at the call, naming the argument; never a crash or a drop."""
import pytest


# -- emit: the hot verb --------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", [-1, -2, -(2 ** 31), -(2 ** 63), -(2 ** 100)])
def test_emit_negative_id_is_a_value_error(bus, tick, bad_id):
    with pytest.raises(ValueError, match="event_type"):
        bus.emit(bad_id, None)


@pytest.mark.parametrize("offset", [1, 2, 1000])
def test_emit_id_beyond_the_table_is_a_value_error(bus, tick, offset):
    with pytest.raises(ValueError, match="event_type"):
        bus.emit(tick + offset, None)


@pytest.mark.parametrize("big", [2 ** 31, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 2 ** 100,
                                 10 ** 40])
def test_emit_big_int_id_is_a_value_error(bus, tick, big):
    with pytest.raises(ValueError, match="event_type"):
        bus.emit(big, None)


def test_emit_on_a_fresh_bus_is_a_value_error(bus):
    with pytest.raises(ValueError, match="event_type"):
        bus.emit(0, None)


@pytest.mark.parametrize("bad_id", [1.0, 0.0, "md.tick", b"md.tick", None, (0,), [0],
                                    object(), 1 + 0j])
def test_emit_non_int_id_is_a_type_error(bus, tick, bad_id):
    calls = []
    bus.subscribe(tick, calls.append)
    with pytest.raises(TypeError, match="event_type"):
        bus.emit(bad_id, None)
    assert calls == []


@pytest.mark.parametrize("flag", [True, False])
def test_emit_bool_id_is_a_type_error(bus, flag):
    # bools are not event ids (event_type() refuses them too), even though 0/1 are in the
    # table: emit(True) must not silently dispatch event 1.
    calls = []
    for name in ("zero", "one"):
        bus.subscribe(bus.event_type(name), calls.append)
    with pytest.raises(TypeError, match="event_type"):
        bus.emit(flag, None)
    assert calls == []


def test_emit_numpy_bad_ids(bus, tick):
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match="event_type"):
        bus.emit(np.int64(-1), None)
    with pytest.raises(ValueError, match="event_type"):
        bus.emit(np.int64(tick + 1), None)
    with pytest.raises(ValueError, match="event_type"):
        bus.emit(np.uint64(2 ** 64 - 1), None)
    with pytest.raises(TypeError, match="event_type"):
        bus.emit(np.float64(tick), None)


def test_failed_emit_changes_nothing(bus, tick):
    calls = []
    bus.subscribe(tick, calls.append)
    before = bus.stats()
    for bad in (-1, tick + 1, "md.tick", 1.5, None):
        with pytest.raises((TypeError, ValueError)):
            bus.emit(bad, None)
    assert calls == []
    assert bus.stats() == before
    assert bus.emit(tick, 1) == 1


# -- event_type / event_name ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [-1, -(2 ** 100)])
def test_event_type_negative_id_is_a_value_error(bus, bad):
    with pytest.raises(ValueError):
        bus.event_type(bad)


@pytest.mark.parametrize("bad", [1.5, None, b"md.tick", object(), True])
def test_event_type_of_wrong_type_is_a_type_error(bus, bad):
    with pytest.raises(TypeError):
        bus.event_type(bad)


def test_event_type_absurdly_big_id_is_a_value_error(bus):
    with pytest.raises(ValueError):
        bus.event_type(2 ** 100)


def test_event_name_of_an_unknown_id_is_a_value_error(bus, tick):
    with pytest.raises(ValueError):
        bus.event_name(tick + 1)
    with pytest.raises(ValueError):
        bus.event_name(-1)


# -- subscribe -----------------------------------------------------------------------------

@pytest.mark.parametrize("handler", [None, 42, "print", object()])
def test_non_callable_handler_is_a_type_error_naming_handler(bus, tick, handler):
    with pytest.raises(TypeError, match="handler"):
        bus.subscribe(tick, handler)
    assert bus.subscriptions(tick) == ()
    assert bus.stats()["subscriptions"] == 0


def test_on_decorator_with_non_callable_is_a_type_error(bus, tick):
    with pytest.raises(TypeError, match="handler"):
        bus.on(tick)(None)


@pytest.mark.parametrize("bad_id", [-1, 99, 2 ** 64])
def test_subscribe_to_an_id_outside_the_table_is_a_value_error(bus, tick, bad_id):
    with pytest.raises(ValueError, match="event_type"):
        bus.subscribe(bad_id, lambda p: None)


@pytest.mark.parametrize("bad_id", [1.5, None, object()])
def test_subscribe_with_a_non_int_id_is_a_type_error(bus, tick, bad_id):
    with pytest.raises(TypeError):
        bus.subscribe(bad_id, lambda p: None)


def test_unknown_name_in_after_is_a_value_error_naming_after(bus, tick):
    bus.subscribe(tick, lambda p: None, name="known")
    with pytest.raises(ValueError, match="after") as excinfo:
        bus.subscribe(tick, lambda p: None, after=("known", "unknown"))
    assert "unknown" in str(excinfo.value)
    assert bus.stats()["subscriptions"] == 1


def test_after_naming_an_unsubscribed_subscription_is_a_value_error(bus, tick):
    bus.subscribe(tick, lambda p: None, name="gone").unsubscribe()
    with pytest.raises(ValueError, match="after"):
        bus.subscribe(tick, lambda p: None, after="gone")


def test_bad_subscribe_leaves_the_bus_unchanged(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a"), name="a")
    with pytest.raises(ValueError):
        bus.subscribe(tick, rec.handler("b"), name="b", after="nope")
    assert bus.emit(tick, 0) == 1
    assert rec.labels == ["a"]
    bus.subscribe(tick, rec.handler("b"), name="b", after="a")   # name b is still free
    rec.calls.clear()
    assert bus.emit(tick, 0) == 2
    assert rec.labels == ["a", "b"]


# -- Bus options ---------------------------------------------------------------------------

def test_unknown_on_error_string_is_a_value_error(make_bus):
    with pytest.raises(ValueError, match="on_error"):
        make_bus(on_error="ignore")


def test_non_callable_on_error_is_rejected(make_bus):
    with pytest.raises((TypeError, ValueError), match="on_error"):
        make_bus(on_error=42)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_max_depth_is_a_value_error(make_bus, bad):
    with pytest.raises(ValueError, match="max_depth"):
        make_bus(max_depth=bad)
