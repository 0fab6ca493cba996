"""Errors carry their public names, so tracebacks say ringbus.RingFull rather than a
private module path (issue 9)."""
import traceback

import pytest

import ringbus

ERRORS = [ringbus.RingFull, ringbus.ConsumerGone, ringbus.EmitDepthError,
          ringbus.OrderCycleError, ringbus.NoHandlerError, ringbus.NoReplyError]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_error_names_are_public(cls):
    exc = cls("x", ()) if cls is ringbus.OrderCycleError else cls("x")
    line = traceback.format_exception_only(cls, exc)[-1]
    assert line.startswith(f"ringbus.{cls.__name__}: x"), line
    assert getattr(ringbus, cls.__name__) is cls


def test_a_raised_ring_full_shows_the_public_name():
    bus = ringbus.Bus(capacity=2, overflow="raise")
    T = bus.event_type("t")
    bus.publish(T, 1)
    bus.publish(T, 2)
    with pytest.raises(ringbus.RingFull) as info:
        bus.publish(T, 3)
    assert "ringbus.RingFull: ring full" in "".join(
        traceback.format_exception_only(info.type, info.value))
