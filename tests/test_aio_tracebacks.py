"""The loop consumer's internal suspension signal (an async handler that has to wait) never
shows in users' tracebacks: not chained as the ``__context__`` of a handler's exception,
whichever way that exception reaches the user (run_async under on_error="raise", an
on_error callable, the log, a request's future)."""
import asyncio
import logging
import traceback

import pytest

import ringbus


def _chain(exc):
    """Every exception linked to exc, exc included."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _assert_clean(exc):
    assert [type(e).__name__ for e in _chain(exc)] == [type(exc).__name__]
    text = "".join(traceback.format_exception(exc))
    assert "Suspen" not in text, text


async def _waits_then_raises(x):
    await asyncio.sleep(0)
    raise ValueError(f"boom {x}")


def _sync_raises(x):
    raise KeyError(f"after {x}")


async def _consume_until_idle(bus, n):
    task = asyncio.ensure_future(bus.run_async())
    for _ in range(200):
        await asyncio.sleep(0.005)
        if bus.stats()["dispatched"] >= n or task.done():
            break
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


@pytest.mark.parametrize("then_sync", [False, True], ids=["async", "async_then_sync"])
def test_run_async_raise_policy(then_sync):
    bus = ringbus.Bus(on_error="raise")
    T = bus.event_type("t")
    bus.subscribe(T, _waits_then_raises)
    if then_sync:
        bus.subscribe(T, _sync_raises)      # runs after the suspended handler resumes

    async def main():
        bus.publish(T, 1)
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(bus.run_async(), 5)
        return info.value

    exc = asyncio.run(main())
    for e in getattr(exc, "exceptions", [exc]):
        _assert_clean(e)


def test_error_callable_and_log():
    got = []
    bus = ringbus.Bus(on_error=lambda t, payload, sub, exc: got.append(exc))
    T = bus.event_type("t")
    bus.subscribe(T, _waits_then_raises)
    bus.subscribe(T, _sync_raises)
    bus.publish(T, 1)
    bus.publish(T, 2)
    asyncio.run(_consume_until_idle(bus, 2))
    assert len(got) == 4
    for exc in got:
        _assert_clean(exc)


def test_logged_tracebacks(caplog):
    bus = ringbus.Bus()                        # on_error="log"
    T = bus.event_type("t")
    bus.subscribe(T, _waits_then_raises)
    bus.subscribe(T, _sync_raises)
    bus.publish(T, 1)
    with caplog.at_level(logging.ERROR, logger="ringbus"):
        asyncio.run(_consume_until_idle(bus, 1))
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 2
    for r in records:
        _assert_clean(r.exc_info[1])


def test_request_future_exception():
    bus = ringbus.Bus()
    Q = bus.event_type("q")
    bus.subscribe(Q, _waits_then_raises)

    async def main():
        consumer = asyncio.ensure_future(bus.run_async())
        try:
            with pytest.raises(ValueError) as info:
                await bus.request(Q, 7, timeout=5)
            return info.value
        finally:
            consumer.cancel()
            try:
                await consumer
            except asyncio.CancelledError:
                pass

    _assert_clean(asyncio.run(main()))
