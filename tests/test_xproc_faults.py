"""Faults across processes (issue 10), each with a real SIGKILL: a consumer process killed
while producers wait for room (they get ConsumerGone, from Python and from the nogil C
API), and a new consumer that resumes where the dead one committed, delivering the batch in
flight again, marked redelivered."""
import os
import signal
import threading

import pytest

import ringbus
from processes import SHM, left_behind, name, reap, run  # noqa: F401 (name: a fixture)
from ringbus import ConsumerGone, MessageRing

np = pytest.importorskip("numpy")     # record rings; at module level for .ci/sanitize's leak check
pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="POSIX shared memory in /dev/shm")

TICK = np.dtype([("seq", "<i8"), ("price", "<f8")])

# A consumer process that takes the lease and then handles nothing: it sleeps in its first
# handler call (or before any, with "idle"), so the ring stays full until it is killed.
CONSUMER = """
import sys, time, ringbus
kind, name, mode = sys.argv[1:4]
if kind == "records":
    ring = ringbus.RecordRing.attach(name)
else:
    ring = ringbus.MessageRing.attach(name)
stuck_at = int(mode)

def handler(item):
    if kind == "records":
        seqs = item["seq"].tolist()
    else:
        seqs = [int(bytes(item).decode())]
    if stuck_at in seqs:
        print("stuck", flush=True)
        time.sleep(600)          # killed here, mid-batch: nothing of it is released

ring.subscribe(handler)
print("leased", flush=True)
if stuck_at < 0:
    time.sleep(600)
ring.drain()
"""


def _make(kind, name, capacity):
    if kind == "records":
        return ringbus.RecordRing(TICK, capacity, shared=name)
    return MessageRing(capacity * 16, shared=name)


def _fill(ring, kind):
    """Publish until the ring is full; returns how many."""
    n = 0
    while ring.try_publish((n, 0.0) if kind == "records" else str(n).encode() * 3):
        n += 1
    return n


def _kill(child):
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)


@pytest.mark.parametrize("kind", ["records", "messages"])
def test_a_producer_waiting_on_a_killed_consumer_gets_consumer_gone(name, kind):
    ring = _make(kind, name, 8)
    _fill(ring, kind)
    child = run(CONSUMER, kind, name, "-1")
    outcome = []

    def publish():
        item = (99, 0.0) if kind == "records" else b"999"
        try:
            ring.publish(item)                            # blocks: full, no timeout
            outcome.append("published")
        except ConsumerGone as exc:
            outcome.append(exc)

    try:
        assert child.stdout.readline().strip() == "leased"
        producer = threading.Thread(target=publish)
        producer.start()
        producer.join(0.3)
        assert producer.is_alive() and outcome == []     # waiting for room
        _kill(child)
        producer.join(60)
        assert not producer.is_alive()
    finally:
        reap(child)
    assert len(outcome) == 1 and isinstance(outcome[0], ConsumerGone), outcome
    assert f"consumer process {child.pid} is gone" in str(outcome[0])
    ring.unlink()
    ring.close()


def test_the_nogil_c_api_producer_gets_consumer_gone_too(name):
    from ringbus._records import _publish_nogil
    ring = ringbus.RecordRing(TICK, 8, shared=name)
    _fill(ring, "records")
    child = run(CONSUMER, "records", name, "-1")
    result = []
    try:
        assert child.stdout.readline().strip() == "leased"
        producer = threading.Thread(target=lambda: result.append(
            _publish_nogil(ring, np.zeros(1, TICK), 1, timeout=-1)))
        producer.start()
        producer.join(0.3)
        assert producer.is_alive()
        _kill(child)
        producer.join(60)
        assert not producer.is_alive()
    finally:
        reap(child)
    published, status, _ = result[0]
    assert (published, status) == (0, -4)                 # RINGBUS_CONSUMER_GONE
    ring.unlink()
    ring.close()


@pytest.mark.parametrize("kind", ["records", "messages"])
def test_a_new_consumer_resumes_and_the_batch_in_flight_comes_again_marked(name, kind):
    """The dead consumer was inside a handler: nothing of that batch was released, so the
    next consumer gets it again (at-least-once), marked redelivered; what follows is not
    marked, and nothing published is lost or duplicated beyond that batch."""
    ring = _make(kind, name, 64)
    first = 10
    for i in range(first):
        ring.publish((i, 0.0) if kind == "records" else str(i).encode())
    child = run(CONSUMER, kind, name, "3")
    try:
        line = child.stdout.readline().split()
        assert line[0] == "leased"
        line = child.stdout.readline().split()
        assert line[0] == "stuck", child.stderr.read()
        _kill(child)
    finally:
        reap(child)
    for i in range(first, first + 5):
        ring.publish((i, 0.0) if kind == "records" else str(i).encode())
    got = []

    def handler(item):
        ev = ringbus.current_event()
        seqs = (item["seq"].tolist() if kind == "records" else [int(bytes(item).decode())])
        got.extend((s, ev.redelivered) for s in seqs)

    ring.subscribe(handler)                 # takes the dead consumer's lease over
    ring.drain()
    seqs = [s for s, _ in got]
    if kind == "records":
        # One batch of 10 was in flight: all of it comes again, then the rest, unmarked.
        assert seqs == list(range(15))
        assert [again for _, again in got] == [True] * 10 + [False] * 5
    else:
        # Messages 0..3 were handled (3 was in hand) and none released: they come again.
        assert seqs == list(range(15))
        assert [again for _, again in got] == [True] * 4 + [False] * 11
    ring.subscribe(lambda item: None)
    ring.publish((99, 0.0) if kind == "records" else b"99")
    got.clear()
    ring.drain()
    assert [again for _, again in got] == [False]
    ring.unlink()
    ring.close()


def test_no_segment_is_left_behind():
    assert left_behind() == []
