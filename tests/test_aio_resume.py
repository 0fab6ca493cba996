"""The loop consumer finishes a suspended event through the compiled table
(DispatchTable._resume): the handlers after an awaited one are called exactly as the
table's dispatch calls them, on the snapshot the event's dispatch began with."""
import asyncio
import gc
import weakref

import pytest

import ringbus


def _consume(bus, done):
    async def main():
        bus.attach()
        try:
            for _ in range(500):
                if done():
                    break
                await asyncio.sleep(0.01)
        finally:
            bus.detach()
            await asyncio.sleep(0)
    asyncio.run(asyncio.wait_for(main(), 10))


async def _waits(payload):
    await asyncio.sleep(0.01)


def test_handlers_after_an_await_see_the_event_and_its_sequence():
    bus = ringbus.Bus()
    t = bus.event_type("resume.event")
    seen = []
    bus.subscribe(t, _waits, priority=1)
    bus.subscribe(t, lambda p: seen.append((p, ringbus.current_event())))
    bus.publish(t, "a")
    bus.publish(t, "b")
    _consume(bus, lambda: len(seen) == 2)
    (pa, ea), (pb, eb) = seen
    assert (pa, pb) == ("a", "b")
    assert ea is not None and eb is not None, "called outside the event's dispatch"
    assert ea.type == eb.type == t and eb.sequence == ea.sequence + 1


def test_unsubscribed_while_suspended_still_runs_for_that_event_then_is_let_go():
    # The snapshot rule, as for a sync dispatch: unsubscribing takes effect from the next
    # event, also when the event's dispatch is suspended on an earlier async handler.
    bus = ringbus.Bus()
    t = bus.event_type("resume.unsubscribe")
    calls = []
    subs = {}

    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)

    async def waits(payload):
        calls.append(("waits", payload))
        await asyncio.sleep(0.01)
        if payload == 1:
            subs.pop("later").unsubscribe()

    bus.subscribe(t, waits, priority=1)
    subs["later"] = bus.subscribe(t, lambda p, big=big: calls.append(("later", p)))
    del big
    bus.publish(t, 1)
    bus.publish(t, 2)
    _consume(bus, lambda: ("waits", 2) in calls)
    assert calls == [("waits", 1), ("later", 1), ("waits", 2)]
    gc.collect()
    assert ref() is None    # the suspended event's snapshot went with it


def test_weak_kinds_after_an_await_and_a_second_suspension():
    bus = ringbus.Bus(on_error="raise")
    t = bus.event_type("resume.kinds")
    calls = []

    class Owner:
        def method(self, payload):
            calls.append(("method", payload))
            assert ringbus.current_event().payload == payload   # inside the event's dispatch

    def weak_fn(payload):
        calls.append(("weak", payload))

    async def first(payload):
        await asyncio.sleep(0.01)
        calls.append(("first", payload))

    async def second(payload):
        await asyncio.sleep(0.01)
        calls.append(("second", payload))
        raise KeyError("second")

    def fails(payload):
        raise ValueError("fails")

    owner = Owner()
    bus.subscribe(t, first, priority=5)
    bus.subscribe(t, owner.method, priority=4)          # a weakly held bound method
    bus.subscribe(t, weak_fn, weak=True, priority=3)    # a weakly held function
    bus.subscribe(t, fails, priority=2)
    bus.subscribe(t, second, priority=1)                # suspends again
    bus.subscribe(t, lambda p: calls.append(("last", p)))
    bus.publish(t, 1)
    before = bus.stats()["handler_calls"]

    async def main():
        await asyncio.wait_for(bus.run_async(), 10)
    with pytest.raises(ValueError, match="fails") as info:
        asyncio.run(main())
    assert [type(e) for e in getattr(info.value, "other_errors", [])] == [KeyError]
    assert calls == [("first", 1), ("method", 1), ("weak", 1), ("second", 1), ("last", 1)]
    assert bus.stats()["handler_calls"] - before == 6
    assert bus.stats()["handler_errors"] == 2
