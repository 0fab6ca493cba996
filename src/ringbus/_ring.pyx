"""Compiled ring buffer: queued publish, consumers on this thread or on their own threads.

The lock-free algorithms (sequencers, barriers, gating, park/wake) live in ``_ringbuffer.h``,
written once over the atomics layer of ``_atomic.h`` and model-checked by ``tests/relacy``.
``RingBuffer`` is a face of the ring driver (``_driver.pyx``: consumer threads, stop/drain,
blocking claim, the consuming-thread registry); this module adds the object slot codec
(payload references moved in and out), overflow policies, stages and the follow-up backlog.

Ownership of a payload: ``publish`` stores one strong reference in the slot. The last stage
(the only stage, usually ``"dispatch"``) moves that reference out of the slot before it
dispatches, so the ring holds nothing once an event is dispatched. When a pipeline ends in
several stages, none of them can know it is the last to read a slot: the reference is then
released by the producer that reuses the slot (or when the ring is freed).
"""
cimport cython
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.long cimport PyLong_CheckExact, PyLong_AsSsize_t
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.stdint cimport int32_t, int64_t, INT64_MAX
from libc.stdlib cimport free

from ringbus._atomic cimport (
    RB_CACHELINE, rb_sequence, rb_atomic_i32, rb_load_relaxed_i32, rb_fetch_add_relaxed_i64,
    rb_load_relaxed_i64, rb_sequence_get, rb_sequence_get_own, rb_sequence_set,
    rb_sequence_init, rb_monotonic, rb_deadline_in, rb_no_deadline,
)
from ringbus._ringbuffer cimport (
    RB_MAX_GATING, RB_WAIT_BLOCK, RB_WAIT_SPIN, RB_WAIT_YIELD, RB_WAIT_SLEEP, RB_STOP_NOW,
    rb_ring, rb_slot, rb_consumer, rb_ring_init, rb_ring_destroy, rb_min_gating, rb_claimed,
    rb_claim_upto, rb_room_for, rb_slot_write, rb_publish, rb_barrier_available, rb_slot_read,
    rb_wake, rb_park_begin, rb_park_wait, rb_park_end, rb_wait_for, rb_consumer_init,
    rb_consuming_find, rb_consuming_bind, rb_ring_sequencer,
)
from ringbus._dispatch cimport DispatchTable, clock_is_tsc, clock_mult
from ringbus._histogram cimport rb_meter, rb_hist_record
from ringbus._driver cimport Consumer, Driver, consuming_head, deadline_after, time_left
from ringbus._signal cimport rb_signal, rb_signal_init, rb_signal_arm, rb_signal_take

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from "_ticks.h" nogil:
    unsigned long long rb_ticks_read(int tsc)
    unsigned long long rb_ticks_ns(unsigned long long ticks, int tsc, unsigned long long mult)

cdef extern from "<unistd.h>" nogil:
    ssize_t write(int fd, const void *buf, size_t count)

import collections
import logging
import operator
import threading
from contextlib import contextmanager

from ringbus._checks import bool_arg, int_arg, power_of_two_arg
from ringbus._driver import RingFull, ConsumerGone

_log = logging.getLogger("ringbus")

# The consuming-thread registry is the driver's, one for the whole process.
rb_consuming_bind(consuming_head)


cdef enum:
    OVERFLOW_BLOCK = 0
    OVERFLOW_RAISE = 1
    OVERFLOW_DROP = 2
    # A long drain checks for signals (Ctrl-C) every this many events.
    SIGNAL_CHECK_EVERY = 256

# The largest ring: 2**30 slots of 16 bytes is 16 GiB already.
cdef Py_ssize_t MAX_CAPACITY = 1 << 30

_OVERFLOW = {"block": OVERFLOW_BLOCK, "raise": OVERFLOW_RAISE, "drop": OVERFLOW_DROP}
_WAIT = {"block": RB_WAIT_BLOCK, "spin": RB_WAIT_SPIN, "yield": RB_WAIT_YIELD,
         "sleep": RB_WAIT_SLEEP}
_PRODUCERS = {"single": 0, "multi": 1}
_ON_ERROR = ("log", "raise")

DISPATCH = "dispatch"


cdef void *_aligned(size_t size) noexcept:
    """Cache-line aligned memory, or NULL. Shared atomics live here, never inside a Python
    object (which CPython aligns to 16 bytes only)."""
    cdef void *p = NULL
    if posix_memalign(&p, RB_CACHELINE, size) != 0:
        return NULL
    return p


cdef inline void _signal(int fd) noexcept:
    """Wake the event-loop consumer: its loop watches ``fd`` (an eventfd or a pipe). A full
    counter or pipe (EAGAIN) means a wake-up is pending already."""
    cdef unsigned long long one = 1
    write(fd, &one, 8)


def _choice(what, value, table):
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, table))}, got {value!r}")
    return table[value]


cdef double timeout_arg(object timeout) except? -2:
    """None -> -1 (no timeout); a number >= 0 -> itself; anything else -> ValueError."""
    if timeout is None:
        return -1
    cdef double t
    try:
        t = timeout
    except TypeError:
        raise TypeError(f"timeout must be None or a number of seconds, got "
                        f"{type(timeout).__name__} {timeout!r}") from None
    if not t >= 0:      # also refuses NaN
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    return t


cdef inline Py_ssize_t _event_type_arg(object event_type) except -1:
    cdef Py_ssize_t t
    if PyLong_CheckExact(event_type):       # the common case, without a Python-level call
        t = PyLong_AsSsize_t(event_type)
        if t >= 0:
            return t
    if (isinstance(event_type, (str, bytes, bool))
            or not hasattr(type(event_type), "__index__")):
        raise TypeError(f"event_type must be an int id, got "
                        f"{type(event_type).__name__}: {event_type!r}")
    t = operator.index(event_type)
    if t < 0:
        raise ValueError(f"event_type must be >= 0, got {event_type!r}")
    return t


cdef int _unknown_id(DispatchTable table, int64_t t, object payload) except -1:
    """An id the table does not have reached its consumer (``bus.ring.publish`` before the
    ring knew its table). No event may kill a consumer: it counts as a handler error under the
    table's policy (logged, passed to the callable, or raised under on_error="raise"), and the
    consumer goes on with the next event."""
    try:
        table.check_id(t)
    except ValueError as exc:
        table._handler_errors += 1
        if table._raise_errors:
            raise
        if table._error_sink is not None:
            table._error_sink(t, payload, None, exc)
        else:
            _log.error("ringbus: event of unknown type %d dropped at dispatch", t, exc_info=exc)
    return 0


cdef class Stage(Consumer):
    """One consumer of a :class:`RingBuffer`, with its own sequence and (once started) thread.

    A stage sees an event only after every stage it runs ``after`` has processed it; the
    producer waits only for the last stages. Made by :meth:`RingBuffer.stage`.
    """

    def __cinit__(self, *args, **kwargs):
        self._after = ()
        self._on_error = "log"

    def __init__(self, *args, **kwargs):
        raise TypeError("stages are made by RingBuffer.stage(name, handler, after=...)")

    @property
    def sequence(self):
        """The highest sequence this stage has finished with (-1: none yet)."""
        return rb_sequence_get(&self._c.sequence)

    @property
    def after(self):
        """Names of the stages this one runs after."""
        return tuple(s.name for s in self._after)

    @property
    def handler(self):
        """What the stage runs: a callable, a DispatchTable, or None (the ``dispatch`` stage
        of a ring, which dispatches to the table given to ``drain``/``start``)."""
        return self._table if self._table is not None else self._handler

    @property
    def running(self):
        """Whether the stage's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def exception(self):
        """The exception that ended the stage's last thread, or None."""
        return self._exception

    def __repr__(self):
        return (f"<ringbus Stage {self.name!r} after={self.after!r} "
                f"sequence={self.sequence} running={self.running}>")

    cdef int _call(self, int64_t t, object payload) except -1:
        """Run a callable handler on one event under the stage's error policy."""
        try:
            self._handler(t, payload)
        except Exception as exc:
            self.errors += 1
            self._failed_with(t, payload, exc)
        return 0

    cdef int _call_batch(self, list batch) except -1:
        try:
            self._handler(batch)
        except Exception as exc:
            self.errors += 1
            self._failed_with(None, batch, exc)
        return 0

    cdef int _failed_with(self, object t, object payload, object exc) except -1:
        if self._on_error == "raise":
            raise exc
        if self._on_error == "log":
            _log.error("ringbus: stage %r failed on event type %r", self.name, t,
                       exc_info=exc)
        else:
            self._on_error(self, t, payload, exc)
        return 0


cdef class RingBuffer(Driver):
    # The first line is the constructor's text signature (the "--" ends it), for
    # inspect.signature(), help() and IDEs; tests/test_signatures.py keeps it in step.
    """RingBuffer(capacity=65536, *, producers='multi', overflow='block', wait='block', backlog=None)
--

A bounded ring of ``(event_type, payload)`` events between publishers and consumers.

    >>> ring = RingBuffer(1024, producers="single", overflow="raise", wait="block")
    >>> ring.publish(0, "hello")
    True
    >>> ring.drain(table)        # dispatch on this thread through a DispatchTable (a Bus)
    1

    capacity : int, a power of two >= 2
        Slots, allocated once. Publishing never allocates beyond the payload itself.
    producers : "multi" (default) or "single"
        "single" claims slots without a CAS; use it only when one thread publishes.
    overflow : "block" (default), "raise" or "drop"
        What ``publish`` does when the ring is full: wait for room, raise
        :class:`RingFull` at once, or drop the new event and count it in ``dropped``. A
        ``timeout=`` given to the call bounds the wait of every policy, and then the policy
        acts ("drop" drops, "block" and "raise" raise RingFull).
    wait : "block" (default), "spin", "yield" or "sleep"
        How a consumer thread waits for events, always without the GIL: park on a condition
        variable (producers wake it), busy-spin, spin then ``sched_yield``, or spin, yield,
        then sleep 50 us at a time.
    backlog : int >= 0, default ``capacity``
        Bound of the follow-up backlog. A handler of the ``"dispatch"`` consumer that
        publishes into the full ring it drains cannot wait (only it makes room): its event
        goes into this consumer-owned FIFO instead, and is dispatched right after the ring
        events claimed before it was published, so the order stays the claim order. Past the
        bound the overflow policy applies: "drop" drops and counts it, "raise" and "block"
        (which cannot wait for itself) raise :class:`RingFull`. Rings with more stages than
        ``"dispatch"`` have no backlog (RingFull, as past the bound).
    """

    def __cinit__(self, *args, **kwargs):
        self._ring = NULL
        self._slots = NULL
        self._available = NULL
        self._events = NULL
        self._room = NULL
        self._signal_fd = -1
        self._backlog = collections.deque()
        self._backlog_due = INT64_MAX
        self._stamps = NULL
        self._stamp_from = INT64_MAX

    def __init__(self, capacity=65536, *, producers="multi", overflow="block",
                 wait="block", backlog=None):
        if self._ring != NULL:
            raise RuntimeError("RingBuffer.__init__ called twice")
        capacity = power_of_two_arg("capacity", capacity, MAX_CAPACITY)
        backlog = int_arg("backlog", backlog, low=0, none_ok=True)
        self.backlog_limit = capacity if backlog is None else backlog
        cdef int multi = _choice("producers", producers, _PRODUCERS)
        self._overflow = _choice("overflow", overflow, _OVERFLOW)
        self._wait = _choice("wait", wait, _WAIT)
        self.capacity = capacity
        self.producers = producers
        self.overflow = overflow
        self.wait = wait
        self._ring = <rb_ring *>_aligned(sizeof(rb_ring))
        self._slots = <rb_slot *>_aligned(capacity * sizeof(rb_slot))
        if multi:
            self._available = <rb_atomic_i32 *>_aligned(capacity * sizeof(int32_t))
        if self._ring == NULL or self._slots == NULL or (multi and self._available == NULL):
            free(self._ring)
            free(self._slots)
            free(self._available)
            self._ring = NULL
            self._slots = NULL
            self._available = NULL
            raise MemoryError(f"cannot allocate a ring of {capacity} slots")
        rb_ring_init(self._ring, capacity, multi, self._slots, self._available)
        # The driver's view of it (refreshed by _link, which changes the gating set).
        self._q = rb_ring_sequencer(self._ring)
        self._key = self._ring
        self._stop_target = &self._ring.stop_target
        self._gone = &self._ring.consumer_gone
        self._events = <rb_signal *>_aligned(sizeof(rb_signal))
        self._room = <rb_signal *>_aligned(sizeof(rb_signal))
        if self._events == NULL or self._room == NULL:
            raise MemoryError()
        rb_signal_init(self._events)
        rb_signal_init(self._room)
        self._main = self._new_stage(DISPATCH, None, None, False, "log")
        self._consumers.append(self._main)
        self._link()

    cdef int _ready(self) except -1:
        """Raise unless __init__ ran to its end. Every Python-visible entry point calls it
        first (one predictable branch per call, never per event): a ring made by
        ``RingBuffer.__new__`` has no memory behind it, and a C read would crash."""
        if self._main is None:      # set last in __init__, after every allocation
            raise RuntimeError("RingBuffer was not initialised: call "
                               "RingBuffer(capacity, producers=..., overflow=..., wait=...)")
        return 0

    cdef int _share_parker(self, RingBuffer owner) except -1:
        """Park on ``owner``'s parker and wake it (priority lanes: one consumer waits for
        several rings at once). Only while no thread uses either ring."""
        self._ready()
        if self._started or self._draining or self._signal_fd >= 0:
            raise RuntimeError("a ring's parker changes only while nothing consumes it")
        self._ring.park = owner._ring.park
        self._park_owner = owner
        self._q = rb_ring_sequencer(self._ring)
        return 0

    def __dealloc__(self):
        cdef int64_t i, t
        cdef void *p
        free(self._events)
        free(self._room)
        free(self._stamps)
        if self._ring == NULL:
            return
        # No thread can run here: each consumer thread holds a reference to the ring.
        for i in range(self.capacity):
            p = rb_slot_read(self._ring, i, &t, 1)
            if p != NULL:
                Py_DECREF(<object>p)
        rb_ring_destroy(self._ring)
        free(self._ring)
        free(self._slots)
        free(self._available)

    # -- stages ----------------------------------------------------------------------------

    cdef Stage _new_stage(self, str name, object handler, DispatchTable table, bint batch,
                          object on_error):
        cdef Stage st = Stage.__new__(Stage)
        st.name = name
        st._handler = handler
        st._table = table
        st._batch = batch
        st._on_error = on_error
        # A new stage starts where the ring is: it sees the events published from now on.
        rb_sequence_init(&st._c.sequence, rb_claimed(self._ring))
        return st

    cdef int _link(self) except -1:
        """Recompute dependencies, the gating set (the last stages) and who takes payloads.
        Only while no consumer runs and nothing is queued (the callers check)."""
        cdef Stage st, dep
        cdef set needed = set()
        cdef list leaves = []
        cdef int32_t i
        for st in self._consumers:
            for dep in st._after:
                needed.add(dep)
        for st in self._consumers:
            if st not in needed:
                leaves.append(st)
        if len(leaves) > RB_MAX_GATING:
            raise ValueError(f"a ring supports at most {RB_MAX_GATING} last stages")
        for st in self._consumers:
            st._ndeps = len(st._after)
            for i, dep in enumerate(st._after):
                st._deps[i] = &dep._c.sequence
            # Only a sole last stage knows that nobody reads a slot after it.
            st._take = len(leaves) == 1 and leaves[0] is st
        self._ring.n_gating = len(leaves)
        # The backlog dispatches follow-ups straight to the table: with other stages, they
        # would skip those (a journal would miss them), so such rings keep RingFull.
        self._backlog_ok = len(self._consumers) == 1
        for i, st in enumerate(leaves):
            self._ring.gating[i] = &st._c.sequence
        self._q = rb_ring_sequencer(self._ring)
        return 0

    cdef Stage _stage_arg(self, object ref, str what):
        cdef Stage st
        if isinstance(ref, Stage):
            if ref not in self._consumers:
                raise ValueError(f"{what}: stage {ref.name!r} belongs to another ring")
            return ref
        for st in self._consumers:
            if st.name == ref:
                return st
        raise ValueError(f"{what}: no stage named {ref!r} (stages: "
                         f"{', '.join(repr(s.name) for s in self._consumers)})")

    def stage(self, name, handler, *, after=(), before=(), batch=False, on_error="log"):
        """Add a consumer stage with its own sequence; it runs on its own thread once started.

        ``handler`` is called as ``handler(event_type, payload)`` for each event, or
        ``handler([(event_type, payload), ...])`` once per batch with ``batch=True``; a
        DispatchTable (a Bus) dispatches each event to its subscribers instead. The stage
        sees an event only after every stage in ``after`` has processed it, and every stage in
        ``before`` sees it only after this one (names or Stage objects; the ring's own
        consumer, which dispatches to the table given to ``drain``/``start``, is named
        ``"dispatch"``). Producers wait only for the last stages. ``on_error`` handles an
        Exception from a callable: "log" (default; counted in ``errors``), "raise" (stops the
        stage; re-raised by ``stop``) or ``on_error(stage, event_type, payload, exc)``.

        A diamond: journal and replication in parallel, then the subscribers after both::

            ring.stage("journal", journal.write, before="dispatch")
            ring.stage("replicate", replica.send, before="dispatch")
            ring.start(bus)

        Stages are added while the ring is stopped and empty.
        """
        self._ready()
        cdef Stage st, a, b
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
        if not name:
            raise ValueError("name must be a non-empty str, got ''")
        batch = bool_arg("batch", batch)
        for st in self._consumers:
            if st.name == name:
                raise ValueError(f"a stage named {name!r} already exists")
        if self._started or self._draining or self._signal_fd >= 0:
            raise RuntimeError("stages are added while the ring is stopped")
        if self._pending() != 0:
            raise RuntimeError(
                f"stages are added while the ring is empty ({self._pending()} events queued): "
                f"add them before publishing, or after draining")
        if on_error not in _ON_ERROR and not callable(on_error):
            raise ValueError(f"on_error must be 'log', 'raise' or a callable, got {on_error!r}")
        table = None
        if isinstance(handler, DispatchTable):
            table, handler = handler, None
            if batch:
                raise ValueError("batch=True needs a callable handler, not a DispatchTable")
        elif not callable(handler):
            raise TypeError(f"handler must be callable or a DispatchTable, got {handler!r}")
        if isinstance(after, (str, Stage)):
            after = (after,)
        if isinstance(before, (str, Stage)):
            before = (before,)
        after_st = tuple(dict.fromkeys([self._stage_arg(x, "after") for x in after]))
        before_st = tuple(dict.fromkeys([self._stage_arg(x, "before") for x in before]))
        if len(after_st) > RB_MAX_GATING:
            raise ValueError(f"a stage may run after at most {RB_MAX_GATING} stages")
        for b in before_st:
            if len(b._after) + 1 > RB_MAX_GATING:
                raise ValueError(f"stage {b.name!r} already runs after {RB_MAX_GATING} stages")
            for a in after_st:
                if a is b or _depends_on(a, b):
                    raise ValueError(
                        f"stage {name!r} after {a.name!r} and before {b.name!r} makes a "
                        f"cycle: {b.name!r} -> ... -> {a.name!r} -> {name!r} -> {b.name!r}")
        st = self._new_stage(name, handler, table, batch, on_error)
        st._after = after_st
        self._consumers.append(st)
        for b in before_st:
            b._after = b._after + (st,)
        try:
            self._link()
        except BaseException:
            self._consumers.remove(st)
            for b in before_st:
                b._after = tuple(x for x in b._after if x is not st)
            self._link()
            raise
        return st

    @property
    def stages(self):
        """The stages by name, ``"dispatch"`` first."""
        self._ready()
        return {st.name: st for st in self._consumers}

    # -- producers -------------------------------------------------------------------------

    cdef int _write(self, int64_t lo, int64_t hi, Py_ssize_t t, tuple items,
                    Py_ssize_t offset, object payload) except -1:
        """Fill claimed slots lo..hi and publish them. Nothing between the claim and the
        publish may fail or release the GIL: consumers stop at the first unpublished slot."""
        cdef int64_t s
        cdef void *old
        cdef object obj
        cdef list garbage = None
        cdef unsigned long long stamp
        if self._stamping:
            stamp = rb_ticks_read(self._stamp_tsc)  # one read for the run, claimed at once
            for s in range(lo, hi + 1):
                self._stamps[s & (self.capacity - 1)] = stamp
        for s in range(lo, hi + 1):
            obj = payload if items is None else items[offset + (s - lo)]
            Py_INCREF(obj)                   # the slot's own reference
            old = rb_slot_write(self._ring, s, t, <void *>obj)
            if old != NULL:                  # several last stages: nobody cleared the slot
                if garbage is None:
                    garbage = []
                garbage.append(<object>old)  # released after the publish (may run __del__)
                Py_DECREF(<object>old)
        rb_publish(self._ring, lo, hi)
        if self._wake_on_publish:
            rb_wake(self._ring)
        if self._signal_fd >= 0 and rb_signal_take(self._events):
            _signal(self._signal_fd)
        return 0

    cdef int _may_wait(self) except -1:
        if self._signal_fd >= 0 and self._loop_thread == threading.get_ident():
            raise RingFull(
                f"ring full ({self.capacity} events) and this thread runs the event loop "
                f"that consumes it: waiting here would stop that loop for good (use "
                f"`await bus.publish_async(...)` on the loop, or try_publish)")
        return 0

    cdef inline int _write_one(self, int64_t seq, Py_ssize_t t, object payload) except -1:
        """_write for one event, the common case, without the loop and the list."""
        Py_INCREF(payload)                   # the slot's own reference
        if self._stamping:
            self._stamps[seq & (self.capacity - 1)] = rb_ticks_read(self._stamp_tsc)
        cdef void *old = rb_slot_write(self._ring, seq, t, <void *>payload)
        rb_publish(self._ring, seq, seq)
        if self._wake_on_publish:
            rb_wake(self._ring)
        if self._signal_fd >= 0 and rb_signal_take(self._events):
            _signal(self._signal_fd)
        if old != NULL:                      # several last stages: nobody cleared the slot
            Py_DECREF(<object>old)
        return 0

    # -- follow-ups: a handler publishing into the full ring it drains ----------------------

    cdef bint _own_followup(self) noexcept:
        """Whether this thread is inside the "dispatch" consumer of this ring (drain, its
        thread or the event-loop consumer's drain) and the backlog may take its events."""
        return self._backlog_ok and rb_consuming_find(self._ring) == self._main._c

    cdef int _followup(self, Py_ssize_t t, object payload, bint trying) except -1:
        """Queue a follow-up in the backlog: 1 queued, 0 dropped (or refused, ``trying``).
        Past the bound the overflow policy applies; waiting for room is never an option
        here (only this thread's consumer makes room), so "block" raises RingFull."""
        cdef int64_t after
        if not self._backlog_ok:
            if trying:
                return 0
            if self._overflow == OVERFLOW_DROP:
                rb_fetch_add_relaxed_i64(&self._ring.dropped.value, 1)
                return 0
            raise RingFull(
                f"ring full ({self.capacity} events) and this thread is consuming it: a "
                f"handler published into the ring it is draining; a ring with stages "
                f"besides 'dispatch' has no follow-up backlog (use a larger capacity or "
                f"try_publish)")
        if self._backlog_n >= self.backlog_limit:
            if trying:
                return 0
            if self._overflow == OVERFLOW_DROP:
                rb_fetch_add_relaxed_i64(&self._ring.dropped.value, 1)
                return 0
            raise RingFull(
                f"ring full ({self.capacity} events) and the follow-up backlog of its consumer "
                f"is full too (backlog={self.backlog_limit}): a handler published into the "
                f"ring it is draining, and waiting for room would deadlock")
        # Everything claimed so far goes first: claim order (GIL held, so every claimed
        # slot of the object ring is published too).
        after = rb_claimed(self._ring)
        self._backlog.append((after, t, payload))
        if self._backlog_n == 0:
            self._backlog_due = after
        self._backlog_n += 1
        self._backlog_in += 1
        return 1

    cdef Py_ssize_t _flush_backlog(self, DispatchTable table, int64_t upto) except -1:
        """Dispatch, oldest first, the follow-ups due once ring sequence ``upto`` has been
        dispatched. Each leaves the backlog before its handlers run (counted as dispatched,
        as a ring event is); their own follow-ups join the queue."""
        cdef Py_ssize_t n = 0
        cdef Py_ssize_t t
        cdef object bl = self._backlog
        if table is None:
            return 0
        while self._backlog_n > 0 and self._backlog_due <= upto:
            entry = bl.popleft()
            self._backlog_n -= 1
            self._backlog_out += 1
            self._backlog_due = bl[0][0] if self._backlog_n > 0 else INT64_MAX
            t = entry[1]
            payload = entry[2]
            entry = None
            n += 1
            if <size_t>t >= <size_t>table._size or table._slots[t].count < 0:
                _unknown_id(table, t, payload)
            else:
                table.dispatch(t, payload)
            payload = None
        return n

    def _publish_followup(self, Py_ssize_t t, payload):
        """Not API: ringbus.aio, for an async handler of the loop consumer that awaits
        publish_async into the full ring (its drain has returned meanwhile). ``t`` checked."""
        self._ready()
        return self._followup(t, payload, False) == 1

    cdef Py_ssize_t _followup_many(self, Py_ssize_t t, tuple items, Py_ssize_t done) except -1:
        """publish_many's items from ``done`` on, through the backlog, in order."""
        cdef Py_ssize_t n = len(items)
        while done < n:
            try:
                if self._followup(t, items[done], False) == 0:
                    # Dropped: the bound is reached, and only this thread could make
                    # room; the rest are dropped (and counted) with it.
                    rb_fetch_add_relaxed_i64(&self._ring.dropped.value, n - done - 1)
                    return done
            except RingFull as exc:
                exc.published = done
                raise
            done += 1
        return done

    cdef int publish_c(self, Py_ssize_t t, object payload, double timeout) except -1:
        cdef int64_t hi
        # A predictable branch: while stop(drain=True) runs, the consumer's own handlers
        # publish into the backlog, which stop delivers (the ring's stop target would not).
        if self._stopping_drain and self._own_followup():
            return self._followup(t, payload, False)
        if rb_claim_upto(self._ring, 1, &hi) == 0:
            if self._own_followup():
                return self._followup(t, payload, False)
            if timeout < 0:
                if self._overflow == OVERFLOW_DROP:
                    rb_fetch_add_relaxed_i64(&self._ring.dropped.value, 1)
                    return 0
                if self._overflow == OVERFLOW_RAISE:
                    raise RingFull(f"ring full ({self.capacity} events pending); "
                                   f"overflow='raise'")
            if self.claim_within(1, timeout, self._overflow == OVERFLOW_DROP, &hi) == 0:
                rb_fetch_add_relaxed_i64(&self._ring.dropped.value, 1)
                return 0
        self._write_one(hi, t, payload)
        return 1

    cdef int try_publish_c(self, Py_ssize_t t, object payload) except -1:
        cdef int64_t hi
        if self._stopping_drain and self._own_followup():
            return self._followup(t, payload, True)
        if rb_claim_upto(self._ring, 1, &hi) == 0:
            if self._own_followup():
                return self._followup(t, payload, True)
            return 0
        self._write_one(hi, t, payload)
        return 1

    cdef Py_ssize_t publish_many_c(self, Py_ssize_t t, object payloads, double timeout) except -1:
        cdef tuple items = payloads if type(payloads) is tuple else tuple(payloads)
        cdef Py_ssize_t n = len(items), done = 0
        cdef int64_t got, hi
        cdef double deadline = deadline_after(timeout)
        while done < n:
            if self._stopping_drain and self._own_followup():
                return self._followup_many(t, items, done)
            got = rb_claim_upto(self._ring, n - done, &hi)
            if got == 0 and self._own_followup():
                # The rest follow the events just written, in order, through the backlog.
                return self._followup_many(t, items, done)
            if got == 0:
                if timeout < 0 and self._overflow == OVERFLOW_DROP:
                    rb_fetch_add_relaxed_i64(&self._ring.dropped.value, n - done)
                    return done
                try:
                    if timeout < 0 and self._overflow == OVERFLOW_RAISE:
                        raise RingFull(f"ring full ({self.capacity} events pending) after "
                                       f"{done} of {n} events; overflow='raise'")
                    # The timeout bounds the whole call, not each run of free slots.
                    got = self.claim_within(n - done, time_left(deadline),
                                            self._overflow == OVERFLOW_DROP, &hi)
                except (RingFull, ConsumerGone) as exc:
                    exc.published = done
                    raise
                if got == 0:
                    rb_fetch_add_relaxed_i64(&self._ring.dropped.value, n - done)
                    return done
            self._write(hi - got + 1, hi, t, items, done, None)
            done += got
        return done

    def publish(self, event_type, payload=None, timeout=None):
        """Enqueue an event; True if published, False if dropped (``overflow="drop"``).

        Full ring: wait for room up to ``timeout`` seconds, then the overflow policy acts:
        ``"drop"`` drops the event (counted in ``dropped``, returns False), ``"block"`` and
        ``"raise"`` raise :class:`RingFull`. ``timeout=None`` is the policy's own wait:
        forever under ``"block"``, none under ``"raise"`` and ``"drop"``.
        """
        self._ready()
        cdef Py_ssize_t t = _event_type_arg(event_type)
        cdef DispatchTable table = self._main._table
        if table is not None and (t >= table._size or table._slots[t].count < 0):
            table.check_id(t)       # the ring knows its table (started): refuse it here
        return self.publish_c(t, payload, timeout_arg(timeout)) == 1

    def try_publish(self, event_type, payload=None):
        """Enqueue an event if there is room now; never blocks, never counts a drop."""
        self._ready()
        return self.try_publish_c(_event_type_arg(event_type), payload) == 1

    def publish_many(self, event_type, payloads, timeout=None):
        """Enqueue one event per payload with one claim per run of free slots; returns how
        many were published (fewer only under ``overflow="drop"``, the rest counted).
        ``timeout`` bounds the whole call; the overflow rule is :meth:`publish`'s."""
        self._ready()
        return self.publish_many_c(_event_type_arg(event_type), payloads,
                                   timeout_arg(timeout))

    # -- consumers -------------------------------------------------------------------------

    cdef Py_ssize_t _consume(self, Stage st, DispatchTable table, int64_t next,
                             int64_t hi) except -1:
        """Process sequences next..hi (published, and passed by st's dependencies) with the
        GIL held. Advances st's sequence event by event; an exception leaves it on the event
        that raised, which counts as processed (its handlers ran)."""
        cdef rb_ring *r = self._ring
        cdef rb_sequence *seq = &st._c.sequence
        cdef bint take = st._take
        cdef int64_t s = next, t
        cdef void *p
        cdef object payload
        cdef Py_ssize_t done = 0
        cdef Py_ssize_t check_at = SIGNAL_CHECK_EVERY  # a backlog flush adds many to `done`
        cdef list batch
        cdef bint batch_end = table is not None and self._batch_end is not None
        cdef unsigned long long start       # the consumer's clock read, when stamping
        if batch_end:
            self._batch_thread = PyThread_get_thread_ident()
        try:
            # Follow-ups due after an event whose handler raised out of the last batch.
            if next - 1 >= self._backlog_due:
                done += self._flush_backlog(table, next - 1)
            if st._batch:
                batch = []
                for s in range(next, hi + 1):
                    p = rb_slot_read(r, s, &t, take)
                    payload = <object>p if p != NULL else None
                    if take and p != NULL:
                        Py_DECREF(payload)       # the slot's reference moved to `payload`
                    batch.append((t, payload))
                if take:
                    rb_sequence_set(seq, hi)
                try:
                    st._call_batch(batch)
                finally:
                    if not take:
                        rb_sequence_set(seq, hi)
                return hi - next + 1
            while s <= hi:
                # stop(drain=False) takes effect at the next event boundary.
                if rb_load_relaxed_i32(&st._c.alert) == RB_STOP_NOW:
                    break
                p = rb_slot_read(r, s, &t, take)
                # Metrics: the slot's publish stamp, read before the slot is released.
                start = 0
                if s >= self._stamp_from and table is not None:
                    start = self._record_delay(table, t, s)
                if take:
                    payload = <object>p if p != NULL else None
                    if p != NULL:
                        Py_DECREF(payload)       # the slot's reference moved to `payload`
                    # Release: the slot is empty and ours is the last read of it, so the
                    # producers may reuse it while the handlers run.
                    rb_sequence_set(seq, s)
                else:
                    # Borrowed from the slot, which keeps its reference until the stages
                    # after us are done (no producer reuses it before our sequence passes s).
                    payload = <object>p if p != NULL else None
                s += 1
                done += 1
                try:
                    if table is not None:
                        if <size_t>t >= <size_t>table._size or table._slots[t].count < 0:
                            _unknown_id(table, t, payload)   # counted; the consumer goes on
                        else:
                            table.dispatch_at(t, payload, s - 1, start)   # s: past it
                    else:
                        st._call(t, payload)
                finally:
                    if not take:
                        rb_sequence_set(seq, s - 1)
                payload = None
                # One compare per event: follow-ups published (ring full) while the events up
                # to this one were claimed are due now, before the next ring event.
                if s - 1 >= self._backlog_due:
                    done += self._flush_backlog(table, s - 1)
                if done >= check_at:
                    check_at = done + SIGNAL_CHECK_EVERY
                    PyErr_CheckSignals()
        finally:
            if batch_end:
                self._batch_thread = 0
                self._end_batch()
            # Once per batch: producers waiting for room, stages waiting for us.
            rb_wake(r)
            if self._room_callback is not None and rb_signal_take(self._room):
                self._room_callback()       # coroutines waiting for room (ringbus.aio)
        return done

    cdef int _end_batch(self) except -1:
        cdef object first = None
        if self._batch_end is None:
            return 0                        # removed during the batch
        for callback in tuple(self._batch_end):
            try:
                callback()
            except BaseException as exc:
                # Each one runs (what the others gathered must go out too); the first
                # failure then propagates as a handler's would.
                if first is None:
                    first = exc
        if first is not None:
            raise first
        return 0

    def _add_batch_end(self, callback):
        """Not API (ringbus.workers): run ``callback()`` on the dispatching thread after each
        batch the "dispatch" stage dispatched (drain(), a consumer thread, the event loop)."""
        if self._batch_end is None:
            self._batch_end = []
        self._batch_end.append(callback)

    def _remove_batch_end(self, callback):
        if self._batch_end is not None and callback in self._batch_end:
            self._batch_end.remove(callback)
            if not self._batch_end:
                self._batch_end = None

    def _in_batch(self):
        """Not API: whether this thread is dispatching a batch whose end runs the
        _add_batch_end callables (so what a handler gathers now goes out at its end)."""
        return self._batch_thread != 0 and self._batch_thread == PyThread_get_thread_ident()

    cdef Py_ssize_t drain_c(self, DispatchTable table, Py_ssize_t max_events) except -1:
        if self._signal_fd >= 0 and not self._loop_draining:
            raise RuntimeError("drain() while an event-loop consumer (Bus.run_async) runs: "
                               "it dispatches the events; cancel it first")
        # The "dispatch" consumer dispatches through `table` while the drain runs; a publish
        # meanwhile refuses ids the table lacks, as with started threads.
        cdef Stage st = self._main
        cdef DispatchTable before = st._table
        if self._draining:
            return self.drain_consumer(st, max_events)      # raises: re-entry
        st._table = table
        try:
            return self.drain_consumer(st, max_events)
        finally:
            st._table = before

    def drain(self, DispatchTable table not None, max_events=None):
        """Dispatch queued events through ``table`` on this thread, in order; returns how many.

        Goes on until the ring is empty (events that handlers publish meanwhile included) or
        ``max_events`` were dispatched. A BaseException from a handler (or an Exception under
        ``on_error="raise"``) propagates at an event boundary: that event counts as
        dispatched, later ones stay queued for the next drain.
        """
        self._ready()
        cdef Py_ssize_t n = -1
        if max_events is not None:
            n = int_arg("max_events", max_events, low=0, high=PY_SSIZE_T_MAX, none_ok=True)
        return self.drain_c(table, n)

    # -- the driver's hooks ------------------------------------------------------------------

    cdef Py_ssize_t _handle(self, Consumer c, int64_t lo, int64_t hi) except -1:
        cdef Stage st = <Stage>c
        return self._consume(st, st._table, lo, hi)

    cdef Py_ssize_t _idle(self, Consumer c) except -1:
        # Ring empty: every follow-up is due (each waits only for ring events claimed before
        # it); their handlers may publish more, so the driver looks again.
        if self._backlog_n == 0 or c is not self._main:
            return 0
        return self._flush_backlog(self._main._table, INT64_MAX)

    cdef int _drained(self, Consumer c) except -1:
        # stop(drain=True) delivers the follow-ups of the events it drained too, even those
        # due after ring events past its target (those were published after the stop call
        # and stay queued); the follow-ups' own follow-ups join the backlog while the ring
        # is full, and are delivered here as well.
        if self._backlog_n > 0 and c is self._main:
            self._flush_backlog(self._main._table, INT64_MAX)
        return 0

    cdef int _starting(self) except -1:
        # Consumers park only from now on (wait="block"): producers must wake them. Set
        # before any thread starts, so no consumer can park unseen.
        self._wake_on_publish = self._wait == RB_WAIT_BLOCK
        return 0

    cdef int _stopping(self, bint drain) except -1:
        # Same GIL hold as the stop target: the consumer's own publishes before it are
        # within the target, those after it go to the backlog that it delivers on exit.
        self._stopping_drain = drain
        return 0

    cdef int _stopped(self) except -1:
        self._main._table = None            # no cycle bus -> ring -> stage -> bus
        self._stopping_drain = False
        self._wake_on_publish = False       # drain() never parks
        return 0

    cdef int _forked(self) except -1:
        return self._stopped()

    cdef int64_t _queued(self) noexcept:
        return self._pending()

    cdef int _consumer_ended(self) except -1:
        # Coroutines waiting for room (publish_async) wake up, see the consumer gone and
        # raise ConsumerGone instead of waiting for a room callback that never comes.
        if self._room_callback is not None and rb_signal_take(self._room):
            self._room_callback()
        return 0

    cdef int start_c(self, DispatchTable table) except -1:
        if self._started:
            raise RuntimeError("the ring's consumers are already started")
        if self._signal_fd >= 0:
            raise RuntimeError("start() while an event-loop consumer (Bus.run_async) runs")
        if table is None:
            raise ValueError("start() needs the DispatchTable (Bus) the 'dispatch' stage "
                             "dispatches to")
        if self._draining:
            raise RuntimeError("start() while drain() runs")
        self._main._table = table
        try:
            self.start_consumers()
        except BaseException:
            self._main._table = None
            raise
        return 0

    cdef int stop_c(self, bint drain, double timeout) except -1:
        return self.stop_consumers(drain, timeout)

    def start(self, DispatchTable table):
        """Start one thread per stage; the ``"dispatch"`` stage dispatches through ``table``.

        Each thread waits for events without the GIL (the ring's wait strategy) and takes
        the GIL once per batch. Stop with :meth:`stop`.
        """
        self._ready()
        self.start_c(table)

    def stop(self, drain=True, timeout=None):
        """Stop the stage threads and wait for them.

        ``drain=True``: first process everything published before this call. ``drain=False``:
        stop at the next event boundary; the rest stays queued. Re-raises the exception that
        ended a stage thread, if any. TimeoutError if the threads are not done in ``timeout``.
        """
        self._ready()
        self.stop_c(bool_arg("drain", drain), timeout_arg(timeout))

    @contextmanager
    def running(self, DispatchTable table):
        """``with ring.running(table): ...`` starts the stages and stops them (drain=True)."""
        self._ready()
        self.start_c(table)
        try:
            yield self
        finally:
            self.stop_c(True, -1)

    @property
    def started(self):
        """Whether the stage threads are started."""
        self._ready()
        return self._started

    # -- event-loop consumer and producers (ringbus.aio) -------------------------------------
    # Not API: ringbus.aio calls these, on the loop's thread, with the GIL.

    def _attach_loop(self, int fd, thread_id):
        """From now on, a producer that takes the events signal writes ``fd``."""
        self._ready()
        if self._started or self._draining or self._signal_fd >= 0:
            raise RuntimeError("the ring already has a consumer: an event-loop consumer "
                               "needs it stopped (no start(), no drain() in progress)")
        self._loop_thread = thread_id
        self._signal_fd = fd

    def _detach_loop(self):
        self._ready()
        self._signal_fd = -1
        self._loop_thread = None

    def _drain_loop(self, DispatchTable table not None, Py_ssize_t max_events):
        """The event-loop consumer's drain: at most ``max_events`` (> 0), on this thread."""
        self._ready()
        if self._signal_fd < 0:
            raise RuntimeError("no event-loop consumer is attached")
        self._loop_draining = True
        try:
            return self.drain_c(table, max_events)
        finally:
            self._loop_draining = False

    def _arm_events(self):
        """The loop consumer found nothing: arm the events signal and look again. True: still
        nothing, wait for the fd; False: events arrived meanwhile."""
        self._ready()
        cdef Stage st = self._main
        cdef int64_t next = rb_sequence_get_own(&st._c.sequence) + 1
        rb_signal_arm(self._events)
        return rb_barrier_available(self._ring, st._deps, st._ndeps, next) < next

    def _arm_room(self, callback):
        """A coroutine found the ring full: arm the room signal and look again. True: still
        full, wait until ``callback`` (called by the consumer that makes room) wakes it."""
        self._ready()
        self._room_callback = callback
        rb_signal_arm(self._room)
        return not rb_room_for(self._ring, rb_claimed(self._ring) + 1 - self._ring.capacity)

    # -- metrics ---------------------------------------------------------------------------

    cdef unsigned long long _record_delay(self, DispatchTable table, Py_ssize_t t,
                                          int64_t s) noexcept:
        """Record event t's queueing delay (now - slot s's publish stamp); returns now, the
        start of its first handler's metered call."""
        cdef unsigned long long now = rb_ticks_read(self._stamp_tsc)
        cdef unsigned long long stamp = self._stamps[s & (self.capacity - 1)]
        cdef rb_meter *meter
        if <size_t>t < <size_t>table._delay_n and table._delay_meters[t] != NULL:
            meter = table._delay_meters[t]
        else:
            meter = table.delay_meter(t)        # cold: the first of its type
            if meter == NULL:
                return now
        meter.calls += 1
        # The stamp was read on the producer's core: with an invariant TSC the cores agree,
        # but a few ticks of skew must not become a 2**64 ns delay.
        rb_hist_record(&meter.time, rb_ticks_ns(now - stamp, self._stamp_tsc,
                                                self._stamp_mult) if now > stamp else 0)
        return now

    def _set_stamping(self, bint on):
        """Stamp each event with its publish time (on) or stop (off). The "dispatch" stage
        records, per event type, the delay from publish to the start of its handling
        (DispatchTable.record_delay); ``_lag`` reads the oldest pending event's age."""
        self._ready()
        if on == self._stamping:
            return
        if on and self._stamps == NULL:
            self._stamps = <unsigned long long *>_aligned(
                self.capacity * sizeof(unsigned long long))
            if self._stamps == NULL:
                raise MemoryError(f"cannot allocate publish stamps for {self.capacity} slots")
        self._stamp_tsc = clock_is_tsc()
        self._stamp_mult = clock_mult()
        self._stamping = on
        # Every claimed slot is published (producers write holding the GIL, as we do): the
        # next claim is the first stamped one.
        self._stamp_from = rb_claimed(self._ring) + 1 if on else INT64_MAX

    def _lag(self):
        """Per stage: (events published it has not taken yet, seconds since the oldest of
        them was published or None when unknown: none pending, or published while
        stamping was off). Follow-ups in the backlog count as events, not in the age."""
        self._ready()
        cdef int64_t cursor = self._cursor(), nxt
        cdef Stage st
        cdef unsigned long long now = rb_ticks_read(self._stamp_tsc), stamp
        out = {}
        for st in self._consumers:
            nxt = rb_sequence_get(&st._c.sequence) + 1
            age = None
            if self._stamping and self._stamp_from <= nxt <= cursor:
                stamp = self._stamps[nxt & (self.capacity - 1)]
                age = (rb_ticks_ns(now - stamp, self._stamp_tsc, self._stamp_mult) / 1e9
                       if now > stamp else 0.0)
            out[st.name] = (cursor - nxt + 1 + (self._backlog_n if st is self._main else 0),
                            age)
        return out

    # -- counters --------------------------------------------------------------------------

    cdef int64_t _cursor(self) noexcept:
        # Claimed with several producers (a claim is published moments later), published
        # with one. Never the single producer's claim counter: that is the producer's own,
        # unsynchronized, and runs ahead of the cursor while a blocked claim waits without
        # the GIL (stop(drain=True) targets the cursor, and so must the counters).
        return rb_sequence_get(&self._ring.cursor)

    cdef int64_t _pending(self) noexcept:
        cdef int64_t cursor = self._cursor()
        return cursor - rb_min_gating(self._ring, cursor) + self._backlog_n

    @property
    def pending(self):
        """Events published and not yet processed by the last stage(s), follow-ups waiting
        in the backlog included."""
        self._ready()
        return self._pending()

    @property
    def backlog(self):
        """Follow-ups waiting in the backlog (published by the consumer's own handlers
        while the ring was full)."""
        self._ready()
        return self._backlog_n

    @property
    def published(self):
        """Events published (claimed, with several producers) since the ring was made,
        follow-ups queued in the backlog included."""
        self._ready()
        return self._cursor() + 1 + self._backlog_in

    @property
    def dispatched(self):
        """Events the ``"dispatch"`` stage has taken on (dispatched or being dispatched),
        follow-ups from the backlog included."""
        self._ready()
        return rb_sequence_get(&self._main._c.sequence) + 1 + self._backlog_out

    @property
    def dropped(self):
        """Events refused by ``overflow="drop"``."""
        self._ready()
        return rb_load_relaxed_i64(&self._ring.dropped.value)

    def stats(self):
        """Counters as a dict: published, dispatched, dropped, pending, backlog (follow-ups
        waiting, counted in pending too), and each stage's sequence under ``stages``."""
        self._ready()
        return {
            "published": self.published,
            "dispatched": self.dispatched,
            "dropped": self.dropped,
            "pending": self.pending,
            "backlog": self._backlog_n,
            "stages": {st.name: st.sequence for st in self._consumers},
        }

    def __len__(self):
        self._ready()
        return self._pending()

    def __repr__(self):
        if self._main is None:
            return "<ringbus RingBuffer (not initialised)>"
        return (f"<ringbus RingBuffer capacity={self.capacity} producers={self.producers!r} "
                f"overflow={self.overflow!r} wait={self.wait!r} pending={self._pending()}>")


cdef bint _depends_on(Stage a, Stage b):
    """Whether `a` runs after `b`, directly or through other stages."""
    cdef Stage x
    for x in a._after:
        if x is b or _depends_on(x, b):
            return True
    return False


# -- nogil stress (test hook) ---------------------------------------------------------------
# Python code holds the GIL whenever it touches a slot, and the GIL's mutex orders those
# accesses for ThreadSanitizer whatever the atomics do. This drives the same ring functions
# from C threads without the GIL, with NULL payloads, so that a TSAN build (.ci/sanitize)
# checks the memory orders themselves and any wrong one shows as a data race on a slot.

from ringbus._cthreads cimport pthread_t, pthread_create, pthread_join, calloc


cdef struct _StressThread:
    rb_ring *ring
    rb_consumer *consumer           # consumer threads: their own state
    rb_sequence *deps[2]
    int32_t ndeps
    int32_t strategy
    int32_t producers
    int64_t per_producer            # producer threads: how many to publish
    int64_t index                   # producer id
    int64_t errors                  # consumer threads: sequence errors seen


cdef void *_stress_produce(void *p) noexcept nogil:
    cdef _StressThread *a = <_StressThread *>p
    cdef rb_ring *r = a.ring
    cdef int64_t seq, hi
    for seq in range(a.per_producer):
        while rb_claim_upto(r, 1, &hi) == 0:
            rb_park_begin(r)
            if not rb_room_for(r, rb_claimed(r) + 1 - r.capacity):
                rb_park_wait(r, rb_deadline_in(0.01))
            rb_park_end(r)
        rb_slot_write(r, hi, (a.index << 32) | seq, NULL)
        rb_publish(r, hi, hi)
        rb_wake(r)
    return NULL


cdef void *_stress_consume(void *p) noexcept nogil:
    cdef _StressThread *a = <_StressThread *>p
    cdef rb_ring *r = a.ring
    cdef int64_t total = a.per_producer * a.producers, next = 0, avail, s, t, pid
    cdef int64_t *expected = <int64_t *>calloc(a.producers, sizeof(int64_t))
    cdef int take = a.ndeps > 0      # the stage after the others is the last one
    if expected == NULL:
        a.errors = -1
        return NULL
    while next < total:
        avail = rb_wait_for(r, a.deps, a.ndeps, next, a.strategy, &a.consumer.alert,
                            rb_no_deadline())
        for s in range(next, avail + 1):
            rb_slot_read(r, s, &t, take)
            pid = t >> 32
            if pid < 0 or pid >= a.producers or (t & ((<int64_t>1 << 32) - 1)) != expected[pid]:
                a.errors += 1
            else:
                expected[pid] += 1
        rb_sequence_set(&a.consumer.sequence, avail)
        rb_wake(r)
        next = avail + 1
    free(expected)
    return NULL


def _stress_nogil(int producers=2, int64_t per_producer=100000, int64_t capacity=256,
                  bint multi=True, wait="block", bint diamond=False):
    """Test hook: C threads publish ``producers x per_producer`` events and C consumers check
    per-producer FIFO, no loss, no duplicate; all without the GIL. With ``diamond``, two
    consumers run in parallel and a third after both (the only gating one). Returns
    ``(sequence errors, seconds)``."""
    if capacity < 2 or capacity & (capacity - 1):
        raise ValueError(f"capacity must be a power of two >= 2, got {capacity}")
    if producers < 1 or (not multi and producers != 1):
        raise ValueError("producers must be >= 1, and 1 with multi=False")
    cdef int strategy = _choice("wait", wait, _WAIT)
    cdef int nconsumers = 3 if diamond else 1
    cdef int i, rc
    cdef rb_ring *r = <rb_ring *>_aligned(sizeof(rb_ring))
    cdef rb_slot *slots = <rb_slot *>_aligned(capacity * sizeof(rb_slot))
    cdef rb_atomic_i32 *avail = <rb_atomic_i32 *>_aligned(capacity * sizeof(int32_t))
    cdef rb_consumer *cons = <rb_consumer *>_aligned(3 * sizeof(rb_consumer))
    cdef _StressThread *args = <_StressThread *>calloc(producers + 3, sizeof(_StressThread))
    cdef pthread_t *threads = <pthread_t *>calloc(producers + 3, sizeof(pthread_t))
    cdef int64_t errors = 0
    cdef double t0, elapsed
    try:
        if not (r and slots and avail and cons and args and threads):
            raise MemoryError()
        rb_ring_init(r, capacity, multi, slots, avail)
        for i in range(nconsumers):
            rb_consumer_init(&cons[i], -1)
        # Consumer 0 is the last stage; in a diamond, 1 and 2 run before it.
        r.n_gating = 1
        r.gating[0] = &cons[0].sequence
        for i in range(nconsumers):
            args[i].ring = r
            args[i].consumer = &cons[i]
            args[i].strategy = strategy
            args[i].producers = producers
            args[i].per_producer = per_producer
        if diamond:
            args[0].ndeps = 2
            args[0].deps[0] = &cons[1].sequence
            args[0].deps[1] = &cons[2].sequence
        for i in range(producers):
            args[nconsumers + i].ring = r
            args[nconsumers + i].index = i
            args[nconsumers + i].per_producer = per_producer
        with nogil:
            t0 = rb_monotonic()
            rc = 0
            for i in range(nconsumers):
                rc |= pthread_create(&threads[i], NULL, _stress_consume, &args[i])
            for i in range(producers):
                rc |= pthread_create(&threads[nconsumers + i], NULL, _stress_produce,
                                     &args[nconsumers + i])
            for i in range(nconsumers + producers):
                pthread_join(threads[i], NULL)
            elapsed = rb_monotonic() - t0
        if rc != 0:
            raise OSError("pthread_create failed")
        for i in range(nconsumers):
            if args[i].errors < 0:
                raise MemoryError()
            errors += args[i].errors
        rb_ring_destroy(r)
        return errors, elapsed
    finally:
        free(r)
        free(slots)
        free(avail)
        free(cons)
        free(args)
        free(threads)
