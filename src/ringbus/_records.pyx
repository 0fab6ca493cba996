"""Record rings: fixed-size records described by a numpy dtype, published without Python
objects (from Python, or from compiled code without the GIL through the C API of
``ringbus_records.h``) and dispatched to batch handlers as zero-copy numpy views.

The algorithms are those of every ring (``_ringbuffer.h``); ``_recordring.h`` lays the ring
out in one pointer-free region and adds the record copy. ``RecordRing`` is a face of the ring
driver (``_driver.pyx``: consumer thread, stop/drain, blocking claim); this module adds the
record slot codec (bytes copied in, read-only views out), its region (``_region.pyx``), input
checks, policies and the C API's function table.

Ownership of a slot: a producer owns it from its claim to its publish, the consumer from
then until it releases the sequence, which it does only after every handler of the run
returned. A view handed to a handler is valid during that call only: once released, the
slots are overwritten by later records, under the view and under every array derived from
it without a copy (``view.copy()`` keeps them). What a handler kept is detected by the
storage array's reference count, since numpy makes every derived array refer to it.
"""
cimport cython
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.buffer cimport (
    PyBUF_WRITABLE, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES, PyBUF_SIMPLE,
    PyObject_GetBuffer, PyBuffer_Release,
)
from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport Py_REFCNT
from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport int32_t, int64_t, INT64_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from ringbus._atomic cimport (
    rb_cas_relaxed_i64, rb_store_relaxed_i64, rb_sequence_set,
    rb_load_relaxed_i64, rb_fetch_add_relaxed_i64, rb_cpu_pause, rb_sequence_get,
    rb_monotonic, rb_no_deadline,
)
from ringbus._ringbuffer cimport (
    RB_WAIT_BLOCK, RB_WAIT_SPIN, RB_WAIT_YIELD, RB_WAIT_SLEEP, rb_consuming_bind,
    rb_parker_hold, rb_sequencer_unblock_gap,
)
from ringbus._dispatch cimport call_in_ring
from ringbus._driver cimport Consumer, Driver, consuming_head, deadline_after, time_left
from ringbus._recordring cimport (
    RB_RECORD_PUBLISHED, RB_RECORD_FULL, RB_RECORD_DROPPED, RB_RECORD_TIMEOUT,
    RB_RECORD_WOULD_DEADLOCK, RB_RECORD_CONSUMER_GONE, RB_OVERFLOW_BLOCK, RB_OVERFLOW_RAISE,
    RB_OVERFLOW_DROP, rb_record_ring, rb_record_header, rb_record_layout,
    rb_record_region_init, rb_record_region_destroy, rb_record_ring_attach, rb_record_write,
    rb_record_publish_range, rb_record_try_publish, rb_record_release, rb_record_wait_for,
    rb_record_run_end, rb_record_claim, rb_record_slot, rb_record_header_check,
    RB_RECORD_DESCR_MAX, RB_KIND_RECORDS, RB_KIND_MESSAGES, rb_pid_gone, rb_record_share,
    rb_frame_units, rb_message_write, rb_message_publish, RB_FRAME_UNIT,
)
from ringbus._pack cimport PACK_BYTES_MAX, pack_plan, pack_plan_of, pack_record
from ringbus._ring cimport timeout_arg
from ringbus._region cimport (Region, SharedRegion, heap_region, shared_region_attach,
                             shared_region_create)
from ringbus._region import shm_path
from ringbus.records cimport (
    ringbus_record_ring, ringbus_record_ring_of, ringbus_record_publish,
    ringbus_record_try_publish, ringbus_record_publish_many, RINGBUS_PUBLISHED,
)

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

# The C API's function table: ringbus's own functions, fetched by other extensions from the
# capsule (ringbus_records.h). Kept in C: its fields are function pointers over the public,
# opaque handle type, which is this module's rb_record_ring.
cdef extern from *:
    """
    _Static_assert(RB_RECORD_PUBLISHED == RINGBUS_PUBLISHED && RB_RECORD_FULL == RINGBUS_FULL
                   && RB_RECORD_DROPPED == RINGBUS_DROPPED && RB_RECORD_TIMEOUT == RINGBUS_TIMEOUT
                   && RB_RECORD_WOULD_DEADLOCK == RINGBUS_WOULD_DEADLOCK
                   && RB_RECORD_CONSUMER_GONE == RINGBUS_CONSUMER_GONE,
                   "_recordring.h and ringbus_records.h disagree on a status code");

    static ringbus_records_api ringbus_records_api_instance;

    static void *ringbus_records_api_fill(void *ring_of)
    {
        ringbus_records_api *api = &ringbus_records_api_instance;
        api->abi_version = RINGBUS_RECORDS_ABI_VERSION;
        api->n_functions = 6;
        api->ring_of = (ringbus_record_ring *(*)(PyObject *))ring_of;
        api->try_publish = rb_record_try_publish;
        api->publish = rb_record_publish;
        api->publish_many = rb_record_publish_many;
        api->record_size = rb_record_ring_record_size;
        api->capacity = rb_record_ring_capacity;
        return api;
    }
    """
    void *ringbus_records_api_fill(void *ring_of)
    const char *RINGBUS_RECORDS_CAPSULE

import inspect
import logging
import os
import threading
import warnings
import weakref
from contextlib import contextmanager

from ringbus._checks import bool_arg, int_arg, power_of_two_arg
from ringbus._driver import RingFull, ConsumerGone

# The consuming-thread registry is the driver's, one for the whole process: the C API's
# blocking publish (compiled into this module) looks there for this thread's consumers.
rb_consuming_bind(consuming_head)

_log = logging.getLogger("ringbus")

_OVERFLOW = {"block": RB_OVERFLOW_BLOCK, "raise": RB_OVERFLOW_RAISE, "drop": RB_OVERFLOW_DROP}
_WAIT = {"block": RB_WAIT_BLOCK, "spin": RB_WAIT_SPIN, "yield": RB_WAIT_YIELD,
         "sleep": RB_WAIT_SLEEP}
# Shared rings consumed by a handle of this process, by segment: one consumer per ring.
_consumers_here = weakref.WeakValueDictionary()


def _pid_alive(pid):
    """Whether process `pid` exists (a zombie counts as gone: it runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                  # exists, another user's
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


_EXIT_TIMEOUT = 5.0          # seconds a shared ring's consumer gets to stop at exit
_WAIT_NAMES = {code: name for name, code in _WAIT.items()}
_PRODUCERS = {"single": 0, "multi": 1}
_ON_ERROR = ("log", "raise")

# The largest ring: 2**30 slots, and at most 16 GiB of records.
cdef int64_t MAX_CAPACITY = 1 << 30
cdef int64_t MAX_BYTES = (<int64_t>1) << 34
# wait="block": how long the consumer thread polls (seconds) before it parks. Long enough to
# ride out a preempted producer (on 2 shared vCPUs it took the C API benchmark from 25M to
# 37M records/s, medians); short enough that an idle ring costs little CPU.
cdef double POLL_BEFORE_PARK = 20e-6

cdef object _numpy = None


cdef object _np():
    """numpy, imported on first use: RecordRing needs it, the rest of ringbus does not."""
    global _numpy
    if _numpy is None:
        try:
            import numpy
        except ImportError as exc:
            raise ImportError("RecordRing needs numpy: pip install numpy") from exc
        _numpy = numpy
    return _numpy


cdef object _choice(str what, object value, dict table):
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, table))}, got {value!r}")
    return table[value]


cdef double unblock_arg(object value) except -1:
    """unblock_timeout=: seconds, finite and >= 0."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"unblock_timeout must be a number of seconds, got {value!r}") from None
    if not (0 <= t <= 1e9):
        raise ValueError(f"unblock_timeout must be between 0 and 1e9 seconds, got {value!r}")
    return t


cdef int _on_error_arg(object on_error) except -1:
    if on_error not in _ON_ERROR and not callable(on_error):
        raise ValueError(f"on_error must be 'log', 'raise' or a callable, got {on_error!r}")
    return 0


def get_include():
    """The directory of ringbus's C headers, for building extensions that use the record C
    API (``ringbus_records.h``; from Cython, ``from ringbus.records cimport ...``).

    >>> import ringbus, os
    >>> os.path.exists(os.path.join(ringbus.get_include(), "ringbus_records.h"))
    True
    """
    # The package's directory, not this module's: an editable install imports the package
    # (and its headers) from the sources but the compiled modules from the build tree.
    import ringbus
    return os.path.dirname(os.path.abspath(ringbus.__file__))


cdef rb_record_ring *_capi_ring_of(object obj) except NULL:
    """The C API's ring_of: a RecordRing's handle (called with the GIL)."""
    if not isinstance(obj, RecordRing):
        raise TypeError(f"expected a ringbus.RecordRing, got {type(obj).__name__}")
    (<RecordRing>obj)._ready()
    if not (<RecordRing>obj)._producing:
        (<RecordRing>obj)._produce_here()
    return (<RecordRing>obj)._rr


_C_API = PyCapsule_New(ringbus_records_api_fill(<void *>_capi_ring_of), RINGBUS_RECORDS_CAPSULE,
                       NULL)


# A region's kind: how messages name it (the noun, the class that attaches it).
_KIND_NAMES = {RB_KIND_RECORDS: ("record", "RecordRing"),
               RB_KIND_MESSAGES: ("message", "MessageRing")}


cdef Region make_region(object shared, int kind, int64_t capacity, int64_t record_size,
                        int multi, int wait, double unblock_timeout, bytes descr, str what):
    """A region with an empty ring laid out in it: a new shared-memory segment named
    ``shared``, or heap memory. The header is published last (rb_record_region_init); a
    ring whose making fails leaves no segment behind."""
    cdef int64_t available_offset, records_offset
    cdef int64_t size = rb_record_layout(capacity, record_size, multi, &available_offset,
                                         &records_offset)
    cdef Region region
    if shared is not None:
        region = shared_region_create(shared, size)
    else:
        try:
            region = heap_region(size)
        except MemoryError:
            raise MemoryError(f"cannot allocate {what} ({size} bytes)") from None
    cdef rb_record_header *h = <rb_record_header *>region.base
    try:
        # Before the layout: rb_record_region_init publishes the whole header last.
        h.kind = kind
        h.wait = wait
        h.unblock_timeout = unblock_timeout
        h.creator_pid = os.getpid()
        h.nonce = int.from_bytes(os.urandom(4), "little")
        if descr:
            memcpy(h.descr, <const char *>descr, len(descr))
            h.descr_len = len(descr)
        rb_record_region_init(region.base, capacity, record_size, multi, not region.private)
        if region.private:
            region.teardown = rb_record_region_destroy   # its parker, once the memory goes
    except BaseException:
        if shared is not None:
            (<SharedRegion>region).unlink()
        raise
    return region


cdef SharedRegion attach_region(object name, int kind):
    """Map segment ``name`` and check its header field by field (ValueError for anything
    that is not a sound ring of ``kind``: truncated, corrupted, another layout or kind)."""
    cdef SharedRegion region = shared_region_attach(name)
    cdef const char *why = rb_record_header_check(region.base, region.size)
    noun, cls = _KIND_NAMES[kind]
    if why != NULL:
        raise ValueError(f"shared-memory segment {name!r} is not a usable {noun} ring: "
                         f"{why.decode()}")
    cdef int other = (<rb_record_header *>region.base).kind
    if other != kind:
        raise ValueError(f"shared-memory segment {name!r} holds a {_KIND_NAMES[other][1]}, "
                         f"not a {cls}: attach it with {_KIND_NAMES[other][1]}.attach")
    return region

def _header_info(name):
    """What ``python -m ringbus shm ls`` shows of segment ``name``, read from its header
    once attach's checks pass (ValueError otherwise), without numpy or a handle: (kind,
    capacity in records or bytes, creator pid, consumer pid, pending)."""
    cdef SharedRegion region = shared_region_attach(name)
    cdef const char *why = rb_record_header_check(region.base, region.size)
    if why != NULL:
        raise ValueError(f"shared-memory segment {name!r} is not a usable ring: "
                         f"{why.decode()}")
    cdef rb_record_header *h = <rb_record_header *>region.base
    cdef int64_t pending
    if h.kind == RB_KIND_RECORDS:
        pending = rb_sequence_get(&h.cursor) - rb_sequence_get(&h.consumer.sequence)
        return ("records", h.capacity, h.creator_pid, rb_sequence_get(&h.consumer_pid),
                pending)
    pending = rb_sequence_get(&h.messages) - rb_sequence_get(&h.consumed)
    return ("messages", h.capacity * RB_FRAME_UNIT, h.creator_pid,
            rb_sequence_get(&h.consumer_pid), pending if pending > 0 else 0)


@cython.no_gc_clear
cdef class RegionRing(Driver):
    """What RecordRing and MessageRing share: a face of the ring driver over one region
    laid out by ``_recordring.h``, its handlers, its consumer verbs and, for a shared ring,
    its lifetime (the consumer lease, close, unlink). Not instantiated."""

    def __cinit__(self, *args, **kwargs):
        if type(self) is RegionRing:
            raise TypeError("RegionRing is what RecordRing and MessageRing share, not a ring "
                            "itself")
        self._rr = NULL
        self._handlers = ()
        self._redeliver_upto = -1

    def _hold_parker(self):
        """Not API (tests): take the ring's parker mutex and keep it, as a process killed
        while waking the consumer leaves it; the ring must go on (robust mutex)."""
        self._ready()
        rb_parker_hold(self._rr.seq.parker)

    cdef int _bind_region(self, Region region, str overflow, object on_error,
                          object shared, str unit) except -1:
        """Become the handle of the ring laid out in ``region`` (made here or attached):
        the C handle, the driver's pointers into the header, the one consumer."""
        cdef rb_record_header *h = <rb_record_header *>region.base
        self.producers = "multi" if h.multi else "single"
        self.wait = _WAIT_NAMES[h.wait]
        self.overflow = overflow
        self._overflow = _OVERFLOW[overflow]
        self._wait = h.wait
        self._on_error = on_error
        self.shared = shared
        self._region = region
        self._private_parker = region.private
        self._rr = <rb_record_ring *>malloc(sizeof(rb_record_ring))
        if self._rr == NULL:
            raise MemoryError()
        if rb_record_ring_attach(self._rr, region.base, self._overflow, self._wait) != 0:
            raise RuntimeError("ring layout check failed")   # checked before
        if not region.private:
            rb_record_share(self._rr)
        # The driver's view: every piece of state it touches is in the region's header.
        h = self._rr.header
        self._q = self._rr.seq
        self._key = h
        self._stop_target = &h.stop_target
        self._gone = &h.consumer_gone
        self._poll_before_park = POLL_BEFORE_PARK
        self._unit = unit
        self.unblock_timeout = h.unblock_timeout
        self._stuck_at = -1
        if not region.private and h.multi:
            # How often a waiting consumer looks for abandoned claims: often enough to skip
            # one soon after unblock_timeout, rarely enough to cost nothing when idle.
            self._unblock_check = min(max(h.unblock_timeout / 4, 0.001), 0.25)
        self._producing = region.private or h.multi       # else: the producer lease
        cdef Consumer c = Consumer.__new__(Consumer)
        free(c._c)
        c._c = &h.consumer
        c._owns_c = False
        c.name = type(self).__name__
        self._consumer = c
        self._consumers.append(c)
        return 0

    cdef int _ready(self) except -1:
        """Raise unless __init__ ran to its end. Every Python-visible entry point (and the C
        API's ring_of) calls it first, once per call, never per item: a ring made by
        ``__new__`` has no region behind it, and a C read would crash."""
        if not self._open:              # set last in __init__, after every allocation
            if self._rr != NULL:
                raise RuntimeError(f"this {type(self).__name__} handle is closed")
            raise RuntimeError(f"{type(self).__name__} was not initialised: call its "
                               f"constructor (or attach)")
        return 0

    # -- a shared ring: the consumer lease, closing, unlinking ------------------------------

    cdef int _consume_here(self) except -1:
        """This handle is about to consume: a shared ring's lease first."""
        if self.shared is not None and not self._leased:
            self._take_lease()
        return 0

    cdef int _take_lease(self) except -1:
        """One live consumer per shared ring: the pid of the process whose handle
        subscribes, in the header. A dead holder's lease is taken over (its death is
        checked with kill(pid, 0)); a live one's is refused, as is a second handle of this
        process (a process-local registry, since both would hold the same pid)."""
        cdef rb_record_header *h = self._rr.header
        cdef int64_t me = os.getpid(), holder
        key = self._region_key()
        other = _consumers_here.get(key)
        if other is not None and other is not self:
            raise RuntimeError(f"shared ring {self.shared!r} already has a consumer in this "
                               f"process (another {type(other).__name__} handle subscribed "
                               f"to it)")
        while True:
            holder = 0
            if rb_cas_relaxed_i64(&h.consumer_pid.value, &holder, me) or holder == me:
                break
            if _pid_alive(holder):
                raise RuntimeError(f"shared ring {self.shared!r} already has a consumer: "
                                   f"process {holder} (one consumer per ring; it is taken "
                                   f"over once that process is gone)")
            if rb_cas_relaxed_i64(&h.consumer_pid.value, &holder, me):
                # Took a dead consumer's lease over: what it handed to handlers and did not
                # release comes again, marked.
                if rb_sequence_get(&h.inflight) > rb_sequence_get(&h.consumer.sequence):
                    self._redeliver_upto = rb_sequence_get(&h.inflight)
                break
        self._leased = True
        _consumers_here[key] = self
        return 0

    cdef object _region_key(self):
        return (self.shared, <size_t>self._rr.header.creator_pid,
                <size_t>self._rr.header.region_size)

    cdef int _drop_lease(self) noexcept:
        cdef int64_t me
        if not self._leased or self._rr == NULL:
            return 0
        me = os.getpid()
        rb_cas_relaxed_i64(&self._rr.header.consumer_pid.value, &me, 0)
        self._leased = False
        if _consumers_here.get(self._region_key()) is self:
            del _consumers_here[self._region_key()]
        return 0

    cdef int _waiting(self) except -1:
        # A blocking publish into a full shared ring: its consumer may be a process that
        # was killed, and then nothing will make room.
        cdef int64_t pid
        if self.shared is None:
            return 0
        pid = rb_sequence_get(&self._rr.header.consumer_pid)
        if pid != os.getpid() and rb_pid_gone(pid):
            raise ConsumerGone(
                f"ring full and its consumer process {pid} is gone (killed, or it exited "
                f"without closing the ring): nothing makes room until a new consumer "
                f"attaches; what is queued stays in the segment")
        return 0

    cdef int _stalled(self, Consumer c, int64_t next) except -1:
        """The consumer waits for ``next``, claimed and not published: once for
        unblock_timeout, and only if its claimant is known dead (the claimants of
        _claimants.h), skip the abandoned slots and count them."""
        cdef int64_t end = self._abandoned_gap(next)
        if end < next:
            return 0
        rb_record_release(self._rr, end)
        return 1

    cdef int64_t _abandoned_gap(self, int64_t next) except -2:
        """The end of the abandoned claim at ``next`` once it has waited unblock_timeout
        there and its claimant is known dead (counted and logged), else next - 1."""
        cdef double now = rb_monotonic()
        cdef int64_t end
        if next != self._stuck_at:
            self._stuck_at = next
            self._stuck_since = now
            return next - 1
        if now - self._stuck_since < self.unblock_timeout:
            return next - 1
        end = rb_sequencer_unblock_gap(&self._q, next, rb_pid_gone)
        if end < next:
            return next - 1
        rb_fetch_add_relaxed_i64(&self._rr.header.abandoned.value, self._abandoned_count(next, end))
        self._stuck_at = -1
        _log.warning("ringbus: %s %r skipped sequences %d..%d: claimed by a producer that "
                     "died before publishing them (unblock_timeout=%ss)",
                     type(self).__name__, self.shared, next, end, self.unblock_timeout)
        return end

    cdef int64_t _abandoned_count(self, int64_t lo, int64_t hi) noexcept:
        return hi - lo + 1

    cdef int _produce_here(self) except -1:
        """A shared ring with a single producer: this handle is about to publish. One
        producer per ring: the pid in the header (a lease, as the consumer's); taken over
        from a dead process, from the cursor, since what it claimed it never published."""
        cdef rb_record_header *h = self._rr.header
        cdef int64_t me = os.getpid(), holder
        while True:
            holder = 0
            if rb_cas_relaxed_i64(&h.producer_pid.value, &holder, me):
                break
            if holder == me:
                break
            if not _pid_alive(holder):
                if rb_cas_relaxed_i64(&h.producer_pid.value, &holder, me):
                    break
                continue
            raise RuntimeError(f"shared ring {self.shared!r} has a single producer already: "
                               f"process {holder} (producers='single'; it is taken over once "
                               f"that process is gone)")
        if holder != me:
            # Claims start from what was published, not from the last producer's own count.
            h.sp_next = rb_sequence_get(&h.cursor)
            h.sp_cached_gating = -1
        self._producing = True
        return 0

    @property
    def creator_pid(self):
        """The pid of the process that made the ring."""
        self._ready()
        return self._rr.header.creator_pid

    @property
    def identity(self):
        """A name for this ring and no other, even one made later under the same name:
        ``"<name>.<creator pid>.<nonce>"``, the nonce drawn when the ring was made and kept
        in its header (a heap ring's name part is ``-``). What a bridge draining the ring
        derives its de-duplication ids from, so they hold across its restarts."""
        self._ready()
        cdef rb_record_header *h = self._rr.header
        return f"{self.shared or '-'}.{h.creator_pid}.{h.nonce:08x}"

    @property
    def consumer_pid(self):
        """A shared ring: the pid holding the consumer lease (0: none; it may be dead, then
        the next consumer takes it over). A heap ring: 0."""
        self._ready()
        return rb_sequence_get(&self._rr.header.consumer_pid)

    def close(self):
        """Let go of the ring in this process: stop this handle's consumer thread (what is
        queued stays queued, for the next consumer), give up the consumer lease, and refuse
        every later call on this handle. The memory is unmapped once no view of it is left.
        Never removes the segment (that is :meth:`unlink`). Idempotent."""
        cdef int64_t me = os.getpid()
        if not self._open:
            return
        if self._started:
            self.stop_consumers(False, -1)
        self._drop_lease()
        if self._producing and not self._region.private and not self._rr.seq.multi:
            rb_cas_relaxed_i64(&self._rr.header.producer_pid.value, &me, 0)
        self._open = False
        self._handlers = ()

    def unlink(self):
        """Remove a shared ring's segment name: no process can attach any more; processes
        that have it mapped go on until they close. Idempotent; the ring stays usable here."""
        if self._rr == NULL:
            self._ready()                    # says the ring was never made
        if self.shared is None:
            raise RuntimeError(f"unlink() is for a shared ring ({type(self).__name__}(..., "
                               f"shared=name))")
        (<SharedRegion>self._region).unlink()

    def __enter__(self):
        self._ready()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def __dealloc__(self):
        # No consumer thread can run here (it holds a reference to the ring). Producers
        # holding the C handle must have kept a reference too (ringbus_records.h).
        self._drop_lease()
        free(self._rr)

    # -- handlers --------------------------------------------------------------------------

    cdef int _add_handler(self, object handler) except -1:
        self._ready()
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        if (inspect.iscoroutinefunction(handler) or inspect.isgeneratorfunction(handler)
                or inspect.isasyncgenfunction(handler)):
            # Its call would only make a coroutine or generator: what it was handed is gone
            # by the time anything could run it, so its body would never see it.
            raise TypeError(f"a {type(self).__name__} handler must be a plain function that "
                            f"reads what it is handed during the call; {handler!r} is a "
                            f"coroutine or generator function")
        self._consume_here()
        self._handlers = self._handlers + (handler,)
        return 0

    def unsubscribe(self, handler):
        """Remove the first subscription of ``handler``; returns whether there was one."""
        self._ready()
        cdef list hs = list(self._handlers)
        for i, h in enumerate(hs):
            if h is handler or h == handler:
                del hs[i]
                self._handlers = tuple(hs)
                return True
        return False

    @property
    def handlers(self):
        """The subscribed handlers, in call order."""
        self._ready()
        return self._handlers

    cdef object _call_handlers(self, tuple handlers, object item, int64_t sequence,
                               Py_ssize_t n, str unit, int64_t items, bint *failed):
        """Every handler with ``item`` (``n`` ``unit`` from ring sequence ``sequence`` on,
        ``items`` records or messages), each Exception isolated and reported; returns the
        first one to raise afterwards (on_error="raise"), else None. Marks it redelivered
        (and counts it) where a dead consumer may have handled it."""
        cdef bint again = sequence <= self._redeliver_upto
        if again:
            rb_fetch_add_relaxed_i64(&self._rr.header.redelivered.value, items)
        first = None
        failed[0] = False
        for h in handlers:
            try:
                call_in_ring(h, item, self, sequence, again)
            except Exception as exc:
                failed[0] = True
                if first is None and self._on_error == "raise":
                    first = exc
                self._failed(h, item, exc, f"{n} {unit}")
        return first

    cdef int _failed(self, object handler, object item, object exc, str what) except -1:
        self.errors += 1
        if self._on_error == "log":
            _log.error("ringbus: %s handler %r failed on %s", type(self).__name__, handler,
                       what, exc_info=exc)
        elif self._on_error != "raise":
            self._on_error(handler, item, exc)
        return 0

    # -- the consumer ----------------------------------------------------------------------

    cdef int64_t _queued(self) noexcept:
        # Slots claimed and not yet released (skipped abandoned slots are released).
        return (rb_sequence_get(&self._rr.header.cursor)
                - rb_sequence_get(&self._rr.header.consumer.sequence))

    cdef int _close_at_exit(self) except -1:
        # What a shared ring still holds stays in its segment for the next consumer: not
        # lost, so not reported; this process only stops its consumer and lets the lease go.
        # A handle closed before exit was let go by its owner: nothing to report for it
        # (a shared ring's other processes may still be filling or draining it).
        if not self._open:
            return 0
        if self.shared is None:
            return Driver._close_at_exit(self)
        cdef list errors = []
        self.close_consumers(_EXIT_TIMEOUT, errors)        # bounded, as for every ring
        for exc in errors:
            _log.error("ringbus: the consumer thread of %r ended on %s", self,
                       type(exc).__name__, exc_info=exc)
        self._drop_lease()
        return 0

    cdef int _forked(self) except -1:
        # The lease is the parent's pid: this copy of the handle does not hold it.
        if self._leased:
            self._leased = False
            if _consumers_here.get(self._region_key()) is self:
                del _consumers_here[self._region_key()]
        return 0

    cdef Py_ssize_t _drain(self, str arg, object max_n) except -1:
        """drain(): at most ``max_n`` (None: no limit; its name is ``arg``) on this thread."""
        self._ready()
        cdef Py_ssize_t limit = -1
        if max_n is not None:
            limit = int_arg(arg, max_n, low=0, high=PY_SSIZE_T_MAX, none_ok=True)
        self._consume_here()                 # consuming, even without handlers
        return self.drain_consumer(self._consumer, limit)

    def start(self):
        """Start the consumer thread: it waits without the GIL (the ``wait`` strategy) and
        takes the GIL once per batch to call the handlers."""
        self._ready()
        self._consume_here()
        self.start_consumers()

    def stop(self, drain=True, timeout=None):
        """Stop the consumer thread and wait for it.

        ``drain=True``: first dispatch everything published (claimed, with several
        producers) before this call. ``drain=False``: stop after the batch in hand; the rest
        stays queued. Re-raises the exception that ended the thread, if any. TimeoutError
        if the thread is not done within ``timeout`` seconds.
        """
        self._ready()
        self.stop_consumers(bool_arg("drain", drain), timeout_arg(timeout))

    @contextmanager
    def running(self):
        """``with ring.running(): ...`` starts the consumer thread and stops it (drain=True)."""
        self._ready()
        self.start()
        try:
            yield self
        finally:
            self.stop(True)

    @property
    def started(self):
        """Whether the consumer thread is started."""
        self._ready()
        return self._started

    # -- counters --------------------------------------------------------------------------

    cdef int64_t _published(self) noexcept:
        # The cursor: claimed with several producers (a claim is published moments later),
        # published with one. Never sp_next: that is the producer's own, unsynchronized.
        return rb_sequence_get(&self._rr.header.cursor) + 1

    cdef int64_t _dispatched(self) noexcept:
        # Released, less what was released unhandled (abandoned by a dead producer).
        return (rb_sequence_get(&self._rr.header.consumer.sequence) + 1
                - rb_sequence_get(&self._rr.header.abandoned))

    @property
    def published(self):
        """Published since the ring was made (claimed, with several producers)."""
        self._ready()
        return self._published()

    @property
    def dispatched(self):
        """Handed to the handlers and released by the consumer."""
        self._ready()
        return self._dispatched()

    @property
    def dropped(self):
        """Refused by ``overflow="drop"``."""
        self._ready()
        return rb_load_relaxed_i64(&self._rr.header.dropped.value)

    @property
    def pending(self):
        """Published and not yet dispatched."""
        self._ready()
        return self._queued()

    @property
    def abandoned(self):
        """Skipped unhandled: claimed by a producer process that died before publishing
        (records: slots; messages: claims). Only shared rings with several producers."""
        self._ready()
        return rb_sequence_get(&self._rr.header.abandoned)

    @property
    def redelivered(self):
        """Delivered again, marked ``current_event().redelivered``: what a consumer process
        that died had in hand (records, or messages), summed over every consumer."""
        self._ready()
        return rb_sequence_get(&self._rr.header.redelivered)

    def stats(self):
        """Counters as a dict: published, dispatched, dropped, abandoned, redelivered,
        pending, batches, errors."""
        self._ready()
        return {
            "published": self._published(),
            "dispatched": self._dispatched(),
            "dropped": self.dropped,
            "abandoned": rb_sequence_get(&self._rr.header.abandoned),
            "redelivered": rb_sequence_get(&self._rr.header.redelivered),
            "pending": self._queued(),
            "batches": self.batches,
            "errors": self.errors,
        }

    def __len__(self):
        self._ready()
        return self.pending


@cython.final
@cython.no_gc_clear
cdef class RecordRing(RegionRing):
    # The first line is the constructor's text signature (the "--" ends it), for
    # inspect.signature(), help() and IDEs; tests/test_signatures.py keeps it in step.
    """RecordRing(dtype, capacity=65536, *, producers='multi', overflow='block', wait='block', unblock_timeout=1.0, on_error='log', shared=None)
--

A bounded ring of fixed-size records, from producers to batch handlers.

    >>> import numpy as np
    >>> TICK = np.dtype([("seq", "<i8"), ("price", "<f8")])
    >>> ring = RecordRing(TICK, 1024)
    >>> ring.publish((1, 101.5))
    True
    >>> ring.publish_many(np.array([(2, 101.6), (3, 101.4)], dtype=TICK))
    2
    >>> @ring.subscribe
    ... def on_ticks(view):              # a read-only numpy view of contiguous records
    ...     print(view["seq"].tolist(), float(view["price"].sum()))
    >>> ring.drain()
    [1, 2, 3] 304.5
    3

    dtype : numpy dtype (or anything ``numpy.dtype()`` accepts)
        The layout of one record. No object fields: records are plain bytes.
    capacity : int, a power of two >= 2
        Records the ring holds, allocated once in a single block (header, availability
        flags and records, addressed by offsets: a layout that could be shared between
        processes).
    producers : "multi" (default) or "single"
        "single" claims without a CAS; use it only when one thread publishes.
    overflow : "block" (default), "raise" or "drop"
        What ``publish`` does on a full ring once its wait for room ends (``timeout=`` of
        the call; without one: forever under "block", none otherwise): raise
        :class:`RingFull` ("block", "raise"), or drop and count in ``dropped`` ("drop").
    wait : "block" (default), "spin", "yield" or "sleep"
        How the consumer thread waits for records, always without the GIL. With "block" it
        parks and every publish pays a fence to wake it; the others poll.
    unblock_timeout : float (1.0)
        Seconds a claimed slot may stay unpublished before the consumer checks whether its
        producer died (a shared ring's faults, see the README); recorded in the ring.
    on_error : "log" (default), "raise" or a callable
        An Exception from a handler never stops the other handlers nor loses the records.
        "log" logs it (counted in ``errors``); "raise" re-raises the first one once the
        run's handlers ran (from ``drain``, or from ``stop`` when the consumer thread ended
        on it); a callable is called as ``on_error(handler, view, exc)``.
    shared : str or None (None)
        A name: the ring lives in a new POSIX shared-memory segment
        (``/dev/shm/ringbus.<name>``, mode 0600; FileExistsError if the name is taken) that
        other processes map with :meth:`attach`, producing from any of them and consuming
        from one (the consumer lease). The segment stays until :meth:`unlink`.

    Compiled producers publish without the GIL through the C API of ``ringbus_records.h``
    (``from ringbus.records cimport ...``; see ``ringbus.get_include()``).
    """
    cdef object _records            # ndarray (capacity,) of dtype over the record storage
    cdef readonly object dtype
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t record_size
    cdef pack_plan _pack            # publish()'s path around numpy for plain numeric records

    def __init__(self, dtype, capacity=65536, *, producers="multi",
                 overflow="block", wait="block", unblock_timeout=1.0, on_error="log",
                 shared=None):
        if self._rr != NULL:
            raise RuntimeError("RecordRing.__init__ called twice")
        np = _np()
        if dtype is None:
            # numpy.dtype(None) is float64: a ring of doubles nobody asked for.
            raise TypeError("dtype must be a numpy dtype (or a spec numpy.dtype() accepts), "
                            "got None")
        if isinstance(dtype, np.dtype):
            dt = dtype
        else:
            try:
                dt = np.dtype(dtype)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"dtype must be a numpy dtype (or a spec numpy.dtype() "
                                f"accepts), got {dtype!r}: {exc}") from None
        if dt.hasobject:
            raise TypeError(f"a record dtype cannot hold Python objects (a record is plain "
                            f"bytes copied between threads), got {dt}")
        if dt.subdtype is not None:
            raise TypeError(f"a record dtype must not be a subarray ({dt}): wrap it in a "
                            f"field, e.g. numpy.dtype([('values', {dt.base.str!r}, "
                            f"{dt.shape})])")
        if dt.itemsize == 0:
            raise ValueError(f"a record dtype needs at least one byte, got {dt}")
        capacity = power_of_two_arg("capacity", capacity, MAX_CAPACITY)
        if <int64_t>capacity * dt.itemsize > MAX_BYTES:
            raise ValueError(f"{capacity} records of {dt.itemsize} bytes exceed "
                             f"{MAX_BYTES >> 30} GiB")
        cdef int multi = _choice("producers", producers, _PRODUCERS)
        cdef int wait_code = _choice("wait", wait, _WAIT)
        _choice("overflow", overflow, _OVERFLOW)
        _on_error_arg(on_error)
        cdef double unblock = unblock_arg(unblock_timeout)
        cdef bytes descr = b""
        if shared is not None:
            shm_path(shared)                # the name is checked before anything is made
            # The dtype as numpy's own .npy header writes it: a process that attaches
            # rebuilds exactly this dtype from it (fields, offsets, byte order).
            descr = repr(np.lib.format.dtype_to_descr(dt)).encode()
            if len(descr) > RB_RECORD_DESCR_MAX:
                raise ValueError(f"the dtype's description takes {len(descr)} bytes, more "
                                 f"than a shared ring's header holds ({RB_RECORD_DESCR_MAX})")

        cdef Region region = make_region(shared, RB_KIND_RECORDS, capacity, dt.itemsize, multi,
                                         wait_code, unblock, descr,
                                         f"a ring of {capacity} records")
        try:
            self._bind(region, dt, overflow, on_error, shared)
        except BaseException:
            if shared is not None:
                (<SharedRegion>region).unlink()    # a ring that was never made leaves no name
            raise

    @classmethod
    def attach(cls, name, dtype=None, *, overflow="block", on_error="log"):
        """Attach to the shared ring another process (or this one) made with
        ``RecordRing(dtype, capacity, shared=name)``.

        The segment fixes capacity, producers, wait and dtype; they are read from its
        header, which is checked field by field first (a segment that is not a ring of this
        layout, truncated or corrupted is refused with ValueError, never read past its end).
        ``dtype``: if given, a segment holding another dtype is refused. ``overflow`` and
        ``on_error`` are this handle's own policies.
        """
        np = _np()
        _choice("overflow", overflow, _OVERFLOW)
        _on_error_arg(on_error)
        cdef SharedRegion region = attach_region(name, RB_KIND_RECORDS)
        cdef rb_record_header *h = <rb_record_header *>region.base
        if h.descr_len == 0:
            raise ValueError(f"shared-memory segment {name!r} records no dtype")
        text = (<char *>h.descr)[:h.descr_len].decode("ascii", "replace")
        try:
            import ast
            dt = np.lib.format.descr_to_dtype(ast.literal_eval(text))
        except Exception as exc:
            raise ValueError(f"shared-memory segment {name!r}: its dtype description "
                             f"{text[:80]!r} does not parse ({exc})") from None
        if dt.itemsize != h.record_size or dt.hasobject:
            raise ValueError(f"shared-memory segment {name!r}: its dtype {dt} does not "
                             f"match its record size ({h.record_size} bytes)")
        if dtype is not None:
            want = np.dtype(dtype)
            if want != dt:
                raise ValueError(f"shared-memory segment {name!r} holds records of {dt}, "
                                 f"not {want}")
        cdef RecordRing self = cls.__new__(cls)
        self._bind(region, dt, overflow, on_error, name)
        return self

    cdef int _bind(self, Region region, object dt, str overflow, object on_error,
                   object shared) except -1:
        """Become the handle of the ring laid out in ``region`` (made here or attached)."""
        np = _np()
        cdef rb_record_header *h = <rb_record_header *>region.base
        self.dtype = dt
        self.capacity = h.capacity
        self.record_size = h.record_size
        pack_plan_of(&self._pack, dt)
        region.export(h.records_offset, h.capacity * h.record_size)
        self._bind_region(region, overflow, on_error, shared, "records")
        self._records = np.frombuffer(region, dtype=dt)
        self._open = True
        return 0

    def close(self):
        RegionRing.close(self)
        self._records = None       # the storage array: the region goes once no view is left

    # -- producers -------------------------------------------------------------------------

    cdef object _record_in(self, object record):
        """One record (numpy void, 0-d or 1-record array, tuple, scalar) as a C-contiguous
        array of one record of the ring's dtype; a clear TypeError/ValueError when it does not
        fit. A fresh array per call: two threads may publish at once, and a publish may wait
        for room without the GIL."""
        np = _numpy
        if isinstance(record, (np.ndarray, np.void)):
            if record.dtype != self.dtype:
                raise TypeError(f"record has dtype {record.dtype}, the ring's is {self.dtype}")
        elif self.dtype.names is not None and not isinstance(record, tuple):
            # numpy would broadcast a scalar into every field, or read a list as records.
            raise TypeError(f"a record of {self.dtype} is a tuple of its "
                            f"{len(self.dtype.names)} field values, a numpy void or a "
                            f"1-record array, got {type(record).__name__}: {record!r}")
        try:
            arr = np.array(record, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"record {record!r} does not fit the ring's dtype "
                            f"{self.dtype}: {exc}") from None
        if arr.shape not in ((), (1,)):
            raise ValueError(f"publish() takes one record, got {arr.shape[0] if arr.ndim else 0}"
                             f" (shape {arr.shape}) from {record!r}; use publish_many() for "
                             f"several")
        return arr

    cdef object _records_in(self, object records):
        """A C-contiguous 1-D array of the ring's dtype holding ``records``."""
        np = _numpy
        if isinstance(records, np.ndarray):
            if records.dtype != self.dtype:
                raise TypeError(f"records have dtype {records.dtype}, the ring's is "
                                f"{self.dtype} (convert with records.astype(ring.dtype) if "
                                f"that is meant)")
            arr = records
        elif isinstance(records, np.void):
            raise TypeError("publish_many() takes an array or a sequence of records, got one "
                            "record: use publish() for it")
        else:
            if not isinstance(records, (list, tuple)):
                try:
                    records = list(records)
                except TypeError:
                    raise TypeError(f"records must be an array of {self.dtype} or a sequence "
                                    f"of records, got {type(records).__name__}") from None
            if (self.dtype.names is not None and records
                    and not isinstance(records[0], (tuple, np.void))):
                # numpy would broadcast a scalar into every field of a record.
                raise TypeError(f"records of {self.dtype} are tuples of its "
                                f"{len(self.dtype.names)} field values (or numpy voids), got "
                                f"{type(records[0]).__name__}: {records[0]!r}")
            try:
                arr = np.array(records, dtype=self.dtype)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"records do not fit the ring's dtype {self.dtype}: "
                                f"{exc}") from None
        if arr.ndim != 1:
            raise ValueError(f"publish_many() takes a 1-D array of records, got shape "
                             f"{arr.shape}")
        return np.ascontiguousarray(arr)

    cdef int64_t _publish_from(self, const unsigned char *src, int64_t n,
                               double timeout) except -1:
        """Publish n packed records from src with the GIL held, waiting for room without
        it; returns how many went in (fewer only under overflow="drop", the rest counted).
        Claim and publish never release the GIL between them, so a claim is always
        published before stop() or another Python thread looks."""
        cdef rb_record_ring *rr = self._rr
        cdef int64_t done = 0, got = 0, hi = 0
        cdef double deadline = deadline_after(timeout)
        while done < n:
            got = rb_record_claim(rr, n - done, &hi)
            if got == 0:
                if timeout < 0 and self._overflow == RB_OVERFLOW_DROP:
                    rb_fetch_add_relaxed_i64(&rr.header.dropped.value, n - done)
                    return done
                if timeout < 0 and self._overflow == RB_OVERFLOW_RAISE:
                    self._full(done, n, f"ring full ({self.capacity} records pending); "
                                        f"overflow='raise'")
                try:
                    # The timeout bounds the whole call, not each run of free slots.
                    got = self.claim_within(n - done, time_left(deadline),
                                            self._overflow == RB_OVERFLOW_DROP, &hi)
                except (RingFull, ConsumerGone) as exc:
                    if n > 1:
                        exc.args = (f"{exc} (after {done} of {n} records)",)
                    exc.published = done
                    raise
                if got == 0:
                    rb_fetch_add_relaxed_i64(&rr.header.dropped.value, n - done)
                    return done
            rb_record_write(rr, hi - got + 1, hi, src + done * self.record_size)
            rb_record_publish_range(rr, hi - got + 1, hi)
            done += got
        return done

    cdef int _full(self, int64_t done, int64_t n, str message) except -1:
        exc = RingFull(message if n == 1 else f"{message} (after {done} of {n} records)")
        exc.published = done
        raise exc

    def publish(self, record, timeout=None):
        """Copy one record into the ring; True if published, False if dropped
        (``overflow="drop"``).

        ``record``: a numpy void of the ring's dtype (``array[i]``), a 0-d or 1-record
        array, a tuple of field values, or a scalar for a plain dtype.

        Full ring: wait for room up to ``timeout`` seconds, then the overflow policy acts:
        ``"drop"`` drops the event (counted in ``dropped``, returns False), ``"block"`` and
        ``"raise"`` raise :class:`RingFull`. ``timeout=None`` is the policy's own wait:
        forever under ``"block"``, none under ``"raise"`` and ``"drop"``.
        """
        self._ready()
        if not self._producing:
            self._produce_here()
        cdef double t = timeout_arg(timeout)
        cdef unsigned char packed[PACK_BYTES_MAX]
        memset(packed, 0, self._pack.record_size if self._pack.fields >= 0 else 0)
        if pack_record(&self._pack, record, packed):
            return self._publish_from(packed, 1, t) == 1
        cdef Py_buffer buf
        PyObject_GetBuffer(self._record_in(record), &buf, PyBUF_SIMPLE)
        try:
            return self._publish_from(<const unsigned char *>buf.buf, 1, t) == 1
        finally:
            PyBuffer_Release(&buf)

    def try_publish(self, record):
        """Copy one record into the ring if there is room now; never blocks, never counts a
        drop. Returns whether it was published."""
        self._ready()
        if not self._producing:
            self._produce_here()
        cdef Py_buffer buf
        cdef int rc
        cdef unsigned char packed[PACK_BYTES_MAX]
        memset(packed, 0, self._pack.record_size if self._pack.fields >= 0 else 0)
        if pack_record(&self._pack, record, packed):
            return rb_record_try_publish(self._rr, packed) == RB_RECORD_PUBLISHED
        PyObject_GetBuffer(self._record_in(record), &buf, PyBUF_SIMPLE)
        rc = rb_record_try_publish(self._rr, buf.buf)
        PyBuffer_Release(&buf)
        return rc == RB_RECORD_PUBLISHED

    def publish_many(self, records, timeout=None):
        """Copy an array of records (the ring's dtype, or a sequence numpy converts to it)
        into the ring, claiming runs of free slots at once; returns how many were published.

        Fewer than ``len(records)`` only under ``overflow="drop"`` (the rest counted in
        ``dropped``). :class:`RingFull` (with ``published`` set to how many went in first)
        as for :meth:`publish`; ``timeout`` bounds the whole call.
        """
        self._ready()
        if not self._producing:
            self._produce_here()
        cdef double t = timeout_arg(timeout)
        arr = self._records_in(records)
        cdef Py_ssize_t n = arr.shape[0]
        cdef Py_buffer buf
        if n == 0:
            return 0
        # The array stays exported (it cannot be resized) while a wait releases the GIL.
        PyObject_GetBuffer(arr, &buf, PyBUF_SIMPLE)
        try:
            return self._publish_from(<const unsigned char *>buf.buf, n, t)
        finally:
            PyBuffer_Release(&buf)

    # -- consumer --------------------------------------------------------------------------

    def subscribe(self, handler):
        """Call ``handler(view)`` for every batch: a read-only numpy view of consecutive
        records, in publish order (claim order with several producers). A batch that wraps
        around the end of the storage comes as two calls. The view, and every array derived
        from it without a copy (``view["seq"]``, ``view[1:]``), is valid during the call
        only: ``view.copy()`` keeps it (one RuntimeWarning per ring when a handler returns
        still holding either). Handlers run in subscription order; a change takes
        effect from the next batch. Returns ``handler`` (usable as a decorator)."""
        self._add_handler(handler)
        return handler

    cdef int64_t _dispatch(self, int64_t lo, int64_t hi) except -1:
        """Hand lo..hi (published) to the handlers with the GIL held, one zero-copy view per
        contiguous run, releasing each run once its handlers returned; returns the last
        sequence released. A BaseException stops after the run it interrupted (released:
        its handlers ran, or were cut short); later records stay queued."""
        cdef rb_record_ring *rr = self._rr
        cdef tuple handlers = self._handlers
        cdef int64_t a = lo, end = lo - 1
        cdef Py_ssize_t i0, storage_refs
        cdef bint kept, failed
        cdef object first
        records = self._records
        while a <= hi:
            end = rb_record_run_end(rr, a, hi)
            if a <= self._redeliver_upto < end:
                end = self._redeliver_upto       # a batch is redelivered whole, or not
            rb_sequence_set(&rr.header.inflight, end)
            i0 = <Py_ssize_t>(a & rr.seq.mask)
            # numpy makes every array derived from a view (a field, a slice, .view(), .T)
            # refer to the storage array itself, not to the view: counting the storage's
            # references catches what a handler kept, the view or anything derived from it.
            storage_refs = Py_REFCNT(records)
            view = records[i0:i0 + <Py_ssize_t>(end - a + 1)]
            first = None
            failed = False
            try:
                first = self._call_handlers(handlers, view, a, end - a + 1, "records",
                                            end - a + 1, &failed)
            finally:
                view = None
                # The storage's references as before the view: more, and a handler kept
                # the view or an array derived from it, which later records overwrite.
                # (A failed handler's traceback still holds its frame and the view.)
                kept = not failed and Py_REFCNT(records) > storage_refs
                self.batches += 1
                # Release: the handlers' reads of these slots are done; producers may reuse.
                rb_record_release(rr, end)
            if kept and not self._warned_kept_view:
                # After the release: a warning turned into an exception leaves a ring whose
                # consumer state is whole.
                self._warned_kept_view = True
                warnings.warn(
                    "a RecordRing handler kept its view, or an array derived from it (a field, "
                    "a slice, a reshaped or re-typed view), past its call: the ring reuses "
                    "those slots for later records; keep view.copy() (or "
                    "view['field'].copy()) instead", RuntimeWarning, stacklevel=1)
            if first is not None:
                raise first
            a = end + 1
        return end

    def drain(self, max_records=None):
        """Dispatch the published records on this thread, in order; returns how many.

        Goes on until the ring is empty (records published meanwhile included) or
        ``max_records`` were dispatched. Not while the consumer thread runs.
        """
        return self._drain("max_records", max_records)

    cdef Py_ssize_t _handle(self, Consumer c, int64_t lo, int64_t hi) except -1:
        cdef int64_t end = self._dispatch(lo, hi)
        PyErr_CheckSignals()
        return end - lo + 1

    def __repr__(self):
        if not self._open:
            return "<ringbus RecordRing (closed or not initialised)>"
        return (f"<ringbus RecordRing dtype={self.dtype} capacity={self.capacity} "
                f"producers={self.producers!r} overflow={self.overflow!r} wait={self.wait!r} "
                f"pending={self.pending}>")


# -- half a publish (test hook) ------------------------------------------------------------
# What a producer killed between claiming and publishing leaves, on purpose: the faults
# tests claim with the first, then kill (or stop, then let publish) the process.

def _claim_unpublished(RegionRing ring, Py_ssize_t n):
    """Claim ``n`` slots (a MessageRing: the frame of an ``n``-byte message) and publish
    nothing; returns ``(lo, hi)``. RingFull when there is no room now."""
    ring._ready()
    if not ring._producing:
        ring._produce_here()
    cdef int64_t hi = 0
    cdef int64_t units = rb_frame_units(n) if ring._rr.header.kind == RB_KIND_MESSAGES else n
    cdef int64_t got = rb_record_claim(ring._rr, units, &hi)
    if got == 0:
        raise RingFull("no room for the claim")
    return hi - got + 1, hi


def _publish_claimed(RegionRing ring, int64_t lo, int64_t hi, const unsigned char[::1] data):
    """Publish a claim of _claim_unpublished: ``data`` is the claim's records (packed) or
    its message."""
    ring._ready()
    if ring._rr.header.kind == RB_KIND_MESSAGES:
        if rb_frame_units(data.shape[0]) > hi - lo + 1:
            raise ValueError("data is longer than the claimed message")
        rb_message_write(ring._rr, lo, hi, &data[0], data.shape[0])
        rb_message_publish(ring._rr, lo, hi)
    else:
        if data.shape[0] != (hi - lo + 1) * ring._rr.record_size:
            raise ValueError("data must hold the claim's records")
        rb_record_write(ring._rr, lo, hi, &data[0])
        rb_record_publish_range(ring._rr, lo, hi)


# -- nogil producer (test and benchmark hook) ---------------------------------------------
# Publishes through the public C API (ringbus_records.h, the capsule's function table),
# exactly as another extension would, from the calling thread with the GIL released.

def _publish_nogil(ring, source, Py_ssize_t count, *, Py_ssize_t seq_offset=-1,
                   int64_t base=0, double timeout=-1, Py_ssize_t batch=0, bint use_try=False):
    """Publish ``count`` records without the GIL; record i is ``source[i % len(source)]``
    with, if ``seq_offset >= 0``, the int64 at that byte offset set to ``base + i``.

    ``batch > 0``: ``ringbus_record_publish_many`` in chunks of ``batch`` records;
    ``use_try``: spin on ``ringbus_record_try_publish``; otherwise ``ringbus_record_publish``
    with ``timeout``. Returns ``(published, last status, seconds)``; stops at the first
    record that is not published.
    """
    np = _np()
    cdef ringbus_record_ring *h = ringbus_record_ring_of(ring)
    cdef RecordRing rr = <RecordRing>ring
    src_arr = np.ascontiguousarray(source, dtype=rr.dtype)
    if src_arr.ndim != 1 or src_arr.shape[0] == 0:
        raise ValueError("source must be a non-empty 1-D array of the ring's dtype")
    cdef Py_ssize_t rs = rr.record_size, m = src_arr.shape[0]
    if seq_offset >= 0 and seq_offset + 8 > rs:
        raise ValueError(f"seq_offset {seq_offset} + 8 exceeds the record size {rs}")
    if batch < 0 or count < 0:
        raise ValueError("count and batch must be >= 0")
    cdef const unsigned char[::1] src = src_arr.view(np.uint8)
    cdef Py_ssize_t chunk = batch if batch > 0 else 1
    cdef unsigned char *buf = <unsigned char *>malloc(chunk * rs)
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t i = 0, j, k
    cdef int64_t v, got
    cdef int rc = RINGBUS_PUBLISHED
    cdef double t0, elapsed
    try:
        with nogil:
            t0 = rb_monotonic()
            while i < count:
                k = count - i if count - i < chunk else chunk
                for j in range(k):
                    memcpy(buf + j * rs, &src[((i + j) % m) * rs], rs)
                    if seq_offset >= 0:
                        v = base + i + j
                        memcpy(buf + j * rs + seq_offset, &v, 8)
                if batch > 0:
                    got = ringbus_record_publish_many(h, buf, k, timeout, &rc)
                    i += got
                    if rc != RINGBUS_PUBLISHED:
                        break
                elif use_try:
                    while ringbus_record_try_publish(h, buf) != RINGBUS_PUBLISHED:
                        pass
                    i += 1
                else:
                    rc = ringbus_record_publish(h, buf, timeout)
                    if rc != RINGBUS_PUBLISHED:
                        break
                    i += 1
            elapsed = rb_monotonic() - t0
    finally:
        free(buf)
    return i, rc, elapsed


# -- nogil stress (test hook) ---------------------------------------------------------------
# In RecordRing's own consumer the records are read by numpy, which a sanitizer build does
# not instrument. Here C threads do everything without the GIL: producers publish through
# the C API's function table, a C consumer reads each record in place, checks it and
# releases runs as RecordRing._dispatch does, so that a TSAN build (.ci/sanitize) sees every
# access to the slots and any missing order shows as a data race.

from ringbus._cthreads cimport pthread_t, pthread_create, pthread_join, calloc


cdef struct _StressArgs:
    ringbus_record_ring *handle     # producers: the C API handle
    rb_record_ring *ring            # the consumer: the ring itself
    int64_t index                   # producer id
    int64_t per_producer
    int64_t producers
    int64_t batch                   # producers: > 0 publish_many chunks, 0 publish, -1 try
    int32_t strategy                # the consumer's wait strategy
    int64_t errors                  # consumer: sequence or content errors; producers: failures


cdef inline int64_t _stress_payload(int64_t v) noexcept nogil:
    # The second word of a record, derived from the first: a torn record shows.
    return v * 3 + 1


cdef void *_stress_produce(void *p) noexcept nogil:
    cdef _StressArgs *a = <_StressArgs *>p
    cdef int64_t chunk = a.batch if a.batch > 0 else 1, i = 0, j, k, got, v
    cdef int64_t *buf = <int64_t *>malloc(chunk * 2 * sizeof(int64_t))
    cdef int rc
    if buf == NULL:
        a.errors = -1
        return NULL
    while i < a.per_producer:
        k = a.per_producer - i if a.per_producer - i < chunk else chunk
        for j in range(k):
            v = (a.index << 32) | (i + j)
            buf[2 * j] = v
            buf[2 * j + 1] = _stress_payload(v)
        if a.batch > 0:
            got = ringbus_record_publish_many(a.handle, buf, k, -1, &rc)
            if got != k or rc != RINGBUS_PUBLISHED:
                a.errors += 1
                break
        elif a.batch < 0:
            while ringbus_record_try_publish(a.handle, buf) != RINGBUS_PUBLISHED:
                rb_cpu_pause()
        elif ringbus_record_publish(a.handle, buf, -1) != RINGBUS_PUBLISHED:
            a.errors += 1
            break
        i += k
    free(buf)
    return NULL


cdef void *_stress_consume(void *p) noexcept nogil:
    cdef _StressArgs *a = <_StressArgs *>p
    cdef rb_record_ring *rr = a.ring
    cdef int64_t total = a.per_producer * a.producers, next = 0, avail, lo, end, s, pid
    cdef int64_t rec[2]
    cdef int64_t *expected = <int64_t *>calloc(a.producers, sizeof(int64_t))
    if expected == NULL:
        a.errors = -1
        return NULL
    while next < total:
        avail = rb_record_wait_for(rr, next, a.strategy, rb_no_deadline())
        lo = next
        while lo <= avail:
            end = rb_record_run_end(rr, lo, avail)
            for s in range(lo, end + 1):
                memcpy(rec, rb_record_slot(rr, s), 16)
                pid = rec[0] >> 32
                if (pid < 0 or pid >= a.producers
                        or (rec[0] & <int64_t>0xFFFFFFFF) != expected[pid]
                        or rec[1] != _stress_payload(rec[0])):
                    a.errors += 1
                else:
                    expected[pid] += 1
            rb_record_release(rr, end)
            lo = end + 1
        next = avail + 1
    for pid in range(a.producers):
        if expected[pid] != a.per_producer:
            a.errors += 1
    free(expected)
    return NULL


def _stress_nogil(int producers=2, int64_t per_producer=100000, Py_ssize_t capacity=256,
                  producer_mode="multi", wait="block", int64_t batch=0):
    """Test hook: ``producers`` C threads publish ``per_producer`` 16-byte records each
    through the C API (``batch`` > 0: publish_many chunks; 0: publish; -1: spin on
    try_publish) while a C consumer thread checks per-producer FIFO, no loss, no duplicate
    and no torn record; nothing holds the GIL. Returns ``(errors, seconds)``."""
    if producers < 1 or (producer_mode == "single" and producers != 1):
        raise ValueError("producers must be >= 1, and 1 with producer_mode='single'")
    ring = RecordRing(_np().dtype([("seq", "<i8"), ("check", "<i8")]), capacity,
                      producers=producer_mode, wait=wait)
    cdef RecordRing r = ring
    cdef ringbus_record_ring *handle = ringbus_record_ring_of(ring)
    cdef int nthreads = producers + 1, i, rc = 0
    cdef _StressArgs *args = <_StressArgs *>calloc(nthreads, sizeof(_StressArgs))
    cdef pthread_t *threads = <pthread_t *>calloc(nthreads, sizeof(pthread_t))
    cdef int64_t errors = 0
    cdef double t0, elapsed
    try:
        if args == NULL or threads == NULL:
            raise MemoryError()
        for i in range(nthreads):
            args[i].handle = handle
            args[i].ring = r._rr
            args[i].index = i - 1
            args[i].per_producer = per_producer
            args[i].producers = producers
            args[i].batch = batch
            args[i].strategy = r._wait
        with nogil:
            t0 = rb_monotonic()
            rc |= pthread_create(&threads[0], NULL, _stress_consume, &args[0])
            for i in range(1, nthreads):
                rc |= pthread_create(&threads[i], NULL, _stress_produce, &args[i])
            for i in range(nthreads):
                pthread_join(threads[i], NULL)
            elapsed = rb_monotonic() - t0
        if rc != 0:
            raise OSError("pthread_create failed")
        for i in range(nthreads):
            if args[i].errors < 0:
                raise MemoryError()
            errors += args[i].errors
        return errors, elapsed
    finally:
        free(args)
        free(threads)
