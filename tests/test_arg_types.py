"""A wrong argument type is a TypeError naming the argument and what was expected, in
ringbus's words; a wrong value is a ValueError that says the same (issue 9, first part:
the constructors' sizes, drain limits and timeouts)."""
import pytest

import ringbus

try:
    import numpy as np
except ImportError:        # pragma: no cover
    np = None

needs_numpy = pytest.mark.skipif(np is None, reason="numpy is needed for record rings")


def _bus():
    bus = ringbus.Bus()
    return bus, bus.event_type("t")


TYPE_ERRORS = [
    ("capacity", lambda: ringbus.Bus(capacity="8")),
    ("capacity", lambda: ringbus.Bus(capacity=8.0)),
    ("capacity", lambda: ringbus.Bus(capacity=None)),
    ("capacity", lambda: ringbus.RingBuffer("8")),
    ("backlog", lambda: ringbus.Bus(backlog=1.5)),
    ("backlog", lambda: ringbus.RingBuffer(8, backlog="2")),
    ("max_depth", lambda: ringbus.Bus(max_depth="3")),
    ("max_depth", lambda: ringbus.Bus(max_depth=2.0)),
    ("close_timeout", lambda: ringbus.Bus(close_timeout="5")),
    ("timeout", lambda: (lambda b, t: b.publish(t, 1, timeout="1"))(*_bus())),
    ("timeout", lambda: (lambda b, t: b.publish_many(t, [1], timeout=[]))(*_bus())),
    ("timeout", lambda: _bus()[0].stop(timeout="1")),
    ("max_events", lambda: _bus()[0].drain(max_events=1.5)),
    ("max_events", lambda: _bus()[0].drain(max_events="2")),
    # Flags: "no" is truthy, so taking any object would do the opposite of what was meant.
    ("drain", lambda: _bus()[0].stop(drain="no")),
    ("drain", lambda: ringbus.RingBuffer(8).stop(drain=None)),
    ("batch", lambda: _bus()[0].stage("s", lambda t, p: None, batch="yes")),
    ("name", lambda: _bus()[0].stage(5, lambda t, p: None)),
    ("loop", lambda: _bus()[0].attach(loop=5)),
]


@pytest.mark.parametrize("name, call", TYPE_ERRORS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(TYPE_ERRORS)])
def test_wrong_type_is_a_type_error_naming_the_argument(name, call):
    with pytest.raises(TypeError, match=rf"^{name} must be") as info:
        call()
    assert "cannot be interpreted" not in str(info.value)


VALUE_ERRORS = [
    ("capacity", lambda: ringbus.Bus(capacity=2**70)),      # was an OverflowError about ssize_t
    ("capacity", lambda: ringbus.Bus(capacity=6)),
    ("capacity", lambda: ringbus.RingBuffer(1)),
    ("backlog", lambda: ringbus.Bus(backlog=-1)),
    ("max_depth", lambda: ringbus.Bus(max_depth=0)),
    ("max_events", lambda: _bus()[0].drain(max_events=-1)),
    ("timeout", lambda: (lambda b, t: b.publish(t, 1, timeout=-1))(*_bus())),
]


@pytest.mark.parametrize("name, call", VALUE_ERRORS,
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(VALUE_ERRORS)])
def test_wrong_value_is_a_value_error_naming_the_argument(name, call):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        call()


@needs_numpy
@pytest.mark.parametrize("call, name, kind", [
    (lambda: ringbus.RecordRing(np.int64, "8"), "capacity", TypeError),
    (lambda: ringbus.RecordRing(np.int64, 8.0), "capacity", TypeError),
    (lambda: ringbus.RecordRing(np.int64, 2**70), "capacity", ValueError),
    (lambda: ringbus.RecordRing(np.int64, 8).drain(max_records="x"), "max_records", TypeError),
    (lambda: ringbus.RecordRing(np.int64, 8).drain(max_records=-2), "max_records", ValueError),
    (lambda: ringbus.RecordRing(np.int64, 8).publish(1, timeout="1"), "timeout", TypeError),
])
def test_record_ring_arguments(call, name, kind):
    with pytest.raises(kind, match=rf"^{name} must be"):
        call()


def test_ints_of_any_index_type_still_work():
    np_ = pytest.importorskip("numpy")
    bus = ringbus.Bus(capacity=np_.int64(16), backlog=np_.int32(4), max_depth=np_.int16(8))
    assert bus.ring.capacity == 16 and bus.ring.backlog_limit == 4
    assert bus.drain(max_events=np_.int64(3)) == 0


@needs_numpy
def test_record_ring_refuses_a_missing_dtype():
    with pytest.raises(TypeError, match="^dtype must be"):
        ringbus.RecordRing(None, 8)          # numpy.dtype(None) would be float64


def test_unregistered_id_says_what_it_is_and_how_to_register():
    # Ids are process-wide (issue 13): an id another bus registered is named.
    other = ringbus.Bus()
    t = other.event_type("arg_types.elsewhere")
    bus = ringbus.Bus()
    bus.event_type("arg_types.here")
    with pytest.raises(ValueError, match=r"'arg_types\.elsewhere'.*not registered on this "
                                         r"bus") as info:
        bus.emit(t, None)
    assert "bus.event_type('arg_types.elsewhere')" in str(info.value)
    with pytest.raises(ValueError, match="no event type in this process has it") as info:
        bus.emit(1 << 23, None)
    assert "bus.event_type(" in str(info.value)


def test_version_flag():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "ringbus", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"ringbus {ringbus.__version__}"


@needs_numpy
def test_record_ring_stop_drain_flag_is_checked():
    ring = ringbus.RecordRing(np.dtype("<i8"), 8)
    with pytest.raises(TypeError, match=r"^drain must be True or False"):
        ring.stop(drain="no")
