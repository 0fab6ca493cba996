"""The snapshot rule on the loop consumer: a handler subscribed while an event's dispatch is
in flight (an earlier async handler suspended) runs from the next event on, not for it."""
import asyncio

import ringbus


def _run(main):
    return asyncio.run(asyncio.wait_for(main(), 10))


def test_subscribed_while_an_async_handler_is_suspended_waits_for_the_next_event():
    bus = ringbus.Bus()
    t = bus.event_type("aio.snapshot.t")
    calls = []

    async def first(payload):
        calls.append(("first", payload))
        if payload == 1:
            # Suspended: meanwhile a new handler is subscribed to this type.
            await asyncio.sleep(0.01)
            bus.subscribe(t, lambda p: calls.append(("late", p)))
            await asyncio.sleep(0.01)

    bus.subscribe(t, first)
    bus.subscribe(t, lambda p: calls.append(("second", p)))

    async def main():
        bus.attach()
        try:
            bus.publish(t, 1)
            bus.publish(t, 2)
            for _ in range(200):
                if ("second", 2) in calls and len(calls) >= 5:
                    break
                await asyncio.sleep(0.01)
        finally:
            bus.detach()
            await asyncio.sleep(0)
    _run(main)
    assert calls == [("first", 1), ("second", 1),
                     ("first", 2), ("second", 2), ("late", 2)]


def test_subscribed_by_an_earlier_sync_handler_of_the_same_event():
    bus = ringbus.Bus()
    t = bus.event_type("aio.snapshot.sync_first")
    calls = []

    def subscriber(payload):
        calls.append(("subscriber", payload))
        if payload == 1:
            bus.subscribe(t, lambda p: calls.append(("late", p)))

    async def waits(payload):
        calls.append(("waits", payload))
        await asyncio.sleep(0.01)

    bus.subscribe(t, subscriber, priority=2)
    bus.subscribe(t, waits, priority=1)
    bus.subscribe(t, lambda p: calls.append(("last", p)))

    async def main():
        bus.attach()
        try:
            bus.publish(t, 1)
            bus.publish(t, 2)
            for _ in range(200):
                if ("late", 2) in calls:
                    break
                await asyncio.sleep(0.01)
        finally:
            bus.detach()
            await asyncio.sleep(0)
    _run(main)
    assert calls == [("subscriber", 1), ("waits", 1), ("last", 1),
                     ("subscriber", 2), ("waits", 2), ("last", 2), ("late", 2)]
