"""The event loop a bus's consumer is attached to is closed without the consumer being
cancelled: detach(), drain(), start() and a new attach() notice it and recover."""
import asyncio
import gc
import sys
import threading
import warnings

import pytest

import ringbus


@pytest.fixture
def strict():
    """Fails on an unraisable exception (an un-awaited coroutine) or a warning."""
    unraisable = []
    old = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
            gc.collect()
    finally:
        sys.unraisablehook = old
    assert not unraisable, [u.exc_value for u in unraisable]


def _abandon_loop_with_consumer(bus, t, payload, handler_blocks=None):
    """Run a loop with the bus attached, dispatch ``payload``, then close the loop with the
    consumer task still pending (as a program that closes its loop by hand does)."""
    loop = asyncio.new_event_loop()

    async def main():
        bus.attach()
        await asyncio.sleep(0.02)
        bus.publish(t, payload)
        for _ in range(50):
            await asyncio.sleep(0.01)
            if handler_blocks is None or handler_blocks.is_set():
                break
    loop.set_exception_handler(lambda _l, ctx: None)
    loop.run_until_complete(main())
    loop.close()


def _new_loop_consumer(bus, t, payload):
    async def main():
        bus.attach()
        try:
            return await asyncio.wait_for(bus.request(t, payload), 5)
        finally:
            bus.detach()
            await asyncio.sleep(0.01)
    return asyncio.run(main())


def test_detach_drain_and_reattach_after_the_loop_closed(strict):
    bus = ringbus.Bus()
    t = bus.event_type("aio.closed.t")
    got = []
    bus.subscribe(t, got.append)
    _abandon_loop_with_consumer(bus, t, 1)
    assert got == [1]
    bus.publish(t, 2)
    bus.detach()                # was: RuntimeError: Event loop is closed
    bus.detach()                # idempotent
    assert bus.drain() == 1     # was: RuntimeError: an event-loop consumer runs
    assert got == [1, 2]
    q = bus.event_type("aio.closed.q")
    bus.subscribe(q, lambda p: p + 1)
    assert _new_loop_consumer(bus, q, 41) == 42


def test_drain_alone_recovers(strict):
    bus = ringbus.Bus()
    t = bus.event_type("aio.closed.drain")
    got = []
    bus.subscribe(t, got.append)
    _abandon_loop_with_consumer(bus, t, 1)
    bus.publish(t, 2)
    assert bus.drain() == 1
    assert got == [1, 2]


def test_start_recovers(strict):
    bus = ringbus.Bus()
    t = bus.event_type("aio.closed.start")
    got = []
    bus.subscribe(t, got.append)
    _abandon_loop_with_consumer(bus, t, 1)
    with bus.running():
        bus.publish(t, 2)
    assert got == [1, 2]


def test_attach_on_a_new_loop_recovers(strict):
    bus = ringbus.Bus()
    q = bus.event_type("aio.closed.attach")
    bus.subscribe(q, lambda p: p * 2)
    _abandon_loop_with_consumer(bus, q, None)
    assert _new_loop_consumer(bus, q, 21) == 42


def test_closed_while_an_async_handler_was_awaited(strict):
    bus = ringbus.Bus()
    t = bus.event_type("aio.closed.awaiting")
    entered = threading.Event()
    done = []

    async def slow(payload):
        entered.set()
        try:
            await asyncio.sleep(3600)
        finally:
            done.append(payload)
    bus.subscribe(t, slow)
    _abandon_loop_with_consumer(bus, t, 1, handler_blocks=entered)
    assert entered.is_set()
    bus.detach()
    assert done == [1]          # the abandoned handler's finally ran
    q = bus.event_type("aio.closed.awaiting.q")
    bus.subscribe(q, lambda p: p)
    assert _new_loop_consumer(bus, q, 7) == 7


def test_attach_to_a_loop_closed_before_it_ran(strict):
    bus = ringbus.Bus()
    q = bus.event_type("aio.closed.never_ran")
    bus.subscribe(q, lambda p: -p)
    loop = asyncio.new_event_loop()
    fut = bus.attach(loop)      # from a thread where that loop does not run
    loop.close()
    assert not fut.done()
    with pytest.raises(RuntimeError, match="closed"):
        bus.attach(loop)
    assert _new_loop_consumer(bus, q, 5) == -5
