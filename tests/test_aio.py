"""asyncio: async handlers, the loop consumer, publish_async, request/response, once/expect.

Every test runs its coroutine through ``run()``, a strict ``asyncio.run``: warnings are
errors, and any report to the loop's exception handler ("Task exception was never
retrieved", "Task was destroyed but it is pending") or unraisable exception (an un-awaited
coroutine) fails the test. Consumer tests run on the default loop and on uvloop if installed.
"""
import asyncio
import gc
import sys
import threading
import time
import warnings
import weakref

import pytest

import ringbus
from ringbus import Bus, NoHandlerError, NoReplyError, RingFull, current_request

try:
    import uvloop
except ImportError:          # pragma: no cover - the uvloop rows skip
    uvloop = None

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def loop_kind(request):
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    return request.param


def run(main, loop_kind="asyncio"):
    """asyncio.run(main) on a fresh loop of ``loop_kind``; fails on any warning, loop error
    report or unraisable exception, including those that only show at garbage collection."""
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    reports, unraisable = [], []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loop = factory()
            loop.set_exception_handler(lambda _loop, ctx: reports.append(ctx))
            try:
                asyncio.set_event_loop(loop)
                result = loop.run_until_complete(main)
            finally:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                asyncio.set_event_loop(None)
                loop.close()
            gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert reports == [], f"the loop reported: {reports}"
    assert unraisable == [], f"unraisable: {[(u.exc_value, u.object) for u in unraisable]}"
    return result


async def until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


async def stop(task):
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


class Errors:
    """An on_error callback that records (event type, payload, handler name, exception)."""

    def __init__(self):
        self.seen = []

    def __call__(self, t, payload, sub, exc):
        self.seen.append((t, payload, sub.name, exc))


# -- async handlers on the loop consumer ---------------------------------------------------------

def test_mixed_handlers_keep_order_across_awaits(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    log = []

    def first(x):
        log.append(("first", x))

    async def slow(x):
        log.append(("slow-start", x))
        await asyncio.sleep(0.001)
        log.append(("slow-end", x))

    async def quick(x):
        log.append(("quick", x))

    def last(x):
        log.append(("last", x))

    a = bus.subscribe(T, first, name="first")
    bus.subscribe(T, last, after="first", priority=-5)
    bus.subscribe(T, quick, priority=1, after=a)
    bus.subscribe(T, slow, priority=2, after=a)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        for i in range(3):
            await bus.publish_async(T, i)
        await until(lambda: len(log) == 15)
        await stop(consumer)

    run(main(), loop_kind)
    expected = []
    for i in range(3):
        expected += [("first", i), ("slow-start", i), ("slow-end", i), ("quick", i),
                     ("last", i)]
    assert log == expected
    assert bus.stats()["handler_calls"] == 12


def test_an_async_handler_that_does_not_suspend_costs_no_task(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    seen = []
    tasks = []

    async def handler(x):
        seen.append(x)
        tasks.append(len(asyncio.all_tasks()))

    bus.subscribe(T, handler)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        for i in range(100):
            bus.publish(T, i)
        await until(lambda: len(seen) == 100)
        await stop(consumer)

    run(main(), loop_kind)
    assert seen == list(range(100))
    assert set(tasks) == {2}      # main and the consumer: no task per event


def test_concurrent_handlers_are_bounded_and_all_complete(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    state = {"now": 0, "max": 0, "done": 0}
    after = []

    async def work(x):
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.002)
        state["now"] -= 1
        state["done"] += 1

    bus.subscribe(T, work, concurrent=3)
    bus.subscribe(T, after.append)        # does not wait for the tasks

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        for i in range(20):
            await bus.publish_async(T, i)
        await until(lambda: state["done"] == 20)
        await stop(consumer)

    run(main(), loop_kind)
    assert state["max"] == 3
    assert after == list(range(20))


def test_concurrent_argument_is_checked():
    bus = Bus()
    T = bus.event_type("t")

    async def h(x):
        pass

    with pytest.raises(ValueError, match="async handlers"):
        bus.subscribe(T, print, concurrent=True)
    with pytest.raises(ValueError, match="concurrent"):
        bus.subscribe(T, h, concurrent=0)
    with pytest.raises(TypeError):
        bus.subscribe_batch(T, h)
    sub = bus.subscribe(T, h, concurrent=True)
    assert sub.is_async and sub.concurrent == 64 and sub.handler is h


# -- errors --------------------------------------------------------------------------------------

def test_async_handler_errors_go_to_the_policy_never_unretrieved(loop_kind):
    errors = Errors()
    bus = Bus(on_error=errors)
    T = bus.event_type("t")
    ran = []

    async def fails_at_once(x):
        raise ValueError(f"now {x}")

    async def fails_later(x):
        await asyncio.sleep(0)
        raise KeyError(f"later {x}")

    async def fails_in_task(x):
        await asyncio.sleep(0.001)
        raise LookupError(f"task {x}")

    bus.subscribe(T, fails_at_once, name="at_once")
    bus.subscribe(T, fails_later, name="later")
    bus.subscribe(T, fails_in_task, name="in_task", concurrent=True)
    bus.subscribe(T, ran.append, name="after")

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        await bus.publish_async(T, 1)
        await bus.publish_async(T, 2)
        await until(lambda: len(errors.seen) == 6)
        await stop(consumer)

    run(main(), loop_kind)
    assert ran == [1, 2]
    by_name = sorted((name, payload, type(exc).__name__)
                     for _, payload, name, exc in errors.seen)
    assert by_name == [("at_once", 1, "ValueError"), ("at_once", 2, "ValueError"),
                       ("in_task", 1, "LookupError"), ("in_task", 2, "LookupError"),
                       ("later", 1, "KeyError"), ("later", 2, "KeyError")]
    assert bus.stats()["handler_errors"] == 6


def test_async_handler_error_logged_by_default(caplog, loop_kind):
    bus = Bus()
    T = bus.event_type("t")

    async def boom(x):
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    bus.subscribe(T, boom)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        bus.publish(T, 7)
        await until(lambda: bus.stats()["handler_errors"] == 1)
        await stop(consumer)

    with caplog.at_level("ERROR", logger="ringbus"):
        run(main(), loop_kind)
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert not [r for r in caplog.records if r.name == "asyncio"]


def test_raise_policy_raises_from_run_async_after_the_event(loop_kind):
    bus = Bus(on_error="raise")
    T = bus.event_type("t")
    ran = []

    async def boom(x):
        await asyncio.sleep(0)
        raise ValueError(x)

    bus.subscribe(T, boom)
    bus.subscribe(T, ran.append)

    async def main():
        for i in range(3):
            bus.publish(T, i)
        with pytest.raises(ValueError, match="0"):
            await bus.run_async()

    run(main(), loop_kind)
    assert ran == [0]               # the event's other handlers ran; the rest stay queued
    assert bus.pending == 2


# -- outside the loop consumer -------------------------------------------------------------------

def test_emit_without_a_running_loop_runs_async_handlers_to_completion():
    bus = Bus()
    T = bus.event_type("t")
    log = []

    async def slow(x):
        await asyncio.sleep(0.001)
        log.append(("slow", x))

    bus.subscribe(T, slow)
    bus.subscribe(T, lambda x: log.append(("sync", x)))
    assert bus.emit(T, 1) == 2
    bus.publish(T, 2)
    bus.drain()
    assert log == [("slow", 1), ("sync", 1), ("slow", 2), ("sync", 2)]


def test_async_handlers_on_consumer_threads_run_to_completion():
    bus = Bus()
    T = bus.event_type("t")
    log = []

    async def slow(x):
        await asyncio.sleep(0)
        log.append(("slow", x, threading.current_thread().name))

    bus.subscribe(T, slow)
    bus.subscribe(T, lambda x: log.append(("sync", x)))
    with bus.running():
        for i in range(5):
            bus.publish(T, i)
    assert [entry[:2] for entry in log] == [
        (kind, i) for i in range(5) for kind in ("slow", "sync")]
    assert all(e[2] == "ringbus-dispatch" for e in log if e[0] == "slow")


def test_emit_from_a_coroutine_continues_a_suspended_handler_as_a_task():
    errors = Errors()
    bus = Bus(on_error=errors)
    T = bus.event_type("t")
    log = []

    async def slow(x):
        log.append(("start", x))
        await asyncio.sleep(0.001)
        log.append(("end", x))
        if x == 2:
            raise ValueError("late")

    bus.subscribe(T, slow, name="slow")
    bus.subscribe(T, lambda x: log.append(("sync", x)))

    async def main():
        bus.emit(T, 1)
        bus.emit(T, 2)
        assert log == [("start", 1), ("sync", 1), ("start", 2), ("sync", 2)]
        await until(lambda: len(errors.seen) == 1)

    run(main())
    assert ("end", 1) in log and ("end", 2) in log
    assert errors.seen[0][1:3] == (2, "slow")


# -- the loop consumer and threads ---------------------------------------------------------------

def test_thread_producers_into_the_loop_consumer_lose_nothing(loop_kind):
    bus = Bus(capacity=256)           # small: producers block on a full ring, and wake
    T = bus.event_type("t")
    producers, per = 4, 5000
    got = []
    bus.subscribe(T, got.append)

    def produce(p):
        for i in range(per):
            bus.publish(T, (p, i))

    async def main():
        consumer = asyncio.create_task(bus.run_async(batch=64))
        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        for th in threads:
            th.start()
        await until(lambda: len(got) == producers * per, timeout=20)
        for th in threads:
            th.join()
        await stop(consumer)

    run(main(), loop_kind)
    assert len(got) == producers * per
    for p in range(producers):
        assert [i for q, i in got if q == p] == list(range(per))      # FIFO per producer


def test_publish_many_and_publish_batch_wake_the_loop_consumer(loop_kind):
    np = pytest.importorskip("numpy")
    bus = Bus()
    T = bus.event_type("t")
    got = []
    bus.subscribe(T, got.append)

    def produce():
        bus.publish_many(T, range(100))
        bus.publish_batch(np.full(3, T), np.arange(100, 103))

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        await asyncio.sleep(0.01)
        th = threading.Thread(target=produce)
        th.start()
        await until(lambda: len(got) == 103)
        th.join()
        await stop(consumer)

    run(main(), loop_kind)
    assert [int(x) for x in got] == list(range(103))


def test_an_idle_consumer_is_woken_once_not_per_event(loop_kind, monkeypatch):
    bus = Bus()
    T = bus.event_type("t")
    got = []
    bus.subscribe(T, got.append)
    wakes = []
    readable = ringbus.aio.AioState.readable

    def counting(self, fd):
        wakes.append(fd)
        readable(self, fd)

    monkeypatch.setattr(ringbus.aio.AioState, "readable", counting)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        await asyncio.sleep(0.01)            # parked, signal armed
        for i in range(1000):                # no await between: one burst
            bus.publish(T, i)
        await until(lambda: len(got) == 1000)
        await stop(consumer)

    run(main(), loop_kind)
    assert got == list(range(1000))
    assert len(wakes) == 1


def test_consumer_yields_to_other_tasks_between_batches(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    marks = []
    bus.subscribe(T, lambda x: marks.append("e"))

    async def ticker():
        while True:
            marks.append("tick")
            await asyncio.sleep(0)

    async def main():
        for i in range(1000):
            bus.publish(T, i)
        tick = asyncio.create_task(ticker())
        consumer = asyncio.create_task(bus.run_async(batch=100))
        await until(lambda: marks.count("e") == 1000)
        await stop(consumer)
        await stop(tick)

    run(main(), loop_kind)
    first = marks.index("e")
    events_between_ticks = max(len(run_) for run_ in "".join(
        "e" if m == "e" else "|" for m in marks[first:]).split("|"))
    assert events_between_ticks <= 100


def test_only_one_consumer_at_a_time():
    bus = Bus()
    T = bus.event_type("t")
    bus.subscribe(T, print)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already"):
            await bus.run_async()
        with pytest.raises(RuntimeError):
            bus.drain()
        with pytest.raises(RuntimeError):
            bus.start()
        await stop(consumer)
        assert bus.drain() == 0      # detached: drain works again
        with bus.running():
            with pytest.raises(RuntimeError):
                await bus.run_async()

    run(main())


def test_blocking_publish_on_the_consumer_loop_thread_fails_instead_of_hanging():
    bus = Bus(capacity=4)
    T = bus.event_type("t")
    bus.subscribe(T, lambda x: None)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        await asyncio.sleep(0)
        for i in range(4):
            bus.publish(T, i)
        with pytest.raises(RingFull, match="event loop"):
            bus.publish(T, 99)
        await until(lambda: bus.pending == 0)
        await stop(consumer)

    run(main())


def test_attach_and_detach(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    got = []
    bus.subscribe(T, got.append)

    async def main():
        task = bus.attach()
        with pytest.raises(RuntimeError):
            bus.attach()
        bus.publish(T, 1)
        await until(lambda: got == [1])
        bus.detach()
        with pytest.raises(asyncio.CancelledError):
            await task
        bus.publish(T, 2)
        await asyncio.sleep(0.01)
        assert got == [1] and bus.pending == 1

    run(main(), loop_kind)


def test_attach_from_another_thread():
    bus = Bus()
    T = bus.event_type("t")
    got = []
    bus.subscribe(T, got.append)
    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever)
    th.start()
    try:
        fut = bus.attach(loop)
        for i in range(100):
            bus.publish(T, i)
        deadline = time.monotonic() + 5
        while len(got) < 100 and time.monotonic() < deadline:
            time.sleep(0.001)
        bus.detach()
        with pytest.raises(Exception):      # CancelledError through the concurrent future
            fut.result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        th.join()
        loop.close()
    assert got == list(range(100))


# -- publish_async -------------------------------------------------------------------------------

def test_publish_async_waits_for_room_without_blocking_the_loop(loop_kind):
    bus = Bus(capacity=8)                      # overflow="block": wait as long as it takes
    T = bus.event_type("t")
    got = []
    ticks = []

    async def slow(x):
        await asyncio.sleep(0.0005)
        got.append(x)

    bus.subscribe(T, slow)

    async def ticker():
        while True:
            ticks.append(len(got))
            await asyncio.sleep(0.001)

    async def main():
        tick = asyncio.create_task(ticker())
        consumer = asyncio.create_task(bus.run_async())
        for i in range(200):
            assert await bus.publish_async(T, i) is True
        await until(lambda: len(got) == 200)
        await stop(consumer)
        await stop(tick)

    run(main(), loop_kind)
    assert got == list(range(200))
    assert any(0 < t < 200 for t in ticks)     # other tasks ran while the producer waited


def test_publish_async_timeout_and_deadlock_check():
    bus = Bus(capacity=2)
    T = bus.event_type("t")
    errors = Errors()
    other = Bus(capacity=2, on_error=errors, backlog=0)     # no follow-up backlog
    U = other.event_type("u")

    async def republish(x):
        await asyncio.sleep(0)
        for i in range(3):
            await other.publish_async(U, i)     # the ring it is consumed from: full

    other.subscribe(U, republish, name="republish")

    async def main():
        await bus.publish_async(T, 1)
        await bus.publish_async(T, 2)
        t0 = time.monotonic()
        with pytest.raises(RingFull, match="timeout"):
            await bus.publish_async(T, 3, timeout=0.05)
        assert time.monotonic() - t0 >= 0.04
        with pytest.raises(ValueError):
            await bus.publish_async(T, 3, timeout=-1)
        other.publish(U, "go")
        consumer = asyncio.create_task(other.run_async())
        await until(lambda: errors.seen)
        await stop(consumer)

    run(main())
    assert isinstance(errors.seen[0][3], RingFull)
    assert bus.pending == 2


def test_publish_async_woken_by_a_thread_consumer():
    bus = Bus(capacity=4)
    T = bus.event_type("t")
    got = []
    bus.subscribe(T, got.append)

    async def main():
        bus.start()
        try:
            for i in range(500):
                await bus.publish_async(T, i)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, bus.stop)

    run(main())
    assert got == list(range(500))


# -- request / response --------------------------------------------------------------------------

def test_request_reply_by_return_value_sync_and_async(loop_kind):
    bus = Bus()
    ADD, MUL, OBSERVED = bus.event_type("add"), bus.event_type("mul"), []
    bus.subscribe(ADD, OBSERVED.append)          # returns None: not an answer
    bus.subscribe(ADD, lambda xy: xy[0] + xy[1])

    async def mul(xy):
        await asyncio.sleep(0.001)
        return xy[0] * xy[1]

    bus.subscribe(MUL, mul)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        f1 = bus.request(ADD, (2, 3), timeout=5)
        f2 = bus.request(MUL, (4, 5), timeout=5)
        assert isinstance(f1, asyncio.Future)
        assert await f1 == 5
        assert await f2 == 20
        await stop(consumer)

    run(main(), loop_kind)
    assert OBSERVED == [(2, 3)]


def test_request_explicit_reply_later():
    bus = Bus()
    Q = bus.event_type("q")

    def handler(x):
        req = current_request()
        asyncio.get_running_loop().call_later(0.01, req.reply, x * 10)

    bus.subscribe(Q, handler)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        assert await bus.request(Q, 4, timeout=5) == 40
        await stop(consumer)

    run(main())
    assert current_request() is None


def test_request_timeout_failure_no_handler_and_no_reply():
    bus = Bus()
    SLOW, FAIL, NONE, EMPTY = (bus.event_type(n) for n in ("slow", "fail", "none", "empty"))

    async def slow(x):
        await asyncio.sleep(1)
        return x

    def fail(x):
        raise ValueError(f"bad {x}")

    bus.subscribe(SLOW, slow, concurrent=True)
    bus.subscribe(FAIL, fail)
    bus.subscribe(NONE, lambda x: None)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await bus.request(SLOW, 1, timeout=0.05)
        assert time.monotonic() - t0 < 0.9
        with pytest.raises(ValueError, match="bad 2"):
            await bus.request(FAIL, 2, timeout=5)
        with pytest.raises(NoReplyError):
            await bus.request(NONE, 3, timeout=5)
        with pytest.raises(NoHandlerError):
            bus.request(EMPTY, 4)
        await stop(consumer)

    run(main())
    assert bus.stats()["handler_errors"] == 0     # the requester got the exception


def test_request_from_a_thread_gets_a_concurrent_future(loop_kind):
    bus = Bus()
    Q = bus.event_type("q")

    async def answer(x):
        await asyncio.sleep(0)
        return -x

    bus.subscribe(Q, answer)

    def client():
        futs = [bus.request(Q, i, timeout=5) for i in range(20)]
        return [f.result(5) for f in futs]

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        result = await asyncio.get_running_loop().run_in_executor(None, client)
        await stop(consumer)
        return result

    assert run(main(), loop_kind) == [-i for i in range(20)]


def test_request_served_by_consumer_threads_and_thread_timeout():
    bus = Bus()
    Q, NEVER = bus.event_type("q"), bus.event_type("never")

    async def answer(x):
        await asyncio.sleep(0)
        return x + 1

    bus.subscribe(Q, answer)
    bus.subscribe(NEVER, lambda x: current_request() and None)    # takes it, never answers
    with bus.running():
        assert bus.request(Q, 1, timeout=5).result(5) == 2
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            bus.request(NEVER, 0, timeout=0.05).result(5)
        assert time.monotonic() - t0 < 2


# -- once and expect -----------------------------------------------------------------------------

def test_once_handlers_run_once():
    bus = Bus()
    T = bus.event_type("t")
    sync_calls, async_calls = [], []

    async def a(x):
        await asyncio.sleep(0)
        async_calls.append(x)

    def reentrant(x):
        sync_calls.append(x)
        bus.emit(T, x + 100)              # re-entering must not call it again

    s1 = bus.subscribe(T, reentrant, once=True)
    s2 = bus.subscribe(T, a, once=True)
    assert s1.once and s2.once and s2.is_async
    for i in range(3):
        bus.emit(T, i)
    assert sync_calls == [0]
    assert async_calls == [100]          # fired by the nested emit, which ran first
    assert not s1.active and not s2.active
    assert bus.subscriptions(T) == ()


def test_once_on_the_loop_consumer(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    calls = []

    @bus.on(T, once=True)
    async def first(x):
        await asyncio.sleep(0)
        calls.append(x)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        for i in range(5):
            await bus.publish_async(T, i)
        await until(lambda: bus.pending == 0)
        await asyncio.sleep(0.01)
        await stop(consumer)

    run(main(), loop_kind)
    assert calls == [0]


def test_expect(loop_kind):
    bus = Bus()
    T = bus.event_type("t")

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        fut = bus.expect(T, lambda x: x > 2, timeout=5)
        for i in range(6):
            bus.publish(T, i)
        assert await fut == 3
        assert bus.subscriptions(T) == ()
        with pytest.raises(TimeoutError):
            await bus.expect(T, timeout=0.02)
        assert bus.subscriptions(T) == ()
        f2 = bus.expect(T, lambda x: 1 / 0)
        bus.publish(T, 1)
        with pytest.raises(ZeroDivisionError):
            await f2
        f3 = bus.expect(T)
        f3.cancel()
        await asyncio.sleep(0)
        assert bus.subscriptions(T) == ()
        await stop(consumer)

    run(main(), loop_kind)


def test_expect_in_a_thread_returns_a_concurrent_future():
    bus = Bus()
    T = bus.event_type("t")
    fut = bus.expect(T, lambda x: x == "b")
    bus.emit(T, "a")
    assert not fut.done()
    bus.emit(T, "b")
    assert fut.result(0) == "b"


# -- cancellation and loop shutdown --------------------------------------------------------------

def test_cancel_while_awaiting_a_handler_keeps_the_rest_queued(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    log = []
    release = {}

    async def waits(x):
        log.append(("start", x))
        try:
            await release["event"].wait()
        except asyncio.CancelledError:
            log.append(("cancelled", x))
            raise
        log.append(("end", x))

    bus.subscribe(T, waits)
    bus.subscribe(T, lambda x: log.append(("after", x)))

    async def main():
        release["event"] = asyncio.Event()
        for i in range(10):
            bus.publish(T, i)
        consumer = asyncio.create_task(bus.run_async())
        await until(lambda: log)
        await stop(consumer)
        assert bus.pending == 9
        release["event"].set()
        consumer = asyncio.create_task(bus.run_async())
        await until(lambda: bus.pending == 0 and len(log) == 2 + 9 * 3)
        await stop(consumer)

    run(main(), loop_kind)
    assert log[:2] == [("start", 0), ("cancelled", 0)]
    assert log[2:] == [(k, i) for i in range(1, 10) for k in ("start", "end", "after")]


def test_cancel_while_idle_then_drain(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    got = []
    bus.subscribe(T, got.append)

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        bus.publish(T, 0)
        await until(lambda: got == [0])
        await stop(consumer)
        for i in range(1, 6):
            bus.publish(T, i)
        await asyncio.sleep(0.01)
        assert got == [0] and bus.pending == 5

    run(main(), loop_kind)
    assert bus.drain() == 5
    assert got == list(range(6))


def test_closing_the_loop_with_a_running_consumer_leaves_nothing_behind(loop_kind):
    bus = Bus()
    T = bus.event_type("t")
    got = []

    async def handler(x):
        await asyncio.sleep(0)
        got.append(x)

    bus.subscribe(T, handler, concurrent=4)
    bus.subscribe(T, handler)

    async def main():
        bus.attach()
        for i in range(10):
            bus.publish(T, i)
        await asyncio.sleep(0)
        # Return with the consumer and handler tasks still running: the loop's shutdown
        # cancels them; run() fails on any warning or "destroyed but pending" report.

    run(main(), loop_kind)
    assert bus.ring.stats()["pending"] <= 10
    bus.drain()                         # detached cleanly: usable again
    bus.start()
    bus.stop()


def test_no_cycle_keeps_a_bus_with_async_handlers_alive():
    def used_bus():
        bus = Bus()
        T = bus.event_type("t")

        async def h(x):
            await asyncio.sleep(0)

        bus.subscribe(T, h)
        bus.subscribe(T, h, once=True)
        bus.subscribe(T, h, concurrent=2)
        Q = bus.event_type("q")
        bus.subscribe(Q, lambda x: x + 1)

        async def main():
            consumer = asyncio.create_task(bus.run_async())
            await bus.publish_async(T, 1)
            await until(lambda: bus.pending == 0)
            assert await bus.request(Q, 2, timeout=5) == 3
            seen = bus.expect(T, timeout=5)
            bus.publish(T, 3)
            assert await seen == 3
            await stop(consumer)

        run(main())
        return weakref.ref(bus)

    gc.disable()
    try:
        ref = used_bus()
        assert ref() is None            # freed as its last reference went: no cycle left
    finally:
        gc.enable()


def test_weak_async_method_handler_dies_with_its_object():
    bus = Bus()
    T = bus.event_type("t")
    got = []

    class Listener:
        async def on(self, x):
            await asyncio.sleep(0)
            got.append(x)

    obj = Listener()
    sub = bus.subscribe(T, obj.on)
    assert sub.handler == obj.on and sub.is_async

    async def main():
        consumer = asyncio.create_task(bus.run_async())
        await bus.publish_async(T, 1)
        await until(lambda: got == [1])
        await stop(consumer)

    run(main())
    del obj
    gc.collect()
    assert not sub.active
    bus.emit(T, 2)
    assert got == [1]
