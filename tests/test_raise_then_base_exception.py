"""on_error="raise": an Exception collected from one handler is not lost when a later
handler of the same event raises a BaseException (defect 2, synchronous part).

Run against the reference model too, so that the two keep the same rule."""
import pytest
from reference import Bus as ReferenceBus

import ringbus

BUSES = pytest.mark.parametrize("make_bus", [ringbus.Bus, ReferenceBus], ids=["ringbus", "reference"])


@BUSES
@pytest.mark.parametrize("base", [KeyboardInterrupt, SystemExit])
def test_collected_exception_rides_on_the_base_exception(make_bus, base):
    bus = make_bus(on_error="raise")
    t = bus.event_type("raise.then.base")
    first = ValueError("first handler")
    second = LookupError("second handler")

    def fail1(payload):
        raise first

    def fail2(payload):
        raise second

    def interrupt(payload):
        raise base()

    bus.subscribe(t, fail1, priority=3)
    bus.subscribe(t, fail2, priority=2)
    bus.subscribe(t, interrupt, priority=1)
    with pytest.raises(base) as excinfo:
        bus.emit(t, 1)
    exc = excinfo.value
    assert exc.__context__ is first
    assert list(exc.pending_errors) == [first, second]


@BUSES
def test_base_exception_alone_is_untouched(make_bus):
    bus = make_bus(on_error="raise")
    t = bus.event_type("raise.base.alone")

    def interrupt(payload):
        raise KeyboardInterrupt

    bus.subscribe(t, interrupt)
    with pytest.raises(KeyboardInterrupt) as excinfo:
        bus.emit(t, 1)
    assert not hasattr(excinfo.value, "pending_errors")
    assert excinfo.value.__context__ is None
