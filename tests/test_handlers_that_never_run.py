"""Handlers that could never run are refused at subscribe with a TypeError (issue 9):
generator and async generator functions (their call only makes a generator), a coroutine or
generator function given to RecordRing.subscribe (the view is gone before it could run),
and `@bus.on` used without the event type (it would replace the function)."""
import pytest

import ringbus

try:
    import numpy as np
except ImportError:        # pragma: no cover
    np = None


def gen(payload):
    yield payload


async def agen(payload):
    yield payload


async def coro(payload):
    return payload


@pytest.mark.parametrize("handler", [gen, agen], ids=["generator", "async-generator"])
def test_generator_functions_are_refused(handler):
    bus = ringbus.Bus()
    T = bus.event_type("t")
    with pytest.raises(TypeError, match="generator"):
        bus.subscribe(T, handler)
    with pytest.raises(TypeError, match="generator"):
        bus.on(T)(handler)
    assert bus.subscriptions(T) == ()


def test_generator_method_is_refused():
    class Handler:
        def on(self, payload):
            yield payload
    bus = ringbus.Bus()
    T = bus.event_type("t")
    h = Handler()
    with pytest.raises(TypeError, match="generator"):
        bus.subscribe(T, h.on)


def test_on_without_the_event_type_is_refused_at_decoration():
    bus = ringbus.Bus()
    with pytest.raises(TypeError, match=r"@bus.on\(TYPE\)"):
        @bus.on
        def handler(payload):
            pass


def test_plain_and_async_handlers_still_subscribe():
    bus = ringbus.Bus()
    T = bus.event_type("t")
    bus.subscribe(T, lambda p: None)
    bus.subscribe(T, coro)
    assert len(bus.subscriptions(T)) == 2


@pytest.mark.skipif(np is None, reason="numpy is needed for record rings")
@pytest.mark.parametrize("handler", [gen, agen, coro], ids=["generator", "async-generator",
                                                            "coroutine"])
def test_record_ring_refuses_handlers_that_never_run(handler):
    ring = ringbus.RecordRing(np.dtype("<i8"), 8)
    with pytest.raises(TypeError, match="plain function"):
        ring.subscribe(handler)
    assert ring.handlers == ()
