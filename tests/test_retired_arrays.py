"""Issue 8, defect 4: a swapped-out handler array is freed as soon as no dispatch that loaded
it is still running, not when every dispatch anywhere on the bus has finished. One
long-running handler plus subscribe/unsubscribe churn must not grow memory or keep the
churned handlers (and what their closures hold) alive."""
import contextlib
import gc
import threading
import weakref

import ringbus


class Big:
    """What a handler's closure holds: weakref-able, and big enough to matter."""

    def __init__(self):
        self.data = bytearray(1 << 16)


def _handler_holding(big, calls):
    def handler(payload):
        calls.append((big, payload))        # the closure holds `big`
    return handler


@contextlib.contextmanager
def _blocked(bus, t, priority=0):
    """A dispatch of ``t`` on another thread, blocked in a handler (subscribed here, with
    ``priority``) until the block is left; yields that thread."""
    started, release = threading.Event(), threading.Event()

    def long_handler(payload):
        started.set()
        assert release.wait(timeout=30)

    bus.subscribe(t, long_handler, priority=priority)
    worker = threading.Thread(target=bus.emit, args=(t, "in flight"))
    worker.start()
    try:
        assert started.wait(timeout=30)
        yield worker
    finally:
        release.set()
        worker.join(timeout=30)


def _blocked_elsewhere(bus):
    """A dispatch of another type, blocked in its handler on another thread meanwhile."""
    return _blocked(bus, bus.event_type("retired.elsewhere"))


def test_churned_handlers_are_freed_while_a_long_handler_runs():
    bus = ringbus.Bus()
    slow = bus.event_type("retired.slow")
    other = bus.event_type("retired.other")
    with _blocked(bus, slow) as worker:
        calls = []
        refs = []
        # Churn another type, and the long handler's own type, from this thread.
        for i in range(200):
            big = Big()
            refs.append(weakref.ref(big))
            sub = bus.subscribe(other if i % 2 else slow, _handler_holding(big, calls))
            bus.emit(other, i)
            sub.unsubscribe()
            del big, sub
        calls.clear()
        gc.collect()
        alive = sum(1 for r in refs if r() is not None)
        assert alive == 0, f"{alive} of 200 churned handlers kept alive by a running dispatch"
        assert worker.is_alive()        # still inside the long handler


def test_the_array_a_long_dispatch_uses_lives_until_it_returns_then_goes():
    bus = ringbus.Bus()
    t = bus.event_type("retired.own")
    other = bus.event_type("retired.own.other")
    held = Big()
    seen = []
    sub = bus.subscribe(t, _handler_holding(held, seen))
    ref = weakref.ref(held)
    del held
    with _blocked_elsewhere(bus):
        with _blocked(bus, t, priority=1):
            sub.unsubscribe()           # swaps the array the worker's dispatch is using
            del sub
            for i in range(50):         # unrelated swaps meanwhile free nothing it uses
                bus.subscribe(other, print).unsubscribe()
            gc.collect()
            assert ref() is not None    # the in-flight dispatch still calls it
        # The snapshot rule: the handler ran for the event in flight.
        assert [p for _, p in seen] == ["in flight"]
        seen.clear()
        gc.collect()
        # Freed when that dispatch returned (no later swap needed), while the dispatch on
        # the other thread still runs.
        assert ref() is None
        assert bus.emit(t, "next") == 1


def test_nested_dispatches_of_one_type_each_keep_their_own_array():
    # outer dispatch (array A) re-emits after swapping to B; the inner one (array B) swaps
    # to C. Each runs on its own snapshot; after both return nothing is retained.
    bus = ringbus.Bus()
    t = bus.event_type("retired.nested")
    order = []
    subs = {}
    bigs = {}

    def make(label):
        big = bigs[label] = Big()

        def handler(payload):
            order.append((label, payload))
            big.data[0] = 1
            if label == "a" and payload == "outer":
                subs["b"] = bus.subscribe(t, make("b"))
                subs["a"].unsubscribe()
                bus.emit(t, "inner")
            elif label == "b" and payload == "inner":
                subs["b"].unsubscribe()
                gc.collect()
        return handler

    subs["a"] = bus.subscribe(t, make("a"))
    refs = {k: weakref.ref(v) for k, v in bigs.items()}
    bigs.clear()
    with _blocked_elsewhere(bus):
        bus.emit(t, "outer")
        refs["b"] = weakref.ref(bigs.pop("b"))
        assert order == [("a", "outer"), ("b", "inner")]
        subs.clear()
        gc.collect()
        assert refs["a"]() is None and refs["b"]() is None
        assert bus.emit(t, "after") == 0
