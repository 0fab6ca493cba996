"""Faults across processes (issue 10), each with a real SIGKILL: a consumer process killed
while producers wait for room (they get ConsumerGone, from Python and from the nogil C
API), and a new consumer that resumes where the dead one committed, delivering the batch in
flight again, marked redelivered."""
import os
import signal
import subprocess
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
    if kind == "messages":
        # A second consumer dies on the same message: redelivered messages are released one
        # by one, so only that message is left unreleased of what came again.
        assert ring.pending == 15
        child = run(CONSUMER, kind, name, "3")
        try:
            assert child.stdout.readline().split()[0] == "leased"
            assert child.stdout.readline().split()[0] == "stuck", child.stderr.read()
            _kill(child)
        finally:
            reap(child)
        assert ring.pending == 15 - 3 and ring.redelivered == 4
    got = []
    # What a ring handler emits on a bus is marked as its item is (a worker's bus).
    bus = ringbus.Bus()
    seen = bus.event_type("seen")
    emitted = []
    bus.subscribe(seen, lambda s: emitted.append((s, ringbus.current_event().redelivered)))

    def handler(item):
        ev = ringbus.current_event()
        seqs = (item["seq"].tolist() if kind == "records" else [int(bytes(item).decode())])
        got.extend((s, ev.redelivered) for s in seqs)
        bus.emit(seen, seqs[0])

    ring.subscribe(handler)                 # takes the dead consumer's lease over
    ring.drain()
    if kind == "messages":
        assert emitted == got
    else:                                   # one emit per batch: the redelivered one first
        assert emitted[0] == (0, True) and emitted[-1][1] is False
    seqs = [s for s, _ in got]
    if kind == "records":
        # One batch of 10 was in flight: all of it comes again, then the rest, unmarked.
        assert seqs == list(range(15))
        assert [again for _, again in got] == [True] * 10 + [False] * 5
    else:
        # Messages 0..3 were handled (3 was in hand) and none released: they came again,
        # 0..2 were released by the second consumer, 3 comes a third time.
        assert seqs == list(range(3, 15))
        assert [again for _, again in got] == [True] + [False] * 11
    assert ring.stats()["redelivered"] == ring.redelivered == (10 if kind == "records" else 5)
    ring.subscribe(lambda item: None)
    ring.publish((99, 0.0) if kind == "records" else b"99")
    got.clear()
    ring.drain()
    assert [again for _, again in got] == [False]
    ring.unlink()
    ring.close()


def test_no_segment_is_left_behind():
    assert left_behind() == []


# -- a producer killed between claiming and publishing -----------------------------------

# A producer process: publishes `before` items, claims `hold` slots (or one 16-byte message) and publishes nothing more until a line arrives on stdin (it may be killed or
# stopped meanwhile); then publishes the claim and `after` more.
HALF_PRODUCER = """
import sys, numpy as np, ringbus
from ringbus._records import _claim_unpublished, _publish_claimed
kind, name, tag, before, hold, after = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
TICK = np.dtype([("seq", "<i8"), ("price", "<f8")])
if kind == "records":
    ring = ringbus.RecordRing.attach(name)
    item = lambda i: ((tag << 32) | i, 0.0)
else:
    ring = ringbus.MessageRing.attach(name)
    item = lambda i: b"%d:%d" % (tag, i)
for i in range(before):
    ring.publish(item(i))
lo, hi = _claim_unpublished(ring, hold if kind == "records" else 16)
print("claimed", lo, hi, flush=True)
sys.stdin.readline()
if kind == "records":
    block = np.array([item(before + k) for k in range(hold)], TICK)
    _publish_claimed(ring, lo, hi, block.view(np.uint8))
    done = before + hold
else:
    _publish_claimed(ring, lo, hi, item(before).ljust(16, b" "))
    done = before + 1
for i in range(done, done + after):
    ring.publish(item(i))
print("done", flush=True)
"""


def _origin(kind, item):
    """(producer tag, index) of each delivered record or message."""
    if kind == "records":
        return [(int(s) >> 32, int(s) & 0xFFFFFFFF) for s in item["seq"]]
    tag, i = bytes(item).strip().split(b":")
    return [(int(tag), int(i))]


def _wait_for(predicate, what, seconds=60):
    import time
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _shared(kind, name, producers="multi"):
    if kind == "records":
        return ringbus.RecordRing(TICK, 256, producers=producers, unblock_timeout=0.2,
                                  shared=name)
    return MessageRing(4096, producers=producers, unblock_timeout=0.2, shared=name)


def _half(kind, name, tag, before, hold, after):
    child = run(HALF_PRODUCER, kind, name, str(tag), str(before), str(hold), str(after),
                stdin=subprocess.PIPE)
    line = child.stdout.readline().split()
    assert line and line[0] == "claimed", child.stderr.read()
    return child


def _go_on(child):
    child.stdin.write("\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "done", child.stderr.read()
    child.wait(timeout=60)


def _in_order(got, tag, n):
    return [i for t, i in got if t == tag] == list(range(n))


@pytest.mark.parametrize("kind", ["records", "messages"])
@pytest.mark.parametrize("consumer", ["thread", "drain"])
def test_a_killed_producers_claim_is_skipped_once_it_is_dead(name, kind, consumer):
    """Producer 0 claims and is killed with SIGKILL before publishing; producer 1 goes on.
    After unblock_timeout the consumer skips the dead claim (counted in abandoned) and
    delivers everything else once, in each producer's order."""
    ring = _shared(kind, name)
    got = []
    ring.subscribe(lambda item: got.extend(_origin(kind, item)))
    if consumer == "thread":
        ring.start()
    dead = _half(kind, name, 0, 20, 5, 0)
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(timeout=30)
    finally:
        reap(dead)
    other = _half(kind, name, 1, 30, 4, 10)
    try:
        _go_on(other)
    finally:
        reap(other)
    total = 20 + 30 + (4 if kind == "records" else 1) + 10

    def delivered():
        if consumer == "drain":
            ring.drain()
        return len(got) == total

    _wait_for(delivered, f"only {len(got)} of {total} delivered: the dead claim stalls the ring")
    if consumer == "thread":
        ring.stop()
    assert _in_order(got, 0, 20) and _in_order(got, 1, total - 20)
    assert ring.stats()["abandoned"] == (5 if kind == "records" else 1)
    assert ring.pending == 0 and ring.dispatched == total
    ring.unlink()
    ring.close()


@pytest.mark.parametrize("kind", ["records", "messages"])
def test_a_stalled_producers_claim_is_never_skipped(name, kind):
    """Producer 0 claims and is stopped (SIGSTOP) for several unblock_timeouts while
    producer 1 publishes behind it: its claim is not skipped, nothing after it is delivered
    out of order, and once it resumes everything arrives, none abandoned."""
    ring = _shared(kind, name)
    got = []
    ring.subscribe(lambda item: got.extend(_origin(kind, item)))
    ring.start()
    slow = _half(kind, name, 0, 10, 3, 5)
    other = None
    try:
        os.kill(slow.pid, signal.SIGSTOP)
        other = _half(kind, name, 1, 0, 2, 20)
        _go_on(other)
        import time
        time.sleep(1.0)                                   # five unblock_timeouts
        assert ring.stats()["abandoned"] == 0
        assert [t for t, _ in got] == [0] * 10            # held behind the claim, in order
        os.kill(slow.pid, signal.SIGCONT)
        _go_on(slow)
    finally:
        if slow.poll() is None:
            os.kill(slow.pid, signal.SIGCONT)
        reap(slow)
        if other is not None:
            reap(other)
    held = 3 if kind == "records" else 1
    total = 10 + held + 5 + (2 if kind == "records" else 1) + 20
    _wait_for(lambda: len(got) == total, f"{len(got)} of {total} delivered")
    ring.stop()
    assert _in_order(got, 0, 10 + held + 5) and _in_order(got, 1, total - 10 - held - 5)
    assert ring.stats()["abandoned"] == 0
    ring.unlink()
    ring.close()


@pytest.mark.parametrize("kind", ["records", "messages"])
def test_a_single_producer_ring_has_one_producer_and_a_new_one_starts_at_the_cursor(
        name, kind):
    """producers="single" across processes: a second live producer is refused; once the
    first is killed (with a claim it never published) the next takes over from what was
    published, so the dead one's claimed slots never reach the consumer."""
    ring = _shared(kind, name, producers="single")
    dead = _half(kind, name, 0, 7, 3, 0)
    try:
        with pytest.raises(RuntimeError, match=f"single producer already: process {dead.pid}"):
            ring.publish((1, 0.0) if kind == "records" else b"1:0")
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(timeout=30)
    finally:
        reap(dead)
    ring.publish(((1 << 32) | 0, 0.0) if kind == "records" else b"1:0")
    got = []
    ring.subscribe(lambda item: got.extend(_origin(kind, item)))
    ring.drain()
    assert got == [(0, i) for i in range(7)] + [(1, 0)]
    assert ring.stats()["abandoned"] == 0 and ring.pending == 0
    ring.unlink()
    ring.close()


HOLDER = """
import sys, time, ringbus
ring = ringbus.MessageRing.attach(sys.argv[1])
ring._hold_parker()          # what a producer killed in the middle of a wake-up leaves
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("step", ["publish", "stop"])
def test_a_process_killed_holding_the_parker_mutex_does_not_stall_the_ring(name, step):
    # The parker's mutex is process-shared and robust: the next process to lock it (a
    # producer waking the consumer, the consumer parking again, stop() waking it) takes it
    # over from the dead holder instead of waiting for ever.
    ring = MessageRing(1 << 16, shared=name, wait="block")
    got = []
    ring.subscribe(lambda view: got.append(bytes(view)))
    ring.start()
    holder = run(HOLDER, name)
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        holder.kill()
        holder.wait(timeout=30)
        done = threading.Event()

        def act():
            if step == "publish":
                ring.publish(b"after the holder died")
                while not got:
                    threading.Event().wait(0.01)
            ring.stop(drain=True, timeout=5.0)
            done.set()
        actor = threading.Thread(target=act, daemon=True)
        actor.start()
        assert done.wait(30), "the ring stalled on the dead process's mutex"
        if step == "publish":
            assert got == [b"after the holder died"]
    finally:
        reap(holder)
        ring.unlink()
        ring.close()


def test_no_segment_is_left_behind_by_the_fault_tests():
    assert left_behind() == []


DEAD_WAITER = """
import subprocess, sys, time, ringbus
name = sys.argv[1]
ring = ringbus.MessageRing(4096, shared=name)        # wait="block": consumers park
parked = subprocess.Popen([sys.executable, "-c", (
    "import ringbus, time\\n"
    f"r = ringbus.MessageRing.attach({name!r})\\n"
    "r.subscribe(lambda v: None)\\n"
    "r.start()\\n"
    "print('started', flush=True)\\n"
    "time.sleep(600)\\n")], stdout=subprocess.PIPE, text=True)
parked.stdout.readline()
time.sleep(0.3)                                     # idle: parked
parked.kill()
parked.wait()
again = ringbus.MessageRing.attach(name)            # the next consumer parks too
got = []
again.subscribe(lambda v: got.append(bytes(v)))
again.start()
time.sleep(0.2)
for i in range(5):
    ring.publish(b"x")                              # each a wake-up
    time.sleep(0.02)
again.stop()
print("delivered", len(got), flush=True)
ring.unlink()
"""


def test_a_process_killed_while_parked_does_not_hang_the_next_wake_up(name):
    # A consumer process killed while it sleeps in the ring's parker: the next consumer parks
    # too, and the producer's wake-ups reach it. With a process-shared glibc condition
    # variable the dead waiter made the next broadcast wait for ever (5 runs in 6, holding
    # the GIL); parked threads now sleep on a futex word, which a dead sleeper leaves as it
    # was. Three rounds, each in a child with a deadline.
    for round_ in range(3):
        child = run(DEAD_WAITER, f"{name}-{round_}")
        try:
            out, err = child.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            out = "hung"
        finally:
            reap(child)
            try:
                os.unlink(f"/dev/shm/ringbus.{name}-{round_}")
            except FileNotFoundError:
                pass
        assert out.strip() == "delivered 5", (out, err[-2000:])
