"""Stress: several producer threads into one ring, checked by sequence numbers.

Every payload encodes (producer id, sequence). Each consumer checks that, per producer, the
sequences arrive as 0, 1, 2, ... with no gap (loss), repeat (duplicate) or inversion (reorder),
and that in the end every event arrived. Small capacities force wrap-around, gating and
blocked producers. RINGBUS_STRESS_SCALE (default 1.0) scales the event counts, e.g. down for
sanitizer builds.

A stress test on x86 cannot prove the memory orders right (x86 is too strong); TSAN
(.ci/sanitize) and the Relacy models (tests/relacy) cover that.
"""
import threading
import time

import pytest

import ringbus
from ringbus._ring import RingBuffer

from stress import SCALE, SHIFT, scaled

TIMEOUT = 120 * max(1.0, SCALE)



class SequenceChecker:
    """Per-producer FIFO, no loss, no duplicate."""

    def __init__(self, producers):
        self.next = [0] * producers
        self.errors = []
        self.count = 0

    def __call__(self, payload):
        pid, seq = payload >> SHIFT, payload & ((1 << SHIFT) - 1)
        expected = self.next[pid]
        if seq != expected and len(self.errors) < 10:
            self.errors.append((pid, expected, seq))
        self.next[pid] = seq + 1
        self.count += 1

    def check(self, per_producer):
        assert self.errors == [], f"(producer, expected, got): {self.errors}"
        assert self.next == [per_producer] * len(self.next)
        assert self.count == per_producer * len(self.next)


def run_producers(ring, t, producers, per_producer, batch=0):
    start = threading.Barrier(producers)
    failures = []

    def produce(pid):
        base = pid << SHIFT
        try:
            start.wait()
            if batch:
                for lo in range(0, per_producer, batch):
                    hi = min(lo + batch, per_producer)
                    ring.publish_many(t, range(base + lo, base + hi), timeout=TIMEOUT)
            else:
                publish = ring.publish
                for seq in range(per_producer):
                    publish(t, base + seq, TIMEOUT)
        except BaseException as exc:        # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=produce, args=(pid,)) for pid in range(producers)]
    for th in threads:
        th.start()
    return threads, failures


@pytest.mark.parametrize("capacity, wait, producers, per_producer", [
    (64, "block", 3, 200_000),
    (4096, "block", 4, 150_000),
    (256, "yield", 3, 100_000),
    (256, "spin", 2, 100_000),
    (128, "sleep", 2, 50_000),
])
def test_multi_producer_into_one_consumer_thread(capacity, wait, producers, per_producer):
    per_producer = scaled(per_producer)
    bus = ringbus.Bus()
    t = bus.event_type("seq")
    checker = SequenceChecker(producers)
    bus.subscribe(t, checker)
    ring = RingBuffer(capacity, producers="multi", overflow="block", wait=wait)
    ring.start(bus)
    threads, failures = run_producers(ring, t, producers, per_producer)
    for th in threads:
        th.join()
    ring.stop(drain=True, timeout=TIMEOUT)
    assert failures == []
    checker.check(per_producer)
    assert ring.pending == 0
    assert ring.stats()["dispatched"] == producers * per_producer


def test_single_producer_thread_into_consumer_thread():
    per_producer = scaled(500_000)
    bus = ringbus.Bus()
    t = bus.event_type("seq")
    checker = SequenceChecker(1)
    bus.subscribe(t, checker)
    ring = RingBuffer(1024, producers="single", wait="block")
    ring.start(bus)
    threads, failures = run_producers(ring, t, 1, per_producer)
    threads[0].join()
    ring.stop(timeout=TIMEOUT)
    assert failures == []
    checker.check(per_producer)


def test_publish_many_from_several_threads():
    producers, per_producer = 3, scaled(200_000)
    bus = ringbus.Bus()
    t = bus.event_type("seq")
    checker = SequenceChecker(producers)
    bus.subscribe(t, checker)
    ring = RingBuffer(512, producers="multi", wait="block")
    ring.start(bus)
    threads, failures = run_producers(ring, t, producers, per_producer, batch=100)
    for th in threads:
        th.join()
    ring.stop(timeout=TIMEOUT)
    assert failures == []
    checker.check(per_producer)


def test_producers_threads_while_this_thread_drains():
    producers, per_producer = 3, scaled(100_000)
    bus = ringbus.Bus()
    t = bus.event_type("seq")
    checker = SequenceChecker(producers)
    bus.subscribe(t, checker)
    ring = RingBuffer(128, producers="multi", overflow="block")
    threads, failures = run_producers(ring, t, producers, per_producer)
    while any(th.is_alive() for th in threads):
        if ring.drain(bus, max_events=1000) < 1000:
            time.sleep(0.0001)        # let the producers have the GIL
    ring.drain(bus)
    assert failures == []
    checker.check(per_producer)


@pytest.mark.parametrize("wait", ["block", "yield"])
def test_diamond_pipeline(wait):
    """journal and replicate in parallel, then the bus's subscribers after both."""
    producers, per_producer = 2, scaled(150_000)
    bus = ringbus.Bus()
    t = bus.event_type("seq")
    journal, replicate, logic = (SequenceChecker(producers) for _ in range(3))
    ring = RingBuffer(256, producers="multi", wait=wait)
    j = ring.stage("journal", lambda et, p: journal(p), before="dispatch")
    r = ring.stage("replicate", lambda et, p: replicate(p), before="dispatch")
    behind = []

    def on_event(p):
        # Both upstream stages passed this event: they saw at least as many events as we did.
        if (journal.count <= logic.count or replicate.count <= logic.count) and len(behind) < 10:
            behind.append((journal.count, replicate.count, logic.count))
        logic(p)

    bus.subscribe(t, on_event)
    ring.start(bus)
    threads, failures = run_producers(ring, t, producers, per_producer)
    for th in threads:
        th.join()
    ring.stop(timeout=TIMEOUT)
    assert failures == []
    assert behind == []
    for checker in (journal, replicate, logic):
        checker.check(per_producer)
    assert j.sequence == r.sequence == ring.stages["dispatch"].sequence


# Threads that spin or yield share 2 cores badly when they outnumber them: those cases get
# fewer events, and every diamond (5 threads) parks.
@pytest.mark.parametrize("producers, multi, capacity, wait, diamond, per_producer", [
    (1, False, 64, "block", False, 500_000),
    (1, False, 1024, "spin", False, 500_000),
    (3, True, 64, "block", False, 200_000),
    (2, True, 256, "yield", False, 100_000),
    (2, True, 64, "block", True, 200_000),
    (2, True, 16, "block", True, 50_000),
])
def test_ring_functions_without_the_gil(producers, multi, capacity, wait, diamond,
                                        per_producer):
    """C threads, no GIL: the case where only the atomics order the slots (TSAN's target)."""
    from ringbus._ring import _stress_nogil

    errors, seconds = _stress_nogil(producers, scaled(per_producer), capacity, multi, wait,
                                    diamond)
    assert errors == 0
