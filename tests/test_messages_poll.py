"""MessageRing's other consumer verbs (issue 12, a bridge in its own process): poll() takes
messages without committing them, commit() releases what was handled; a consumer process
killed in between leaves the rest to the next, with the same sequences. And the ring's
identity, which tells a ring from a later one made under the same name."""
import os
import signal
import subprocess
import threading
import time

import pytest

import ringbus
from processes import SHM, name, reap, run  # noqa: F401  (name: a fixture)
from ringbus import MessageRing

pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="POSIX shared memory in /dev/shm")


def test_poll_copies_without_committing_and_commit_releases():
    ring = MessageRing(4096)
    ring.publish_many([b"a", b"bb", b"ccc"])
    got = ring.poll()
    assert [m for _, m in got] == [b"a", b"bb", b"ccc"]
    seqs = [s for s, _ in got]
    assert seqs == sorted(seqs) and all(isinstance(s, int) for s in seqs)
    assert ring.poll() == []                      # nothing past what was polled
    assert ring.committed == -1 and ring.pending == 3
    assert ring.commit(seqs[1]) == 2
    assert ring.committed == seqs[1] and ring.pending == 1 and ring.dispatched == 2
    assert ring.commit(seqs[0]) == 0              # at or below the committed: nothing
    assert ring.commit(seqs[2]) == 1 and ring.pending == 0
    ring.close()


def test_commit_refuses_what_poll_did_not_return():
    ring = MessageRing(4096)
    ring.publish_many([b"x" * 20, b"y"])
    (s0, _), = ring.poll(1)
    with pytest.raises(ValueError, match="past what poll"):
        ring.commit(s0 + 1)                       # the next message: not polled
    with pytest.raises(ValueError, match="inside a message"):
        ring.commit(s0 - 1)
    with pytest.raises(TypeError, match="sequence must be an int"):
        ring.commit("1")
    assert ring.committed == -1 and ring.pending == 2
    ring.close()


def test_poll_checks_its_arguments_and_its_consumer():
    ring = MessageRing(4096)
    with pytest.raises(ValueError, match="max_messages"):
        ring.poll(0)
    with pytest.raises(ValueError, match="timeout"):
        ring.poll(timeout=-1)
    ring.subscribe(lambda v: None)
    with pytest.raises(RuntimeError, match="handlers"):
        ring.poll()
    ring.close()


def test_uncommitted_slots_stay_the_rings_until_commit():
    ring = MessageRing(64, overflow="raise")       # 8 slots: two messages of 9..24 bytes
    assert ring.try_publish(b"1" * 20) and ring.try_publish(b"2" * 20)
    got = ring.poll()
    assert len(got) == 2
    assert not ring.try_publish(b"3" * 20)        # polled is not released
    ring.commit(got[0][0])
    assert ring.try_publish(b"3" * 20)
    ring.close()


def test_rewind_polls_the_uncommitted_again_with_the_same_sequences():
    ring = MessageRing(4096)
    ring.publish_many([b"%d" % i for i in range(5)])
    first = ring.poll()
    ring.commit(first[1][0])
    ring.rewind()
    assert ring.poll() == first[2:]
    ring.close()


def test_poll_waits_up_to_its_timeout_for_a_first_message():
    ring = MessageRing(4096)
    t0 = time.monotonic()
    assert ring.poll(timeout=0.05) == []
    assert time.monotonic() - t0 >= 0.04
    later = threading.Timer(0.05, ring.publish, args=(b"late",))
    later.start()
    try:
        got = ring.poll(timeout=10)
    finally:
        later.join()
    assert [m for _, m in got] == [b"late"]
    ring.close()


POLLER = """
import sys, time, ringbus
ring = ringbus.MessageRing.attach(sys.argv[1])
got = ring.poll(10)
ring.commit(got[4][0])
print(" ".join(str(s) for s, _ in got), flush=True)
time.sleep(600)                     # killed here: 5 polled, not committed
"""


def test_a_poller_killed_before_its_commit_leaves_the_rest_to_the_next(name):
    ring = MessageRing(4096, shared=name)
    ring.publish_many([b"m%d" % i for i in range(10)])
    child = run(POLLER, name)
    try:
        seqs = [int(s) for s in child.stdout.readline().split()]
        assert len(seqs) == 10, child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        reap(child)
    assert ring.committed == seqs[4] and ring.pending == 5
    again = MessageRing.attach(name)
    got = again.poll()
    # The same messages at the same sequences: what a bridge's ids are made of.
    assert got == [(s, b"m%d" % i) for i, s in enumerate(seqs)][5:]
    assert again.redelivered == 5
    again.commit(got[-1][0])
    assert ring.pending == 0 and ring.dispatched == 10
    again.close()
    ring.unlink()
    ring.close()


def test_identity_names_one_ring_even_across_a_name_made_again(name):
    ring = MessageRing(4096, shared=name)
    same = MessageRing.attach(name)
    assert same.identity == ring.identity and ring.identity.startswith(f"{name}.{os.getpid()}.")
    first = ring.identity
    same.close()
    ring.unlink()
    ring.close()
    later = MessageRing(4096, shared=name)      # same name, same creator: a new nonce
    assert later.identity != first and later.identity.startswith(f"{name}.{os.getpid()}.")
    later.unlink()
    later.close()
    assert MessageRing(64).identity.startswith("-.")


def test_poll_skips_a_dead_producers_claim_and_commit_steps_over_it(name):
    from test_xproc_faults import _go_on, _half, _origin
    ring = MessageRing(4096, unblock_timeout=0.2, shared=name)
    dead = _half("messages", name, 0, 3, 1, 0)       # 3 published, then a claim held
    try:
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait(30)
    finally:
        reap(dead)
    other = _half("messages", name, 1, 2, 1, 2)
    try:
        _go_on(other)
    finally:
        reap(other)
    got, deadline = [], time.monotonic() + 30
    while len(got) < 3 + 5 and time.monotonic() < deadline:
        got += ring.poll(timeout=0.1)
    origins = [o for _, m in got for o in _origin("messages", m)]
    assert origins == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert ring.abandoned == 1
    ring.rewind()                               # the skipped claim is known: no wait again
    t0 = time.monotonic()
    again = ring.poll()
    again += ring.poll()                        # up to the claim, then past it at once
    assert again == got and time.monotonic() - t0 < 0.15
    assert ring.commit(got[-1][0]) == 8
    assert ring.pending == 0 and ring.abandoned == 1
    ring.unlink()
    ring.close()
