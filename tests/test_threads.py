"""emit from several threads at once: every handler call and counter adds up, no crash."""
import threading

import ringbus

THREADS = 8
EMITS = 2000


def _run_threads(target, n=THREADS):
    start = threading.Barrier(n)
    errors = []

    def run(i):
        try:
            start.wait()
            target(i)
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_concurrent_emit_counts_add_up():
    bus = ringbus.Bus()
    tick = bus.event_type("md.tick")
    lock = threading.Lock()
    seen = {i: [] for i in range(THREADS)}

    def record(payload):
        thread_id, seq = payload
        with lock:
            seen[thread_id].append(seq)

    counter = [0]

    def count(payload):
        with lock:
            counter[0] += 1

    bus.subscribe(tick, record)
    bus.subscribe(tick, count)

    def producer(i):
        for seq in range(EMITS):
            assert bus.emit(tick, (i, seq)) == 2

    _run_threads(producer)
    # Each thread's events arrive complete and in that thread's order.
    for i in range(THREADS):
        assert seen[i] == list(range(EMITS))
    assert counter[0] == THREADS * EMITS
    stats = bus.stats()
    assert stats["emitted"] == THREADS * EMITS
    assert stats["handler_calls"] == 2 * THREADS * EMITS
    assert stats["handler_errors"] == 0


def test_concurrent_emit_with_failing_handlers_counts_errors():
    errors = []
    bus = ringbus.Bus(on_error=lambda t, p, s, e: errors.append(p))
    tick = bus.event_type("md.tick")

    def fail_odd(payload):
        if payload[1] % 2:
            raise ValueError(payload)

    bus.subscribe(tick, fail_odd)

    def producer(i):
        for seq in range(EMITS):
            bus.emit(tick, (i, seq))

    _run_threads(producer)
    assert len(errors) == THREADS * EMITS // 2
    assert bus.stats()["handler_errors"] == THREADS * EMITS // 2


def test_concurrent_emit_while_subscribing_and_unsubscribing():
    bus = ringbus.Bus()
    tick = bus.event_type("md.tick")
    lock = threading.Lock()
    steady_calls = [0]

    def steady(payload):
        with lock:
            steady_calls[0] += 1

    bus.subscribe(tick, steady)
    stop = threading.Event()
    returned = []

    def churn(_):
        while not stop.is_set():
            sub = bus.subscribe(tick, lambda p: None, priority=1)
            sub.unsubscribe()

    def producer(i):
        total = 0
        for seq in range(EMITS):
            n = bus.emit(tick, seq)
            assert n in (1, 2)
            total += n
        with lock:
            returned.append(total)

    churner = threading.Thread(target=churn, args=(None,))
    churner.start()
    try:
        _run_threads(producer, n=4)
    finally:
        stop.set()
        churner.join(timeout=60)
    assert steady_calls[0] == 4 * EMITS
    assert bus.stats()["emitted"] == 4 * EMITS
    assert bus.stats()["handler_calls"] == sum(returned)
    assert bus.stats()["subscriptions"] == 1


def test_emit_depth_is_per_thread():
    bus = ringbus.Bus(max_depth=5)
    t = bus.event_type("t")
    barrier = threading.Barrier(4)

    def nest(n):
        if n == 5:
            barrier.wait(timeout=30)    # every thread is 1 deep here at once
        if n > 1:
            bus.emit(t, n - 1)

    bus.subscribe(t, nest)
    # Four threads each nest 5 deep, concurrently; with a shared counter they would
    # exceed max_depth=5 together.
    _run_threads(lambda i: bus.emit(t, 5), n=4)


def test_concurrent_emit_while_handlers_in_flight_are_unsubscribed():
    # Handlers give up the GIL mid-dispatch (time.sleep(0)) while another thread swaps
    # the handler set; every in-flight dispatch must finish on the handlers it started with.
    import gc
    import sys
    import time

    bus = ringbus.Bus()
    tick = bus.event_type("md.tick")
    lock = threading.Lock()
    delivered = [0]

    def make():
        def handler(payload):
            time.sleep(0)
            with lock:
                delivered[0] += 1
        return handler

    stop = threading.Event()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        current = [bus.subscribe(tick, make()) for _ in range(3)]

        def churn(_):
            nonlocal current
            while not stop.is_set():
                fresh = [bus.subscribe(tick, make()) for _ in range(3)]
                for s in current:
                    s.unsubscribe()
                current = fresh
                gc.collect(0)

        returned = []

        def producer(i):
            total = 0
            for seq in range(500):
                total += bus.emit(tick, seq)
            with lock:
                returned.append(total)

        churner = threading.Thread(target=churn, args=(None,))
        churner.start()
        try:
            _run_threads(producer, n=4)
        finally:
            stop.set()
            churner.join(timeout=60)
    finally:
        sys.setswitchinterval(old_interval)
    assert delivered[0] == sum(returned)
    assert bus.stats()["handler_calls"] == sum(returned)
    assert bus.stats()["handler_errors"] == 0
    assert bus.stats()["subscriptions"] == 3
