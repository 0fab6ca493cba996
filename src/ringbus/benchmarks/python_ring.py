"""The pure-Python peer of the process cases: a single-producer single-consumer ring of 16-byte
records in ``multiprocessing.shared_memory``, written as a careful user would write one.

Layout: the producer's cursor (the next sequence it writes) at byte 0, the consumer's
sequence (the next it reads) at byte 64, each on its own cache line, then ``capacity``
records of ``(int64 seq, float64 value)``. Both indices are read and written through a
``memoryview.cast("q")``, that is as single aligned 8-byte loads and stores. Not through
``struct.pack_into``: it zero-fills its target before writing, so the other process could
read a cursor of 0 in between (PROCESS-ANCHORS.md). Records go either one by one through the
same cast views, or as numpy blocks copied into a structured view of the data area.

On x86-64 (total store order) a store of the cursor after the record's stores is enough for
the consumer to see the record once it sees the cursor; the interpreter between the stores
is no memory barrier a weaker CPU promises to honour, which is one more reason a compiled
ring uses C atomics.

Both sides poll: an empty consumer and a full producer spin (``busy=True``) or call
``os.sched_yield()`` between looks.
"""
from __future__ import annotations

import itertools
import os
import time
from multiprocessing import shared_memory
from typing import Any, Iterable, Optional

__all__ = ["PythonRing", "sequences", "BLOCK"]

_HEADER = 128                   # bytes: the cursor's cache line, then the consumer's
_CURSOR, _CONSUMER = 0, 8       # their indices in the int64 view
_DATA = _HEADER // 8            # the first record's index in the int64 view
#: Records per numpy block (the capacity is a multiple, so a block never wraps).
BLOCK = 1024


def sequences(n: int, skip: Optional[int] = None) -> Iterable[int]:
    """``0 .. n-1``, without ``skip`` (the tests' producer that loses one message)."""
    if skip is None or not 0 <= skip < n:
        return range(n)
    return itertools.chain(range(skip), range(skip + 1, n))


class PythonRing:
    """One side's handle of the ring: ``PythonRing(capacity)`` creates it, ``attach(name)``
    maps it in the other process."""

    def __init__(self, capacity: int = 65536, name: Optional[str] = None,
                 create: bool = True):
        if capacity % BLOCK or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two and a multiple of 1024")
        self.capacity = capacity
        self.mask = capacity - 1
        size = _HEADER + 16 * capacity
        self.shm = shared_memory.SharedMemory(name=name, create=create, size=size if create
                                              else 0)
        # An attaching process started by multiprocessing shares the creator's resource
        # tracker (Python < 3.13 registers attached segments too): the creator's unlink()
        # unregisters the name for both, so the attaching side must not unregister it.
        self.name = self.shm.name
        buf: Any = self.shm.buf
        self.q = buf.cast("q")
        self.d = buf.cast("d")
        if create:
            self.q[_CURSOR] = 0
            self.q[_CONSUMER] = 0
        self.stop = False           # set from another thread: an empty consumer gives up
        self._unlinked = not create

    @classmethod
    def attach(cls, name: str, capacity: int) -> "PythonRing":
        """The other process's handle of the ring ``name``."""
        return cls(capacity, name=name, create=False)

    def records(self) -> Any:
        """The data area as a numpy structured array ``[("seq", "<i8"), ("v", "<f8")]``."""
        import numpy as np
        return np.ndarray((self.capacity,), np.dtype([("seq", "<i8"), ("v", "<f8")]),
                          buffer=self.shm.buf, offset=_HEADER)

    # -- the producer ------------------------------------------------------------------------

    def stream(self, seqs: Iterable[int], value: float = 0.5, busy: bool = False) -> int:
        """Write one record per sequence number, publishing the cursor after each."""
        q, d, mask, cap = self.q, self.d, self.mask, self.capacity
        wait = None if busy else os.sched_yield
        head = q[_CURSOR]
        limit = q[_CONSUMER] + cap
        for i in seqs:
            while head >= limit:
                if wait is not None:
                    wait()
                limit = q[_CONSUMER] + cap
            j = _DATA + 2 * (head & mask)
            q[j] = i
            d[j + 1] = value
            head += 1
            q[_CURSOR] = head
        return head

    def send(self, i: int, value: float) -> None:
        """One record (the paced latency producer); spins while the ring is full."""
        q = self.q
        head = q[_CURSOR]
        while head - q[_CONSUMER] >= self.capacity:
            pass
        j = _DATA + 2 * (head & self.mask)
        q[j] = i
        self.d[j + 1] = value
        q[_CURSOR] = head + 1

    def stream_blocks(self, n: int, skip: Optional[int] = None, value: float = 0.5) -> int:
        """Write ``n`` records in numpy blocks of :data:`BLOCK`, one cursor store per block."""
        import numpy as np
        recs = self.records()
        block = np.zeros(BLOCK, recs.dtype)
        block["v"] = value
        ar = np.arange(BLOCK, dtype=np.int64)
        seq = block["seq"]
        q, cap, mask = self.q, self.capacity, self.mask
        wait = os.sched_yield
        head = q[_CURSOR]
        for b0 in range(0, n, BLOCK):
            k = min(BLOCK, n - b0)
            np.add(ar, b0, out=seq)
            out = block[:k]
            if skip is not None and b0 <= skip < b0 + k:
                out = np.delete(out, skip - b0)
                k -= 1
            while head + k - q[_CONSUMER] > cap:
                wait()
            s = head & mask
            first = min(k, cap - s)     # a block wraps only after a short one (skip)
            recs[s:s + first] = out[:first]
            if first < k:
                recs[:k - first] = out[first:]
            head += k
            q[_CURSOR] = head
        return head

    # -- the consumer (checks every record: count and order) -------------------------------

    def consume(self, n: int, latencies: Optional[list] = None,
                busy: bool = False) -> tuple[int, Optional[str]]:
        """Read until ``n`` records came or the last sequence number (n-1) did; check that
        they run 0, 1, 2, ...; return (records read, the first problem or None). With
        ``latencies``, append ``perf_counter_ns() - value`` per record (value: the stamp)."""
        q, d, mask = self.q, self.d, self.mask
        clock = time.perf_counter_ns
        wait = None if busy else os.sched_yield
        tail = q[_CONSUMER]
        nxt = got = 0
        last = n - 1
        error = None
        while got < n:
            head = q[_CURSOR]
            if head == tail:
                if self.stop:
                    break
                if wait is not None:
                    wait()
                continue
            while tail < head:
                j = _DATA + 2 * (tail & mask)
                s = q[j]
                if latencies is not None:
                    latencies.append(clock() - d[j + 1])
                if s != nxt and error is None:
                    error = f"record {got:,} has sequence {s:,}, expected {nxt:,}"
                nxt = s + 1
                got += 1
                tail += 1
            q[_CONSUMER] = tail
            if nxt > last:
                break
        return got, error

    def consume_blocks(self, n: int, check: Any) -> None:
        """Read whole runs of records as numpy views until ``n`` came or the last one did;
        ``check.array(seq_view)`` checks each run."""
        recs = self.records()
        seqs = recs["seq"]
        q, mask, cap = self.q, self.mask, self.capacity
        wait = os.sched_yield
        tail = q[_CONSUMER]
        array = check.array
        while check.count < n and check.next < n:
            head = q[_CURSOR]
            if head == tail:
                if self.stop:
                    break
                wait()
                continue
            s = tail & mask
            k = min(head - tail, cap - s)
            array(seqs[s:s + k])
            tail += k
            q[_CONSUMER] = tail

    def reset(self) -> None:
        """Empty the ring (between runs, with no producer writing)."""
        self.q[_CONSUMER] = self.q[_CURSOR]
        self.stop = False

    def unlink(self) -> None:
        """Remove the name (once the other process attached); the memory stays mapped."""
        if not self._unlinked:
            self._unlinked = True
            self.shm.unlink()

    def close(self) -> None:
        """Unmap (removing the name too if this handle created it and still has it)."""
        self.unlink()
        for view in (self.q, self.d):
            view.release()
        try:
            self.shm.close()
        except BufferError:         # a numpy view still alive: the mapping goes with it
            pass
