"""Stress: several producers into one RecordRing, checked by sequence numbers.

Every record carries (producer id << 32 | sequence) in its ``seq`` field. The consumer checks
that per producer the sequences arrive as 0, 1, 2, ... with no gap (loss), repeat
(duplicate) or inversion (reorder), and that in the end every record arrived. Producers are
Python threads, nogil threads publishing through the C API (the same function table another
extension uses), or both at once; small capacities force wrap-around (two views per batch),
gating and parked producers. RINGBUS_STRESS_SCALE (default 1.0) scales the counts, e.g.
down for sanitizer builds (.ci/sanitize).

x86 is too strong for a stress test to prove memory orders right: the C-only cases
(test_record_ring_without_the_gil) are what a TSAN build checks, and tests/relacy models the
algorithms themselves.
"""
import threading
import time

import pytest

try:
    import numpy as np     # at module level: .ci/sanitize leaves such files out of its leak check
except ImportError:        # pragma: no cover
    pytest.skip("numpy is needed for record rings", allow_module_level=True)

from ringbus import RecordRing
from ringbus._records import _publish_nogil, _stress_nogil

from stress import SCALE, SHIFT, scaled

TIMEOUT = 120 * max(1.0, 1 / SCALE if SCALE < 1 else 1.0)
REC = np.dtype([("seq", "<i8"), ("value", "<f8")])



class SequenceChecker:
    """A batch handler: per-producer FIFO, no loss, no duplicate (vectorized per view)."""

    def __init__(self, producers):
        self.next = [0] * producers
        self.errors = []
        self.count = 0
        self.lock = threading.Lock()    # the GIL already serializes handlers; drain + thread

    def __call__(self, view):
        seq = view["seq"]
        pid = seq >> SHIFT
        idx = seq & ((1 << SHIFT) - 1)
        if len(pid) and (pid.min() < 0 or pid.max() >= len(self.next)):
            self.errors.append(("bad producer id", int(pid.min()), int(pid.max())))
            return
        for p in np.unique(pid).tolist():
            got = idx[pid == p]
            want = np.arange(self.next[p], self.next[p] + len(got))
            if not np.array_equal(got, want) and len(self.errors) < 10:
                bad = int(np.flatnonzero(got != want)[0])
                self.errors.append((p, int(want[bad]), int(got[bad])))
            self.next[p] = int(got[-1]) + 1
        self.count += len(view)

    def check(self, per_producer):
        assert self.errors == [], f"(producer, expected, got): {self.errors}"
        assert self.next == [per_producer] * len(self.next)
        assert self.count == per_producer * len(self.next)


def python_producers(ring, producers, per_producer, batch=0):
    start = threading.Barrier(producers)
    failures = []

    def produce(pid):
        base = pid << SHIFT
        try:
            start.wait()
            if batch:
                for lo in range(0, per_producer, batch):
                    hi = min(lo + batch, per_producer)
                    rows = np.zeros(hi - lo, dtype=REC)
                    rows["seq"] = np.arange(base + lo, base + hi)
                    ring.publish_many(rows, timeout=TIMEOUT)
            else:
                publish = ring.publish
                for seq in range(per_producer):
                    publish((base + seq, 0.0), TIMEOUT)
        except BaseException as exc:        # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=produce, args=(pid,)) for pid in range(producers)]
    for th in threads:
        th.start()
    return threads, failures


def nogil_producers(ring, producers, per_producer, first_pid=0, batch=0, use_try=False):
    """Threads that publish through the C API with the GIL released."""
    source = np.zeros(64, dtype=REC)
    start = threading.Barrier(producers)
    results, failures = {}, []

    def produce(pid):
        try:
            start.wait()
            results[pid] = _publish_nogil(ring, source, per_producer, seq_offset=0,
                                          base=pid << SHIFT, timeout=TIMEOUT, batch=batch,
                                          use_try=use_try)
        except BaseException as exc:        # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=produce, args=(first_pid + i,))
               for i in range(producers)]
    for th in threads:
        th.start()
    return threads, results, failures


@pytest.mark.parametrize("capacity, wait, producers, per_producer, batch", [
    (64, "block", 3, 30_000, 0),
    (1024, "yield", 2, 30_000, 0),
    (64, "block", 3, 200_000, 100),
    (256, "sleep", 2, 100_000, 37),
])
def test_python_producer_threads_into_the_consumer_thread(capacity, wait, producers,
                                                          per_producer, batch):
    per_producer = scaled(per_producer)
    ring = RecordRing(REC, capacity, wait=wait)
    checker = SequenceChecker(producers)
    ring.subscribe(checker)
    ring.start()
    threads, failures = python_producers(ring, producers, per_producer, batch)
    for th in threads:
        th.join()
    ring.stop(timeout=TIMEOUT)
    assert failures == []
    checker.check(per_producer)
    assert ring.stats()["dispatched"] == ring.published == producers * per_producer


@pytest.mark.parametrize("capacity, wait, producers, mode, per_producer", [
    (64, "block", 3, "publish", 300_000),
    (4096, "block", 2, "publish", 1_000_000),
    (256, "yield", 2, "try", 200_000),
    (128, "block", 3, "many", 300_000),
    (1024, "spin", 1, "publish", 1_000_000),
])
def test_nogil_c_api_producers_into_the_consumer_thread(capacity, wait, producers, mode,
                                                        per_producer):
    per_producer = scaled(per_producer)
    ring = RecordRing(REC, capacity, wait=wait)
    checker = SequenceChecker(producers)
    ring.subscribe(checker)
    ring.start()
    threads, results, failures = nogil_producers(
        ring, producers, per_producer, batch=100 if mode == "many" else 0,
        use_try=mode == "try")
    for th in threads:
        th.join()
    ring.stop(timeout=TIMEOUT)
    assert failures == []
    assert all(r[0] == per_producer and r[1] == 1 for r in results.values()), results
    checker.check(per_producer)


def test_single_producer_nogil_into_the_consumer_thread():
    per_producer = scaled(1_000_000)
    ring = RecordRing(REC, 512, producers="single")
    checker = SequenceChecker(1)
    ring.subscribe(checker)
    with ring.running():
        threads, results, failures = nogil_producers(ring, 1, per_producer)
        threads[0].join()
    assert failures == []
    checker.check(per_producer)


def test_nogil_and_python_producers_together():
    per_producer = scaled(100_000)
    ring = RecordRing(REC, 128)
    checker = SequenceChecker(4)
    ring.subscribe(checker)
    ring.start()
    py_threads, py_failures = python_producers(ring, 2, per_producer, batch=50)
    c_threads, results, c_failures = nogil_producers(ring, 2, per_producer, first_pid=2)
    for th in py_threads + c_threads:
        th.join()
    ring.stop(timeout=TIMEOUT)
    assert py_failures == [] and c_failures == []
    checker.check(per_producer)


def test_this_thread_drains_while_nogil_producers_publish():
    per_producer = scaled(200_000)
    ring = RecordRing(REC, 256)
    checker = SequenceChecker(3)
    ring.subscribe(checker)
    threads, results, failures = nogil_producers(ring, 3, per_producer)
    while any(th.is_alive() for th in threads):
        if ring.drain(max_records=10_000) == 0:
            time.sleep(0.0001)
    for th in threads:
        th.join()
    ring.drain()
    assert failures == []
    checker.check(per_producer)


def test_stop_with_drain_while_nogil_producers_run():
    """stop(drain=True) mid-stream: everything claimed before it is dispatched, the rest
    stays queued and a later drain delivers it, each record once."""
    per_producer = scaled(200_000)
    ring = RecordRing(REC, 1024)
    checker = SequenceChecker(2)
    ring.subscribe(checker)
    ring.start()
    threads, results, failures = nogil_producers(ring, 2, per_producer)
    time.sleep(0.01)
    ring.stop(timeout=TIMEOUT)
    dispatched = ring.dispatched
    time.sleep(0.01)
    assert ring.dispatched == dispatched             # stopped means stopped
    while any(th.is_alive() for th in threads):      # the producers fill the ring and wait
        if ring.drain(max_records=10_000) == 0:
            time.sleep(0.0001)
    for th in threads:
        th.join()
    ring.drain()
    assert failures == []
    checker.check(per_producer)


# C threads, no GIL: the case where only the atomics order the slots (TSAN's target). Threads
# that spin share 2 cores badly when they outnumber them: those get fewer records.
@pytest.mark.parametrize("producers, mode, capacity, wait, batch, per_producer", [
    (1, "single", 64, "block", 0, 500_000),
    (1, "single", 1024, "spin", 0, 500_000),
    (3, "multi", 64, "block", 0, 200_000),
    (3, "multi", 16, "block", 5, 100_000),
    (2, "multi", 256, "yield", 64, 200_000),
    (2, "multi", 64, "block", -1, 50_000),
])
def test_record_ring_without_the_gil(producers, mode, capacity, wait, batch, per_producer):
    errors, seconds = _stress_nogil(producers, scaled(per_producer), capacity, mode, wait,
                                    batch)
    assert errors == 0


@pytest.mark.parametrize("run", range(10))
def test_ten_runs(run):
    """The issue's bar: no loss, duplicate or reorder across 10 runs."""
    errors, _ = _stress_nogil(3, scaled(30_000), 16, "multi", "block", run % 3 * 4)
    assert errors == 0
