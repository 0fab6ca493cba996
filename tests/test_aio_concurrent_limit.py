"""concurrent=N holds whoever dispatches on a running loop (issue 13, item 7): an emit from a
task, a drain on the loop's thread and the loop consumer alike; on a thread with no running
loop the handler runs to completion, as documented."""
import asyncio

import ringbus


def _gateway(bus, t, limit):
    state = {"inflight": 0, "peak": 0, "done": []}
    release = asyncio.Event()

    async def send(order):
        state["inflight"] += 1
        state["peak"] = max(state["peak"], state["inflight"])
        await release.wait()
        state["inflight"] -= 1
        state["done"].append(order)

    bus.subscribe(t, send, concurrent=limit)
    return state, release


async def _settle(state, n):
    for _ in range(200):
        if len(state["done"]) == n:
            return
        await asyncio.sleep(0.005)


def test_emit_from_a_task_respects_the_limit():
    bus = ringbus.Bus()
    t = bus.event_type("conc.emit")

    async def main():
        state, release = _gateway(bus, t, 2)
        for i in range(6):
            bus.emit(t, i)
        await asyncio.sleep(0.02)
        assert state["inflight"] == 2           # the other 4 wait for a slot
        release.set()
        await _settle(state, 6)
        return state

    state = asyncio.run(main())
    assert state["peak"] == 2 and sorted(state["done"]) == list(range(6))


def test_drain_on_the_loops_thread_respects_the_limit():
    bus = ringbus.Bus()
    t = bus.event_type("conc.drain")

    async def main():
        state, release = _gateway(bus, t, 3)
        for i in range(7):
            bus.publish(t, i)
        assert bus.drain() == 7                 # returns: it does not wait for slots
        await asyncio.sleep(0.02)
        assert state["inflight"] == 3
        release.set()
        await _settle(state, 7)
        return state

    state = asyncio.run(main())
    assert state["peak"] == 3 and sorted(state["done"]) == list(range(7))


def test_the_loop_consumer_respects_the_limit():
    bus = ringbus.Bus()
    t = bus.event_type("conc.consumer")

    async def main():
        state, release = _gateway(bus, t, 2)
        bus.attach()
        try:
            for i in range(5):
                await bus.publish_async(t, i)
            await asyncio.sleep(0.05)
            assert state["inflight"] == 2
            release.set()
            await _settle(state, 5)
        finally:
            bus.detach()
        return state

    state = asyncio.run(main())
    assert state["peak"] == 2 and sorted(state["done"]) == list(range(5))


def test_without_a_running_loop_each_call_runs_to_completion():
    bus = ringbus.Bus()
    t = bus.event_type("conc.noloop")
    trace = []

    async def send(order):
        trace.append(("start", order))
        await asyncio.sleep(0)
        trace.append(("end", order))

    bus.subscribe(t, send, concurrent=1)
    for i in range(3):
        bus.emit(t, i)
    assert trace == [(k, i) for i in range(3) for k in ("start", "end")]
