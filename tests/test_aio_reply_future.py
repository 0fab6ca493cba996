"""request() and expect() called outside a running loop return a ringbus.aio.ReplyFuture:
a concurrent.futures.Future (result(timeout) blocks the thread) that a coroutine can also
await, so both kinds of their futures are awaitable."""
import asyncio
import concurrent.futures

import ringbus
from ringbus.aio import ReplyFuture


def test_request_outside_a_loop_is_a_thread_future_that_can_be_awaited():
    bus = ringbus.Bus()
    Q = bus.event_type("q")
    bus.subscribe(Q, lambda x: x * 2)
    fut = bus.request(Q, 21, timeout=5)
    assert isinstance(fut, ReplyFuture) and isinstance(fut, concurrent.futures.Future)
    with bus.running():
        assert fut.result(timeout=5) == 42

    later = bus.request(Q, 5, timeout=5)

    async def main():
        with bus.running():
            return await later          # awaited on a loop it was not made on

    assert asyncio.run(main()) == 10


def test_expect_outside_a_loop_can_be_awaited():
    bus = ringbus.Bus()
    T = bus.event_type("t")
    fut = bus.expect(T, lambda v: v > 1, timeout=5)
    assert isinstance(fut, ReplyFuture)
    for v in (1, 2, 3):
        bus.publish(T, v)

    async def main():
        bus.drain()
        return await fut

    assert asyncio.run(main()) == 2
