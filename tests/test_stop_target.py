"""stop(drain=True) has a hard stop target: it dispatches what was published before the call
(the cursor read then), then stops, however fast other producers keep publishing. Later
events stay queued for the next start/drain: nothing is lost (issue 8, defect 1)."""
import sys
import threading
import time

import pytest

import ringbus

try:
    import numpy as np
except ImportError:        # pragma: no cover
    np = None

BATCH = 64
STOP_BOUND = 10.0
DT = np.dtype([("v", "<i8")]) if np is not None else None   # seconds: generous; the old behaviour never returned under load


class Flood:
    """Producer threads publishing sequence numbers as fast as they can, until told to end.
    A publish that times out (the ring is full while the consumer is stopped) is retried."""

    def __init__(self, publish, producers=2):
        self.publish = publish
        self.done = threading.Event()
        self.counts = [0] * producers
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(producers)]

    def _run(self, i):
        # Batches: a producer then outruns a consumer that calls a Python handler per event.
        n = 0
        while not self.done.is_set():
            try:
                got = self.publish([(i << 32) | (n + k) for k in range(BATCH)])
            except ringbus.RingFull as exc:
                got = exc.published
            n += got
            self.counts[i] = n

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.done.set()

    def join(self):
        self.done.set()
        for t in self.threads:
            t.join(10)
        assert not any(t.is_alive() for t in self.threads)


def _stop_in_thread(stop):
    """Run stop() in a thread so that a regression fails the test instead of hanging it."""
    box = {}

    def run():
        try:
            box["target"] = stop()
        except BaseException as exc:     # pragma: no cover - reported below
            box["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(STOP_BOUND)
    assert not t.is_alive(), f"stop(drain=True) did not return within {STOP_BOUND}s under load"
    if "exc" in box:
        raise box["exc"]
    return time.monotonic() - t0


@pytest.mark.parametrize("producers", ["multi", "single"])
def test_bus_stop_drain_returns_under_load_and_loses_nothing(producers):
    bus = ringbus.Bus(capacity=1024, producers=producers)
    T = bus.event_type("seq")
    seen = []
    def handler(v):
        seen.append(v)
        time.sleep(0)        # lets the producers in: they keep the ring from ever emptying

    bus.subscribe(T, handler)
    n_producers = 2 if producers == "multi" else 1
    flood = Flood(lambda vs: bus.publish_many(T, vs, timeout=0.05), n_producers)
    bus.start()
    with flood:
        while sum(flood.counts) < 5000:
            time.sleep(0.001)
        box = {}

        def stop():
            # What was published before the call: the stop target.
            box["before"] = bus.ring.published
            bus.stop(drain=True)

        _stop_in_thread(stop)
        stopped_at = len(seen)
    # Exactly the events published before stop(), nothing after (with the GIL a publish
    # completes before another thread reads the counters).
    assert stopped_at >= box["before"]
    assert bus.ring.dispatched == stopped_at
    flood.join()
    # The rest stayed queued: a later drain delivers it, in each producer's order.
    bus.drain()
    assert len(seen) == sum(flood.counts) == bus.ring.published
    for i in range(n_producers):
        mine = [v & 0xFFFFFFFF for v in seen if v >> 32 == i]
        assert mine == list(range(flood.counts[i]))


def test_ring_stop_target_is_exactly_the_cursor():
    """The consumer dispatches exactly the sequences <= the cursor read by stop()."""
    ring = ringbus.RingBuffer(256)
    bus = ringbus.Bus()
    T = bus.event_type("x")
    seen = []
    release = threading.Event()
    first = threading.Event()

    def slow(v):
        first.set()
        release.wait(5)
        seen.append(v)

    bus.subscribe(T, slow)
    ring.start(bus)
    for i in range(10):
        ring.publish(T, i)
    assert first.wait(5)
    # The consumer is inside the handler of event 0; stop's target is sequence 9.
    t = threading.Thread(target=ring.stop, kwargs={"drain": True}, daemon=True)
    t.start()
    time.sleep(0.3)          # stop() reads the cursor at once, then waits for the thread
    for i in range(10, 20):
        ring.publish(T, i)   # after the target: they stay queued
    release.set()
    t.join(STOP_BOUND)
    assert not t.is_alive()
    assert seen == list(range(10))
    assert ring.pending == 10 and ring.dispatched == 10
    ring.drain(bus)
    assert seen == list(range(20))


def _stop_record_ring_under_load(ring, seen):
    """stop(drain=True) while producers go on: it returns, having dispatched everything
    published before the call and nothing more."""
    box = {}

    def stop():
        box["before"] = ring.published
        ring.stop(drain=True)

    _stop_in_thread(stop)
    stopped_at = len(seen)
    assert stopped_at >= box["before"]
    assert ring.dispatched == stopped_at


@pytest.mark.skipif(np is None, reason="numpy is needed for record rings")
def test_record_ring_stop_drain_returns_under_load_and_loses_nothing():
    ring = ringbus.RecordRing(DT, 1024)
    seen = []
    def handler(view):
        seen.extend(view["v"].tolist())
        time.sleep(0.002)    # lets the producers in: they keep the ring from ever emptying

    ring.subscribe(handler)
    flood = Flood(lambda vs: ring.publish_many(np.array(vs, dtype=DT), timeout=0.05), 2)
    ring.start()
    with flood:
        while sum(flood.counts) < 5000:
            time.sleep(0.001)
        _stop_record_ring_under_load(ring, seen)
    flood.join()
    ring.drain()
    assert len(seen) == sum(flood.counts) == ring.published
    for i in range(2):
        mine = [v & 0xFFFFFFFF for v in seen if v >> 32 == i]
        assert mine == list(range(flood.counts[i]))


@pytest.mark.skipif(np is None, reason="numpy is needed for record rings")
def test_record_ring_stop_drain_returns_under_nogil_producers():
    """Producers that publish without the GIL (the C API) cannot keep stop(drain=True)
    running either: it dispatches what was published before the call, then returns."""
    from ringbus._records import _publish_nogil

    ring = ringbus.RecordRing(DT, 1024)
    seen = []

    def handler(view):
        seen.extend(view["v"].tolist())
        time.sleep(0.002)    # the C producers refill the ring meanwhile

    ring.subscribe(handler)
    results = [None, None]
    go_on = threading.Event()
    go_on.set()

    def produce(pid):
        # Bursts of C-level publishes (GIL released), each record its producer's next
        # number; a burst ends when the ring stays full for 0.2 s (the consumer stopped).
        done = 0
        while go_on.is_set():
            n, status, _ = _publish_nogil(ring, np.zeros(1, dtype=DT), 20_000, seq_offset=0,
                                          base=(pid << 32) + done, timeout=0.2, batch=16)
            done += n
            if n < 20_000:
                break
        results[pid] = done

    threads = [threading.Thread(target=produce, args=(i,), daemon=True) for i in range(2)]
    ring.start()
    for t in threads:
        t.start()
    while len(seen) < 5000:
        time.sleep(0.001)
    _stop_record_ring_under_load(ring, seen)
    go_on.clear()
    for t in threads:
        t.join(STOP_BOUND)
        assert not t.is_alive()
    ring.drain()
    assert len(seen) == sum(results) == ring.published
    for i in range(2):
        mine = [v & 0xFFFFFFFF for v in seen if v >> 32 == i]
        assert mine == list(range(results[i]))        # FIFO, no loss, no duplicate


def test_counters_never_count_a_claim_not_yet_published():
    """A single producer blocked on a full ring claims without the GIL and publishes once it
    has the GIL back: until then the claim is neither published nor pending, or
    ``published`` would promise an event that stop(drain=True) (which targets the cursor)
    does not deliver."""
    bus = ringbus.Bus(capacity=4, producers="single")
    T = bus.event_type("x")
    seen = []
    bus.subscribe(T, seen.append)
    for i in range(4):
        bus.publish(T, i)
    t = threading.Thread(target=lambda: bus.publish(T, 4, timeout=10), daemon=True)
    t.start()
    time.sleep(0.2)                   # the producer waits for room, without the GIL
    old = sys.getswitchinterval()
    sys.setswitchinterval(5.0)        # this thread keeps the GIL until it blocks
    try:
        bus.drain()                   # room: the producer claims, then waits for the GIL
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.2:
            pass
        counts = bus.ring.published, bus.ring.pending, len(seen)
    finally:
        sys.setswitchinterval(old)
    t.join(10)
    assert counts == (4, 0, 4)
    bus.drain()
    assert seen == [0, 1, 2, 3, 4] and bus.ring.published == 5 and bus.ring.pending == 0
