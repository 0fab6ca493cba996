"""MessageRing (issue 10): variable-length messages in frames that never wrap, padding at
the storage's end, several producers (threads and processes), one consumer handed read-only
memoryviews valid during the call, codecs for objects, the overflow rule of every ring, and
a header and frames checked so that a corrupted segment is refused, never read out of
bounds. Segments are removed by the fixture; none is left behind."""
import mmap
import os
import random
import signal
import struct
import subprocess
import sys
import textwrap
import threading

import pytest

import ringbus
from processes import SHM, left_behind, name, reap, run  # noqa: F401 (name: a fixture)
from ringbus import MessageRing, RingFull

needs_shm = pytest.mark.skipif(not SHM.is_dir(), reason="POSIX shared memory in /dev/shm")


def _message(producer, seq):
    """A message whose length and bytes follow from (producer, seq): a torn, shifted or
    misframed message shows."""
    length = 16 + (seq * 7 + producer * 13) % 200
    head = struct.pack("<qq", producer, seq)
    return head + bytes((seq + i) & 0xFF for i in range(length - 16))


def _check(view):
    producer, seq = struct.unpack_from("<qq", view)
    assert bytes(view) == _message(producer, seq), (producer, seq)
    return producer, seq


def test_messages_arrive_whole_in_order_across_the_storage_end():
    ring = MessageRing(1024)
    got = []
    ring.subscribe(lambda view: got.append(bytes(view)))
    rng = random.Random(7)
    sent = []
    for i in range(3000):
        m = bytes([i & 0xFF]) * rng.randint(0, ring.max_message // 3)
        while not ring.try_publish(m):
            ring.drain()
        sent.append(m)
    ring.drain()
    assert got == sent
    assert ring.stats()["published"] == ring.stats()["dispatched"] == 3000
    assert ring.pending == 0 and ring.stats()["pending_bytes"] == 0


def test_the_longest_message_fits_an_empty_ring_at_any_position():
    """max_message is half the storage less the header: with the padding before it, it
    always fits once the ring is empty, wherever the cursor stands."""
    ring = MessageRing(256)
    assert ring.max_message == 120
    got = []
    ring.subscribe(lambda view: got.append(len(view)))
    for shift in range(40):
        ring.publish(b"x" * (shift % 5))                   # move the cursor around
        ring.drain()
        assert ring.publish(b"y" * ring.max_message, timeout=0)
        ring.drain()
    assert got.count(120) == 40
    with pytest.raises(ValueError, match="longer than this ring takes.*max_message=120"):
        ring.publish(b"z" * 121)                           # never a wait
    with pytest.raises(ValueError, match="max_message"):
        ring.try_publish(b"z" * 121)
    assert ring.published == 80


def test_the_view_is_valid_during_the_call_only():
    ring = MessageRing(256)
    kept, writable = [], []

    def handler(view):
        kept.append(view)
        writable.append(not view.readonly)
        with pytest.raises(TypeError):
            view[0] = 0                                     # producers alone write

    ring.subscribe(handler)
    ring.publish(b"abc")
    ring.drain()
    assert writable == [False] and ring.errors == 0
    with pytest.raises(ValueError, match="released"):
        bytes(kept[0])


def test_a_handler_keeping_an_export_is_warned_once():
    np = pytest.importorskip("numpy")
    ring = MessageRing(256)
    arrays = []
    ring.subscribe(lambda view: arrays.append(np.frombuffer(view, np.uint8)))
    ring.publish(b"abcd")
    ring.publish(b"efgh")
    with pytest.warns(RuntimeWarning, match="kept an export"):
        ring.drain()
    assert not arrays[0].flags.writeable


def test_bad_input_is_refused_at_the_call():
    with pytest.raises(ValueError, match="power of two"):
        MessageRing(1000)
    with pytest.raises(ValueError, match="at least 64"):
        MessageRing(32)
    with pytest.raises(ValueError, match="producers"):
        MessageRing(1024, producers="many")
    with pytest.raises(ValueError, match="codec"):
        MessageRing(1024, codec="json")
    with pytest.raises(TypeError, match="encode"):
        MessageRing(1024, codec=object())
    with pytest.raises(ValueError, match="unblock_timeout"):
        MessageRing(1024, unblock_timeout=-1)
    with pytest.raises(TypeError, match="unblock_timeout"):
        MessageRing(1024, unblock_timeout="soon")
    ring = MessageRing(1024)
    with pytest.raises(TypeError, match="data must be a bytes-like object.*str"):
        ring.publish("text")
    with pytest.raises(TypeError, match="data must be a bytes-like"):
        ring.publish(None)
    with pytest.raises(ValueError, match="timeout"):
        ring.publish(b"x", timeout=-2)
    with pytest.raises(TypeError, match="handler must be callable"):
        ring.subscribe(42)
    with pytest.raises(ValueError, match="max_messages"):
        ring.drain(-1)
    with pytest.raises(RuntimeError, match="not initialised"):
        MessageRing.__new__(MessageRing).publish(b"x")
    assert ring.published == 0


def test_overflow_follows_the_rule_of_every_ring():
    ring = MessageRing(64, overflow="raise")          # 8 slots: room for 3 short frames
    for _ in range(4):
        ring.publish(b"12345678")                      # 2 slots each
    with pytest.raises(RingFull, match="overflow='raise'"):
        ring.publish(b"12345678")
    drop = MessageRing(64, overflow="drop")
    assert sum(drop.publish(b"12345678") for _ in range(6)) == 4
    assert drop.dropped == 2 and drop.stats()["dropped"] == 2
    block = MessageRing(64)
    for _ in range(4):
        block.publish(b"12345678")
    with pytest.raises(RingFull, match="timeout=0.05"):
        block.publish(b"12345678", timeout=0.05)
    assert not block.try_publish(b"12345678")
    assert block.dropped == 0 and block.pending == 4


def test_publish_many_and_drain_max_messages():
    ring = MessageRing(4096)
    got = []
    ring.subscribe(lambda view: got.append(bytes(view)))
    assert ring.publish_many([b"a", bytearray(b"bb"), memoryview(b"ccc")]) == 3
    assert ring.drain(2) == 2 and got == [b"a", b"bb"]
    assert ring.drain(0) == 0
    assert ring.drain() == 1 and got[-1] == b"ccc"
    full = MessageRing(64, overflow="raise")
    with pytest.raises(RingFull) as info:
        full.publish_many([b"12345678"] * 6)
    assert info.value.published == 4


def test_handler_errors_are_isolated_and_counted():
    ring = MessageRing(1024, on_error="log")
    seen = []

    def bad(view):
        raise ValueError("boom")

    ring.subscribe(bad)
    ring.subscribe(lambda view: seen.append(bytes(view)))
    ring.publish(b"one")
    ring.publish(b"two")
    assert ring.drain() == 2
    assert seen == [b"one", b"two"] and ring.errors == 2
    raising = MessageRing(1024, on_error="raise")
    raising.subscribe(bad)
    raising.publish(b"x")
    raising.publish(b"y")
    with pytest.raises(ValueError, match="boom"):
        raising.drain()
    assert raising.dispatched == 1 and raising.pending == 1   # the rest stays queued


@pytest.mark.parametrize("producers", ["multi", "single"])
@pytest.mark.parametrize("wait", ["block", "yield"])
def test_producer_threads_to_the_consumer_thread_lose_nothing(producers, wait):
    nthreads = 3 if producers == "multi" else 1
    n = 20_000
    ring = MessageRing(4096, producers=producers, wait=wait)
    expected = [0] * nthreads
    errors = []

    def on_message(view):
        p, s = _check(view)
        if s != expected[p]:
            errors.append((p, s, expected[p]))
        expected[p] = s + 1

    ring.subscribe(on_message)

    def produce(p):
        for s in range(n):
            ring.publish(_message(p, s))

    with ring.running():
        threads = [threading.Thread(target=produce, args=(p,)) for p in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and expected == [n] * nthreads
    assert ring.dispatched == ring.published == n * nthreads


PRODUCER = """
import struct, sys, ringbus
sys.path.insert(0, sys.argv[4])
from test_messages import _message
ring = ringbus.MessageRing.attach(sys.argv[1])
p, n = int(sys.argv[2]), int(sys.argv[3])
for s in range(n):
    ring.publish(_message(p, s))
print("done", flush=True)
"""


@needs_shm
@pytest.mark.parametrize("wait", ["block", "spin"])
def test_producer_processes_to_a_consumer_thread_lose_nothing_in_order(name, wait):
    """Two producer processes, frames of many lengths, a consumer thread here (with
    wait="block" parked on the segment's process-shared parker and woken from the other
    processes): every message once, whole, in each producer's order."""
    n = 20_000
    ring = MessageRing(1 << 14, wait=wait, shared=name)
    assert os.stat(SHM / f"ringbus.{name}").st_mode & 0o777 == 0o600
    expected = [0, 0]
    errors = []

    def on_message(view):
        p, s = _check(view)
        if s != expected[p]:
            errors.append((p, s))
        expected[p] = s + 1

    ring.subscribe(on_message)
    here = os.path.dirname(__file__)
    with ring.running():
        procs = [run(PRODUCER, name, str(p), str(n), here) for p in range(2)]
        try:
            for proc in procs:
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
        finally:
            for proc in procs:
                reap(proc)
    assert errors == [] and expected == [n, n]
    assert ring.stats()["dispatched"] == 2 * n
    ring.unlink()
    ring.close()


@needs_shm
def test_objects_cross_processes_through_the_pickle_codec(name):
    ring = MessageRing(1 << 16, codec="pickle", shared=name)
    child = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, ringbus
        ring = ringbus.MessageRing.attach(sys.argv[1])     # the ring's own codec
        assert ring.codec.name == "pickle"
        for i in range(100):
            ring.publish({"seq": i, "sym": "AAPL", "px": 101.25 + i, "qty": [i, i]})
        """), name], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    got = []
    ring.subscribe(got.append)
    assert ring.drain() == 100
    assert got == [{"seq": i, "sym": "AAPL", "px": 101.25 + i, "qty": [i, i]}
                   for i in range(100)]
    raw = MessageRing.attach(name, codec="bytes")              # raw bytes of any ring
    ring.publish(("x", 1))
    assert raw.published == 101
    raw.close()
    ring.unlink()
    ring.close()


def test_the_msgspec_codec():
    pytest.importorskip("msgspec")
    ring = MessageRing(4096, codec="msgspec")
    got = []
    ring.subscribe(got.append)
    ring.publish({"seq": 1, "px": 1.5})
    ring.publish([1, "a"])
    ring.drain()
    assert got == [{"seq": 1, "px": 1.5}, [1, "a"]]


class Upper:
    """A codec of the user's own."""
    def encode(self, obj):
        return obj.upper().encode()

    def decode(self, data):
        return bytes(data).decode()


@needs_shm
def test_attach_checks_kind_codec_and_layout(name):
    np = pytest.importorskip("numpy")
    ring = MessageRing(1024, codec=Upper(), producers="single", wait="yield",
                       unblock_timeout=0.25, shared=name)
    with pytest.raises(ValueError, match="made with the codec .*Upper.*pass the same codec"):
        MessageRing.attach(name)
    a = MessageRing.attach(name, codec=Upper())
    assert (a.capacity_bytes, a.producers, a.wait, a.unblock_timeout) == (1024, "single",
                                                                          "yield", 0.25)
    a.publish("hi")
    got = []
    ring.subscribe(got.append)
    ring.drain()
    assert got == ["HI"]
    with pytest.raises(ValueError, match="holds a MessageRing, not a RecordRing"):
        ringbus.RecordRing.attach(name)
    a.close()
    ring.unlink()
    ring.close()
    records = ringbus.RecordRing(np.dtype("<i8"), 8, shared=name)
    with pytest.raises(ValueError, match="holds a RecordRing, not a MessageRing"):
        MessageRing.attach(name)
    records.unlink()
    records.close()
    pickled = MessageRing(1024, codec="pickle", shared=name)
    with pytest.raises(ValueError, match="codec 'pickle', not 'custom:.*Upper'"):
        MessageRing.attach(name, codec=Upper())
    pickled.unlink()
    pickled.close()


@needs_shm
def test_one_consumer_per_ring_and_a_dead_consumers_lease_is_taken_over(name):
    ring = MessageRing(1024, shared=name)
    ring.publish(b"kept")
    child = run("""
        import sys, time, ringbus
        ring = ringbus.MessageRing.attach(sys.argv[1])
        ring.subscribe(lambda view: None)
        print("leased", flush=True)
        time.sleep(600)
        """, name)
    try:
        assert child.stdout.readline().strip() == "leased"
        with pytest.raises(RuntimeError, match=f"process {child.pid}"):
            ring.subscribe(lambda view: None)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        got = []
        ring.subscribe(lambda view: got.append(bytes(view)))
        assert ring.drain() == 1 and got == [b"kept"]
    finally:
        reap(child)
    ring.unlink()
    ring.close()


@needs_shm
def test_corrupted_frames_stop_the_consumer_with_an_error_never_a_wild_read(name):
    """Garbage over a frame header in the segment (what no ringbus producer writes): the
    consumer refuses that frame with RuntimeError, and reads nothing outside the storage."""
    ring = MessageRing(256, producers="single", shared=name)
    path = SHM / f"ringbus.{name}"
    storage = os.stat(path).st_size - 256             # the storage ends the segment
    rng = random.Random(99)
    got = []
    ring.subscribe(lambda view: got.append(bytes(view)))
    refused = 0
    for trial in range(200):
        ring.publish(b"m" * rng.randint(0, 60))
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            # Every frame header position of the storage: the one just written among them.
            for off in range(storage, storage + 256, 8):
                if rng.random() < 0.5:
                    m[off:off + 8] = struct.pack("<ii", rng.randint(-5, 1 << 20),
                                                 rng.randint(-5, 1 << 20))
        try:
            ring.drain()
        except RuntimeError as exc:
            assert "corrupt" in str(exc)
            refused += 1
            ring.close()
            ring.unlink()
            ring = MessageRing(256, producers="single", shared=name)
            ring.subscribe(lambda view: got.append(bytes(view)))
    assert refused > 50
    ring.unlink()
    ring.close()


@needs_shm
def test_shm_ls_lists_message_rings(name):
    ring = MessageRing(4096, shared=name)
    ring.publish(b"1")
    ls = subprocess.run([sys.executable, "-m", "ringbus", "shm", "ls"], capture_output=True,
                        text=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    line = next(l for l in ls.stdout.splitlines() if l.startswith(name))
    assert "messages" in line and f"{os.getpid()} (alive)" in line and " 4096 " in line, line
    ring.unlink()
    ring.close()


def test_no_segment_is_left_behind():
    assert left_behind() == []


@needs_shm
def test_a_producer_process_that_closes_and_exits_reports_nothing_at_exit(name):
    """What it published waits in the segment for the consumer: not lost, so no warning
    (a worker process leaves its results so to the parent)."""
    ring = MessageRing(1024, shared=name)
    child = run("""
        import sys, ringbus
        ring = ringbus.MessageRing.attach(sys.argv[1])
        ring.publish(b"result")
        ring.close()
        """, name)
    try:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0 and err == "", err
    finally:
        reap(child)
    got = []
    ring.subscribe(lambda view: got.append(bytes(view)))
    assert ring.drain() == 1 and got == [b"result"]
    ring.unlink()
    ring.close()
