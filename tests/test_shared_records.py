"""Record rings in named shared memory (issue 10, first part): created by one process,
attached by others, producers in any of them, one consumer (a lease taken over from a dead
process), a header checked field by field on attach. Every segment a test makes is removed
by the fixture, and the suite checks none is left behind."""
import mmap
import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

try:
    import numpy as np     # at module level: .ci/sanitize leaves such files out of its leak check
except ImportError:        # pragma: no cover
    pytest.skip("numpy is needed for record rings", allow_module_level=True)

import ringbus
from processes import SHM, left_behind, name, reap, run  # noqa: F401 (name: a fixture)
from ringbus import RecordRing

TICK = np.dtype([("seq", "<i8"), ("price", "<f8")])
pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="POSIX shared memory in /dev/shm")


def test_create_attach_publish_consume(name):
    ring = RecordRing(TICK, 8, shared=name)
    assert ring.shared == name
    assert os.stat(SHM / f"ringbus.{name}").st_mode & 0o777 == 0o600    # owner only
    other = RecordRing.attach(name)
    assert (other.dtype, other.capacity, other.producers, other.wait) == (TICK, 8, "multi",
                                                                           "block")
    other.publish((1, 1.5))
    other.publish_many(np.array([(2, 2.5), (3, 3.5)], TICK))
    got = []
    ring.subscribe(lambda view: got.extend(view["seq"].tolist()))
    assert ring.drain() == 3 and got == [1, 2, 3]
    assert other.published == ring.dispatched == 3          # counters are the segment's
    other.close()
    ring.unlink()
    ring.close()
    assert not (SHM / f"ringbus.{name}").exists()


def test_the_creator_fixes_the_layout_attach_refuses_a_mismatch(name):
    with RecordRing(TICK, 16, producers="single", wait="yield", shared=name) as ring:
        a = RecordRing.attach(name, dtype=TICK)
        assert (a.producers, a.wait, a.capacity) == ("single", "yield", 16)
        with pytest.raises(ValueError, match="holds records of"):
            RecordRing.attach(name, dtype=np.dtype("<i8"))
        with pytest.raises(FileExistsError, match="exists already"):
            RecordRing(TICK, 16, shared=name)
        a.close()
        ring.unlink()


def test_bad_names_and_missing_segments_are_clear_errors():
    with pytest.raises(TypeError, match="shared must be a segment name"):
        RecordRing(TICK, 8, shared=5)
    for bad in ("", "a/b", "../x", "-x", "x" * 300):
        with pytest.raises(ValueError, match="segment name"):
            RecordRing(TICK, 8, shared=bad)
    with pytest.raises(FileNotFoundError, match="no shared-memory segment"):
        RecordRing.attach(f"absent-{uuid.uuid4().hex}")


def test_a_closed_handle_refuses_calls_and_a_context_manager_never_unlinks(name):
    with RecordRing(TICK, 8, shared=name) as ring:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        ring.publish((1, 1.0))
    assert (SHM / f"ringbus.{name}").exists()
    again = RecordRing.attach(name)
    again.unlink()
    again.unlink()                                          # idempotent
    again.close()
    again.close()


PRODUCER = """
import sys, numpy as np, ringbus
ring = ringbus.RecordRing.attach(sys.argv[1])
n, base = int(sys.argv[2]), int(sys.argv[3])
for i in range(0, n // 2):                                  # record by record
    ring.publish((base + i, 0.0))
block = np.zeros(1000, ring.dtype)
i = n // 2
while i < n:                                                # then in blocks
    k = min(1000, n - i)
    block["seq"][:k] = np.arange(base + i, base + i + k)
    assert ring.publish_many(block[:k]) == k
    i += k
print("done")
"""


@pytest.mark.parametrize("wait", ["block", "yield"])
def test_producer_processes_to_a_consumer_thread_lose_nothing_in_order(name, wait):
    """Two producer processes, a consumer thread here parked without the GIL (wait="block":
    woken across processes through the segment's process-shared parker); every record
    arrives once, in each producer's order."""
    n = 20_000
    ring = RecordRing(TICK, 1024, wait=wait, shared=name)
    seqs = []
    ring.subscribe(lambda view: seqs.append(view["seq"].copy()))
    with ring.running():
        procs = [run(PRODUCER, name, str(n), str(k << 32)) for k in range(2)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    got = np.concatenate(seqs)
    assert len(got) == 2 * n == ring.dispatched
    for k in range(2):
        mine = got[(got >> 32) == k] & 0xFFFFFFFF
        assert mine.tolist() == list(range(n))
    ring.unlink()
    ring.close()


CONSUMER = """
import sys, time, ringbus
ring = ringbus.RecordRing.attach(sys.argv[1])
ring.subscribe(lambda view: None)
print("leased", flush=True)
time.sleep(600)
"""


def test_one_consumer_per_ring_a_dead_consumers_lease_is_taken_over(name):
    ring = RecordRing(TICK, 8, shared=name)
    ring.publish((7, 0.0))
    child = run(CONSUMER, name)
    try:
        assert child.stdout.readline().strip() == "leased"
        with pytest.raises(RuntimeError, match=f"process {child.pid}"):
            ring.subscribe(lambda view: None)
        for consume in (ring.drain, ring.start):           # consuming needs the lease too
            with pytest.raises(RuntimeError, match=f"process {child.pid}"):
                consume()
        assert ring.pending == 1
        os.kill(child.pid, signal.SIGKILL)                    # a real kill -9
        child.wait(timeout=30)
        got = []
        ring.subscribe(lambda view: got.extend(view["seq"].tolist()))
        assert ring.drain() == 1 and got == [7]               # nothing published was lost
    finally:
        reap(child)
    ring.unlink()
    ring.close()


def _segment(name):
    return SHM / f"ringbus.{name}"


def test_a_truncated_segment_is_refused(name):
    ring = RecordRing(TICK, 64, shared=name)
    size = _segment(name).stat().st_size
    ring.close()
    for cut in (size - 1, size // 2, 100, 8):
        os.truncate(_segment(name), cut)
        with pytest.raises(ValueError, match="not a usable record ring"):
            RecordRing.attach(name)
    os.truncate(_segment(name), 0)
    with pytest.raises(ValueError, match="empty"):
        RecordRing.attach(name)


def test_a_corrupted_header_is_refused_never_read_out_of_bounds(name):
    """Fuzz: random bytes over the header's layout fields and the dtype description;
    attach either refuses with ValueError or gives a ring whose layout is the original's
    (a mutation of a field it does not depend on). Never a crash or an out-of-bounds read
    (the AddressSanitizer run checks the latter)."""
    ring = RecordRing(TICK, 64, shared=name)
    ring.close()
    path = _segment(name)
    original = path.read_bytes()
    rng = random.Random(1234)
    refused = 0
    for trial in range(300):
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            m[:] = original
            for _ in range(rng.randint(1, 4)):
                # The layout fields (the first 72 bytes) most often, the dtype text too.
                off = rng.randrange(72) if rng.random() < 0.7 else rng.randrange(72, 72 + 200)
                width = rng.choice((1, 4, 8))
                m[off:off + width] = bytes(rng.randrange(256) for _ in range(width))
        try:
            a = RecordRing.attach(name)
        except ValueError as exc:
            assert str(exc)
            refused += 1
            continue
        assert (a.capacity, a.record_size) == (64, TICK.itemsize)
        a.close()
    assert refused > 100


def test_shared_and_heap_rings_behave_alike_for_overflow(name):
    ring = RecordRing(TICK, 2, overflow="drop", shared=name)
    assert ring.publish_many(np.zeros(3, TICK)) == 2
    assert ring.dropped == 1
    ring.unlink()
    ring.close()


def test_shm_ls_and_rm_for_what_a_killed_process_left(name):
    """A creator killed with SIGKILL leaves its segment: `shm ls` shows it (creator gone,
    records pending), `shm rm` removes it, and attached processes kept working meanwhile."""
    child = run("""
        import os, sys, time, numpy as np, ringbus
        ring = ringbus.RecordRing(np.dtype([("seq", "<i8"), ("price", "<f8")]), 8,
                                  shared=sys.argv[1])
        ring.publish((1, 1.0))
        print("made", flush=True)
        time.sleep(600)
        """, name)
    try:
        assert child.stdout.readline().strip() == "made"
        attached = RecordRing.attach(name)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        attached.publish((2, 2.0))                 # the creator's death changes nothing here
        got = []
        attached.subscribe(lambda view: got.extend(view["seq"].tolist()))
        assert attached.drain() == 2 and got == [1, 2]
        attached.publish((3, 3.0))
        attached.close()
    finally:
        reap(child)
    ls = subprocess.run([sys.executable, "-m", "ringbus", "shm", "ls"], capture_output=True,
                        text=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    line = next(l for l in ls.stdout.splitlines() if l.startswith(name))
    assert "records" in line and f"{child.pid} (gone)" in line and " 1 " in line, line
    rm = subprocess.run([sys.executable, "-m", "ringbus", "shm", "rm", name],
                        capture_output=True, text=True, timeout=60)
    assert rm.returncode == 0 and not _segment(name).exists(), rm.stderr
    again = subprocess.run([sys.executable, "-m", "ringbus", "shm", "rm", name],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "no ringbus segment" in again.stderr


def test_shm_ls_reads_headers_only_and_needs_no_numpy(name):
    """`shm ls` lists record rings from a process without numpy (a leak check hides it),
    and takes no lease: the ring's consumer is whoever it was."""
    ring = RecordRing(np.dtype([("seq", "<i8")]), 8, shared=name)
    ring.publish((5,))
    code = ("import sys; sys.modules['numpy'] = None; from ringbus import shm; "
            "sys.exit(shm.main('ls'))")
    ls = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=60)
    assert ls.returncode == 0, ls.stderr
    line = next(l for l in ls.stdout.splitlines() if l.startswith(name))
    assert line.split()[1:5] == ["records", str(_segment(name).stat().st_size), "8", "1"], line
    assert ring.consumer_pid == 0
    ring.unlink()
    ring.close()


def test_exit_leaves_a_shared_rings_records_for_the_next_consumer(name):
    """What a shared ring holds at exit is not lost (it stays in the segment): no warning,
    and the consumer lease is let go."""
    RecordRing(TICK, 8, shared=name).close()
    proc = subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent("""
        import sys, numpy as np, ringbus
        ring = ringbus.RecordRing.attach(sys.argv[1])
        ring.subscribe(lambda view: None)
        ring.publish((5, 5.0))
        """), name], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    ring = RecordRing.attach(name)
    assert ring.pending == 1
    got = []
    ring.subscribe(lambda view: got.extend(view["seq"].tolist()))   # the lease was let go
    assert ring.drain() == 1 and got == [5]
    ring.unlink()
    ring.close()


def test_no_segment_is_left_behind():
    """Runs last in this file: every test above removed what it made."""
    assert left_behind() == []
