"""on_error="raise" on the loop consumer: an Exception from a handler is never lost when a
later async handler of the same event suspends; it is raised once the event's handlers ran,
and the later ones ride along with it."""
import asyncio

import pytest

import ringbus


def _consume_until_error(bus):
    async def main():
        return await asyncio.wait_for(bus.run_async(), 10)
    return asyncio.run(main())


def test_error_before_a_suspending_async_handler_is_raised():
    bus = ringbus.Bus(on_error="raise")
    t = bus.event_type("aio.raise.t")
    ran = []

    def fails(payload):
        ran.append("fails")
        raise ValueError("first handler failed")

    async def suspends(payload):
        await asyncio.sleep(0.01)
        ran.append("suspends")

    bus.subscribe(t, fails, priority=2)
    bus.subscribe(t, suspends, priority=1)
    bus.subscribe(t, lambda p: ran.append("last"))
    bus.publish(t, 1)
    with pytest.raises(ValueError, match="first handler failed"):
        _consume_until_error(bus)
    assert ran == ["fails", "suspends", "last"]     # raised after the event's handlers ran
    assert bus.stats()["handler_errors"] == 1


def test_errors_before_and_after_the_suspension_all_surface():
    bus = ringbus.Bus(on_error="raise")
    t = bus.event_type("aio.raise.both")

    def fails_first(payload):
        raise ValueError("before")

    async def suspends(payload):
        await asyncio.sleep(0.01)

    def fails_later(payload):
        raise KeyError("after")

    bus.subscribe(t, fails_first, priority=3)
    bus.subscribe(t, suspends, priority=2)
    bus.subscribe(t, fails_later, priority=1)
    bus.publish(t, 1)
    with pytest.raises(ValueError, match="before") as info:
        _consume_until_error(bus)
    others = getattr(info.value, "other_errors", [])
    assert [type(e) for e in others] == [KeyError]
