"""Compiled inline dispatch: the table behind ``Bus.emit``.

Registration (names, ordering, weak references, policies) lives in Python; it hands this
module finished :class:`HandlerArray` objects. Nothing here sorts, looks up a dict or
allocates on the path of one event.
"""
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from cpython.list cimport PyList_GET_ITEM
from libc.stdint cimport int64_t, intptr_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset

from ringbus._atomic cimport (
    rb_atomic_i64, rb_load_acquire_i64, rb_load_relaxed_i64, rb_store_relaxed_i64,
    rb_store_release_i64, rb_fence_seq_cst,
)

cdef extern from "<stdlib.h>" nogil:
    void *aligned_alloc(size_t alignment, size_t size)

# Here, not in the .pxd: every module that cimports the .pxd would get its own copy of the
# header's thread-locals and registry.
cdef extern from "_dispatch_frame.h":
    ctypedef struct rb_frame:
        rb_frame *outer
        PyObject *table
        PyObject *payload
        PyObject *event
        int64_t sequence
        Py_ssize_t type_id
    rb_frame *ringbus_frame_top
    int ringbus_emit_depth
    int64_t RB_NO_SEQUENCE
    rb_atomic_i64 *rb_hazard_slot(int depth) noexcept nogil
    void rb_hazard_fence() noexcept nogil
    bint rb_hazard_held(PyObject *array) noexcept nogil

# Here too: its globals (the calibration) must be this module's alone.
cdef extern from "_clock.h" nogil:
    int rb_clock_tsc
    uint64_t rb_clock_mult
    uint64_t rb_clock_ticks()
    uint64_t rb_clock_ns(uint64_t ticks)
    int rb_clock_calibrate()

from ringbus._histogram cimport Histogram, rb_hist, rb_hist_record, rb_hist_reset, rb_meter

cdef extern from "<sys/mman.h>" nogil:
    int madvise(void *addr, size_t length, int advice)
    int MADV_HUGEPAGE

# Past this size the table gets 2 MiB pages where the kernel allows (THP "madvise" mode):
# with 100,000 types a random id otherwise costs a TLB walk on top of the slot's cache miss.
cdef size_t HUGE_PAGE = 2 * 1024 * 1024


cdef int clock_is_tsc() noexcept:
    return rb_clock_calibrate()


cdef uint64_t clock_mult() noexcept:
    rb_clock_calibrate()
    return rb_clock_mult


cdef TableSlot *_alloc_slots(Py_ssize_t count) noexcept:
    """``count`` zeroed-later slots, 64-byte aligned (one slot per cache line)."""
    cdef size_t size = count * sizeof(TableSlot)
    cdef void *p
    if size < HUGE_PAGE:
        return <TableSlot *>aligned_alloc(64, size)
    size = (size + HUGE_PAGE - 1) // HUGE_PAGE * HUGE_PAGE
    p = aligned_alloc(HUGE_PAGE, size)
    if p != NULL:
        madvise(p, size, MADV_HUGEPAGE)     # advice only: failure just keeps small pages
    return <TableSlot *>p

from ringbus._capi cimport (
    ringbus_weakref_get, ringbus_take_exception, ringbus_index_or_neg,
    PY_VECTORCALL_ARGUMENTS_OFFSET, PyObject_Vectorcall,
)

import operator

# The call kinds, for the Python code that builds subscriptions.
STRONG = CALL_STRONG
WEAK_METHOD = CALL_WEAK_METHOD
WEAK = CALL_WEAK
TYPED = CALL_TYPED


class _Stop:
    """The type of :data:`STOP`, a singleton."""

    __slots__ = ()

    def __repr__(self):
        return "ringbus.STOP"

    def __reduce__(self):
        return "STOP"           # pickled by name: the one object in every process


#: Returned by a handler (a guard: a risk check vetoing an order): the event's later
#: handlers do not run. Counted in ``stats()["stopped"]``. Never a request's answer.
STOP = _Stop()
# The dispatch compares each result's address with it: one pointer compare per handler.
cdef PyObject *_STOP = <PyObject *>STOP


class EmitDepthError(RecursionError):
    """Handlers re-entered ``emit`` more deeply than the bus's ``max_depth`` allows.

    It is never handed to the error policy: it unwinds every nested ``emit`` so that the
    outermost caller sees it, and the bus stays usable afterwards.
    """


cdef class HandlerArray:
    """The handlers of one event type, in dispatch order; immutable.

    Built from subscription objects that carry ``_target``, ``_ref`` and ``_kind``.
    """

    def __cinit__(self, subscriptions, bint metered=False):
        cdef tuple subs = tuple(subscriptions)
        cdef Py_ssize_t i, n = len(subs)
        cdef list keep = []
        self.entries = <HandlerEntry *>PyMem_Malloc(max(n, 1) * sizeof(HandlerEntry))
        if self.entries == NULL:
            raise MemoryError()
        self.count = 0
        for i in range(n):
            sub = subs[i]
            target = sub._target
            ref = sub._ref
            kind = sub._kind
            batch = getattr(sub, "batch", False)
            if kind & ~CALL_TYPED not in (CALL_STRONG, CALL_WEAK_METHOD, CALL_WEAK):
                raise ValueError(f"subscription has an unknown call kind {kind!r}")
            keep.append((sub, target, ref))
            self.entries[i].target = <PyObject *>target
            self.entries[i].ref = NULL if ref is None else <PyObject *>ref
            self.entries[i].subscription = <PyObject *>sub
            self.entries[i].kind = kind
            self.entries[i].batch = 1 if batch else 0
            self.entries[i].meter = getattr(sub, "_meter", 0) if metered else 0
            self.count += 1
        self._keep = tuple(keep)

    def __dealloc__(self):
        PyMem_Free(self.entries)

    def __len__(self):
        return self.count

    @property
    def subscriptions(self):
        """The subscriptions, in dispatch order."""
        return tuple(k[0] for k in self._keep)


cdef void _slot_write(TableSlot *slot, HandlerArray handlers) noexcept:
    """Publish ``handlers`` (None: no handlers) in ``slot`` for dispatches on any thread.

    Writers are serialised (the registration lock, and the GIL today); readers are not: a
    seqlock, so that a dispatch copies the fields of one array, never a mix of two."""
    cdef int64_t gen = rb_load_relaxed_i64(&slot.gen)     # relaxed: only writers write it
    rb_store_relaxed_i64(&slot.gen, gen + 1)
    # Odd before any field changes: a full fence, as no field write may move above it (a
    # release fence would do; _atomic.h names only this one, and this is the cold path).
    rb_fence_seq_cst()
    if handlers is not None:
        slot.entries = handlers.entries
        slot.first = handlers.entries[0]
        slot.count = handlers.count
        rb_store_relaxed_i64(&slot.owner, <int64_t><intptr_t><PyObject *>handlers)
    else:
        slot.count = 0
        slot.entries = NULL
        memset(&slot.first, 0, sizeof(HandlerEntry))
        rb_store_relaxed_i64(&slot.owner, 0)
    # Release: a dispatch that acquires the even generation sees every field above.
    rb_store_release_i64(&slot.gen, gen + 2)
    # Store-load, before the caller scans the hazards (see rb_hazard_fence).
    rb_fence_seq_cst()


cdef inline void _push_frame(rb_frame *frame, DispatchTable table, Py_ssize_t t,
                             object payload, int64_t sequence) noexcept:
    """Make ``frame`` this thread's innermost dispatch (one level deeper): two TLS stores,
    and the frame on the caller's stack. Everything is borrowed: the caller holds it all
    until _pop_frame."""
    global ringbus_emit_depth, ringbus_frame_top
    frame.outer = ringbus_frame_top
    frame.table = <PyObject *>table
    frame.payload = <PyObject *>payload
    frame.event = NULL
    frame.sequence = sequence
    frame.type_id = t
    ringbus_frame_top = frame
    ringbus_emit_depth += 1


cdef inline void _pop_frame(rb_frame *frame) noexcept:
    global ringbus_emit_depth, ringbus_frame_top
    ringbus_frame_top = frame.outer
    ringbus_emit_depth -= 1


cdef inline Py_ssize_t _dispatch(DispatchTable self, Py_ssize_t t, object payload,
                                 int64_t sequence, uint64_t start) except -1:
    """The one-event dispatch (``dispatch``): announce the slot's array, run it, let go."""
    cdef TableSlot *slot = &self._slots[t]
    # Acquire: the fields read next are at least as new as this generation.
    cdef int64_t gen = rb_load_acquire_i64(&slot.gen)
    cdef Py_ssize_t count = slot.count
    cdef HandlerEntry first
    cdef HandlerEntry *entries
    cdef int64_t owner
    cdef int depth = ringbus_emit_depth
    cdef rb_atomic_i64 *hazard
    cdef rb_frame frame
    if count <= 0:
        if count < 0:   # never registered on this bus (ids are process-wide): cold
            self.check_id(t)
        return 0        # no handlers in either state a torn read could mix: nothing to use
    if depth >= self._max_depth:
        raise EmitDepthError(
            f"emit() nested deeper than max_depth={self._max_depth} "
            f"(a handler re-emitting without end?)")
    hazard = rb_hazard_slot(depth + 1)
    if hazard == NULL:
        raise MemoryError()
    while True:
        # Copied out: a handler may swap this slot or move the table while we run.
        first = slot.first
        entries = slot.entries
        owner = rb_load_relaxed_i64(&slot.owner)
        # Relaxed: rb_hazard_fence orders it before the re-check below.
        rb_store_relaxed_i64(hazard, owner)
        rb_hazard_fence()
        # Unchanged and even: what we copied is one array's, and it was still installed
        # after we announced it, so any scan that could free it sees the announcement.
        if rb_load_relaxed_i64(&slot.gen) == gen and (gen & 1) == 0:
            break
        gen = rb_load_acquire_i64(&slot.gen)      # swapped meanwhile (only without the GIL)
        count = slot.count
        if count == 0:
            rb_store_release_i64(hazard, 0)
            return 0
    if count == 1:
        entries = &first
    _push_frame(&frame, self, t, payload, sequence)
    try:
        return self._run(entries, count, t, payload, <PyObject *><intptr_t>owner, 0, None,
                         start)
    finally:
        _pop_frame(&frame)
        # Release: every read of the array, and every call through it, happens before a
        # scan that reads 0 here and frees it.
        rb_store_release_i64(hazard, 0)
        # Swapped out while we ran: we may have been the last to use it. (Without the GIL
        # a racing swap can miss this; its own scan, or the next one, frees it.)
        if rb_load_relaxed_i64(&self._slots[t].owner) != owner:
            self._reclaim()


cdef class DispatchTable:
    """Event type id -> handlers in dispatch order; the compiled base of ``ringbus.Bus``."""

    def __cinit__(self, *args, **kwargs):
        self._slots = NULL
        self._owners = []
        self._group_owners = []
        self._type_ids = []
        self._size = 0
        self._capacity = 0
        self._retired = []
        self._max_depth = 64
        self._raise_errors = False
        self._error_sink = None
        self._stopped = 0
        self._meter_chunks = NULL
        self._meters = 0
        self._delay_meters = NULL
        self._delay_n = 0
        self._delay_index = {}

    def __dealloc__(self):
        free(self._slots)
        free(self._delay_meters)
        cdef Py_ssize_t c
        if self._meter_chunks != NULL:
            for c in range(METER_CHUNKS):
                free(self._meter_chunks[c])
            free(self._meter_chunks)

    # -- metrics (registration side) -----------------------------------------------------

    def _new_meter(self):
        """A new zeroed meter; its index (>= 1) for a subscription's ``_meter``."""
        cdef uint32_t m = self._meters
        cdef Py_ssize_t c = m >> METER_CHUNK_BITS
        cdef Py_ssize_t i
        if c >= METER_CHUNKS:
            raise RuntimeError(f"more than {METER_CHUNKS * METER_CHUNK} metered "
                               f"subscriptions on one bus")
        if self._meter_chunks == NULL:
            self._meter_chunks = <rb_meter **>calloc(METER_CHUNKS, sizeof(rb_meter *))
            if self._meter_chunks == NULL:
                raise MemoryError()
        if self._meter_chunks[c] == NULL:
            self._meter_chunks[c] = <rb_meter *>calloc(METER_CHUNK, sizeof(rb_meter))
            if self._meter_chunks[c] == NULL:
                raise MemoryError()
            for i in range(METER_CHUNK):
                rb_hist_reset(&self._meter_chunks[c][i].time)
        rb_clock_calibrate()
        self._meters = m + 1
        return m + 1

    def _meter_read(self, uint32_t m):
        """Meter ``m``'s calls, errors and a copy of its time histogram."""
        if m < 1 or m > self._meters:
            raise ValueError(f"no meter {m}")
        cdef rb_meter *meter = self._meter(m)
        cdef Histogram h = Histogram()
        memcpy(h._h, &meter.time, sizeof(rb_hist))
        return meter.calls, meter.errors, h

    def _clock_source(self):
        """"tsc" or "monotonic": what the meters' clock reads."""
        return "tsc" if rb_clock_tsc else "monotonic"

    def _meter_reset(self):
        """Zero every meter."""
        cdef uint32_t m
        cdef rb_meter *meter
        for m in range(1, self._meters + 1):
            meter = self._meter(m)
            meter.calls = 0
            meter.errors = 0
            rb_hist_reset(&meter.time)

    cdef rb_meter *_meter(self, uint32_t m) noexcept nogil:
        m -= 1
        return &self._meter_chunks[m >> METER_CHUNK_BITS][m & (METER_CHUNK - 1)]

    cdef rb_meter *delay_meter(self, Py_ssize_t t) noexcept:
        if <size_t>t >= <size_t>self._size:
            return NULL                         # an unknown id: the consumer reports it
        if t >= self._delay_n or self._delay_meters[t] == NULL:
            try:
                self._delay_meter(t)            # cold: once per event type
            except MemoryError:
                return NULL
        return self._delay_meters[t]

    def _delay_meter(self, Py_ssize_t t):
        """The meter index of event type ``t``'s publish-to-handle delay (made on first
        use)."""
        cdef Py_ssize_t n
        cdef rb_meter **grown
        cdef uint32_t m
        if not 0 <= t < self._size:
            raise ValueError(f"event type {t} is not a registered id")
        if t >= self._delay_n:
            n = max(64, self._delay_n)
            while n <= t:
                n *= 2
            grown = <rb_meter **>realloc(self._delay_meters, n * sizeof(rb_meter *))
            if grown == NULL:
                raise MemoryError()
            memset(&grown[self._delay_n], 0, (n - self._delay_n) * sizeof(rb_meter *))
            self._delay_meters = grown
            self._delay_n = n
        if self._delay_meters[t] == NULL:
            m = self._new_meter()
            self._delay_meters[t] = self._meter(m)
            self._delay_index[t] = m
        return self._delay_index[t]

    def _delays(self):
        """[(event type, its delay meter index)] of every type that has one."""
        return sorted(self._delay_index.items())

    # -- registration side (Python callers, not the hot path) ---------------------------

    def _grow(self, Py_ssize_t size):
        """Make room for ids ``[0, size)``, not registered yet. Existing entries keep their
        handlers."""
        cdef Py_ssize_t cap, t
        cdef TableSlot *slots
        if size <= self._size:
            return
        if size > self._capacity:
            cap = max(16, self._capacity)
            while cap < size:
                cap *= 2
            # A dispatch in flight copied what it needs from its slot before calling any
            # handler, so moving the table under it (a handler registering a type) is safe.
            slots = _alloc_slots(cap)
            if slots == NULL:
                raise MemoryError()
            if self._slots != NULL:
                memcpy(slots, self._slots, self._size * sizeof(TableSlot))
                free(self._slots)
            self._slots = slots
            self._capacity = cap
        memset(&self._slots[self._size], 0, (size - self._size) * sizeof(TableSlot))
        # count -1: an id of the process that this bus has not registered (_register).
        for t in range(self._size, size):
            self._slots[t].count = -1
        self._owners.extend([None] * (size - self._size))
        self._group_owners.extend([None] * (size - self._size))
        self._type_ids.extend(range(self._size, size))
        self._size = size

    def _register(self, Py_ssize_t t):
        """Make id ``t`` valid here (no handlers yet), growing the table to it."""
        self._grow(t + 1)
        if self._slots[t].count < 0:
            _slot_write(&self._slots[t], None)

    def _swap(self, Py_ssize_t t, HandlerArray handlers, HandlerArray group=None):
        """Install ``handlers`` (or None: no handlers) for id ``t``; returns the old array.

        ``group`` is the full order including batch subscribers, when there are any (a
        group dispatch holds a reference to the one it runs: nothing to retire). The old
        array is freed once no dispatch uses it.
        """
        if t < 0 or t >= self._size or self._slots[t].count < 0:
            raise ValueError(f"event type {t} is not in the table")
        self._group_owners[t] = group
        if handlers is not None and handlers.count == 0:
            handlers = None
        _slot_write(&self._slots[t], handlers)
        old = self._owners[t]
        self._owners[t] = handlers
        if old is not None:
            self._retired.append(old)
        self._reclaim()
        return old

    cdef int _reclaim(self) except -1:
        """Free the retired arrays no dispatch announces any more (cold: a swap, or the end
        of a dispatch whose array was swapped out under it)."""
        if not self._retired:
            return 0
        retired = self._retired
        self._retired = []
        # Each was swapped out of its slot, followed by a seq_cst fence, before this scan:
        # a dispatch that announces it from now on sees the new generation and retries.
        rb_fence_seq_cst()
        for array in retired:
            if rb_hazard_held(<PyObject *>array):
                self._retired.append(array)
        # The others go with `retired`: their handlers' finalizers may run here, and may
        # swap (and reclaim) again, which only ever sees the list kept above.
        retired = None
        return 0

    def _resume(self, suspension, list errors):
        """Not API (ringbus.aio): go on with an event whose dispatch a handler suspended.

        Runs the handlers after the one that raised ``suspension``, from the HandlerArray
        that event's dispatch began with (whatever was subscribed or unsubscribed since),
        exactly as the dispatch would have: same calls, same error policy, and under
        on_error="raise" ``errors`` (the event's Exceptions so far, the suspended handler's
        included) raised with the rest's once they ran. A handler that suspends again
        raises its own Suspension out of here, resumable the same way.
        """
        cdef HandlerArray handlers
        cdef Py_ssize_t at, t
        cdef rb_frame frame
        resume = suspension.resume
        if resume is None:      # raised outside a resumable dispatch: nothing after it
            return self._run(NULL, 0, -1, None, NULL, 0, errors, 0)
        handlers, at, t, sequence = resume
        if ringbus_emit_depth >= self._max_depth:
            raise EmitDepthError(f"emit() nested deeper than max_depth={self._max_depth}")
        payload = suspension.payload
        _push_frame(&frame, self, t, payload, sequence)
        try:
            return self._run(&handlers.entries[at], handlers.count - at, t, payload,
                             <PyObject *>handlers, at, errors, 0)
        finally:
            _pop_frame(&frame)

    @property
    def _retired_count(self):
        """Not API (tests): swapped-out arrays still waiting for a dispatch to finish."""
        return len(self._retired)

    def _handlers(self, Py_ssize_t t):
        """The installed HandlerArray for id ``t`` (None if it has no handlers)."""
        if t < 0 or t >= self._size:
            raise ValueError(f"event type {t} is not in the table")
        return self._owners[t]

    def _configure(self, *, int max_depth, bint raise_errors, error_sink):
        if max_depth < 1:
            raise ValueError(f"max_depth must be >= 1, got {max_depth}")
        self._max_depth = max_depth
        self._raise_errors = raise_errors
        self._error_sink = error_sink

    def _counters(self):
        return {
            "emitted": self._emitted,
            "handler_calls": self._handler_calls,
            "handler_errors": self._handler_errors,
            "stopped": self._stopped,
        }

    def _dispatch_now(self, Py_ssize_t t, payload):
        """Not API (ringbus.conflation): dispatch a checked id's event now, as a consumer
        would, without counting an emit."""
        if not 0 <= t < self._size:
            raise ValueError(f"event type {t} is not in the table")
        return self.dispatch(t, payload)

    def _stopped_add(self):
        """Not API (ringbus.aio): a guard stopped an event outside this table's dispatch (an
        awaited handler's result, a request's handlers)."""
        self._stopped += 1

    @property
    def max_depth(self):
        """How deeply handlers may nest ``emit`` calls before EmitDepthError."""
        return self._max_depth

    # -- hot path ------------------------------------------------------------------------

    cdef Py_ssize_t check_id(self, object event_type) except -1:
        """The id as a C integer, or a clear exception naming ``event_type``."""
        if (isinstance(event_type, (str, bytes, bool))
                or not hasattr(type(event_type), "__index__")):
            raise TypeError(
                f"event_type must be an int id (register names with bus.event_type()), "
                f"got {type(event_type).__name__}: {event_type!r}")
        value = operator.index(event_type)
        if value < 0:
            raise ValueError(f"event_type {event_type!r} is not a registered id: ids are >= 0")
        if value >= self._size or self._slots[value].count < 0:
            # Ids are process-wide (ringbus.identity): name the event another bus registered.
            from ringbus.registry import unregistered
            raise ValueError(unregistered(value))
        return value

    cdef Py_ssize_t dispatch(self, Py_ssize_t t, object payload) except -1:
        """Dispatch one event whose id the caller has checked."""
        return _dispatch(self, t, payload, RB_NO_SEQUENCE, 0)

    cdef Py_ssize_t dispatch_at(self, Py_ssize_t t, object payload, int64_t sequence,
                                uint64_t start) except -1:
        """``dispatch`` of the event the caller took from ring slot ``sequence``."""
        return _dispatch(self, t, payload, sequence, start)

    cdef Py_ssize_t dispatch_group(self, Py_ssize_t t, object rows, Py_ssize_t n,
                                   object per_row=None) except -1:
        """Dispatch ``n`` rows of type ``t`` (a checked id) held in ``rows``.

        Batch subscribers get ``rows`` in one call; per-event subscribers get each row, from
        ``rows`` itself or, when ``per_row`` is given, from ``per_row(rows)`` (a DataFrame's
        rows as dicts), made once and only if the type has per-event subscribers.
        Walking the one dispatch order, a run of per-event handlers takes the rows one by
        one (exactly as ``emit`` per row would) and a batch handler takes them all at its
        place in the order. Returns the handler calls made.
        """
        cdef object group = self._group_owners[t]
        cdef Py_ssize_t i, j, r, ran = 0
        cdef rb_frame frame
        cdef object row
        cdef object items = None
        if group is None:
            if self._slots[t].count == 0:
                return 0
            items = rows if per_row is None else per_row(rows)
            for r in range(n):
                ran += self.dispatch(t, items[r])
            return ran
        # A reference for the whole group (once per group, never per event): no hazard.
        cdef HandlerArray handlers = <HandlerArray>group
        if ringbus_emit_depth >= self._max_depth:
            raise EmitDepthError(f"emit_batch() nested deeper than max_depth={self._max_depth}")
        # A guard (STOP) on a batch handler stops the group's later handlers; on a per-event
        # handler, that row's later per-event handlers (`stopped`: made on the first STOP).
        cdef unsigned long long guards = self._stopped
        cdef bytearray stopped = None
        _push_frame(&frame, self, t, rows, RB_NO_SEQUENCE)
        try:
            i = 0
            while i < handlers.count:
                if handlers.entries[i].batch:
                    frame.payload = <PyObject *>rows
                    ran += self._run(&handlers.entries[i], 1, t, rows, NULL, 0, None, 0)
                    if self._stopped != guards:
                        return ran
                    i += 1
                    continue
                j = i
                while j < handlers.count and not handlers.entries[j].batch:
                    j += 1
                if items is None:
                    items = rows if per_row is None else per_row(rows)
                for r in range(n):
                    if stopped is not None and stopped[r]:
                        continue
                    row = items[r]
                    frame.payload = <PyObject *>row     # `row` holds it for the call
                    ran += self._run(&handlers.entries[i], j - i, t, row, NULL, 0, None, 0)
                    if self._stopped != guards:
                        guards = self._stopped
                        if stopped is None:
                            stopped = bytearray(n)
                        stopped[r] = 1
                i = j
            return ran
        finally:
            _pop_frame(&frame)

    cdef Py_ssize_t _run(self, HandlerEntry *entries, Py_ssize_t count, Py_ssize_t t,
                         object payload, PyObject *owner, Py_ssize_t base,
                         list errors, uint64_t start) except -1:
        cdef Py_ssize_t i, ran = 0
        cdef HandlerEntry *entry
        cdef PyObject *result
        cdef PyObject *alive
        # args[0] is scratch space: PY_VECTORCALL_ARGUMENTS_OFFSET lets a callee that is a
        # bound method put `self` there instead of allocating a new argument array. The
        # other calls (weak, with_type) lay out [scratch, self?, event type?, payload] and
        # start from the first argument they use.
        cdef PyObject *args[4]
        cdef PyObject **argv
        cdef PyObject *callee
        cdef Py_ssize_t nargs
        cdef unsigned char kind
        # Metered entries: one clock read per call. A call's end is the next call's start
        # (the loop's few instructions between them are charged to the next handler); the
        # first call's start is the caller's read (`start`, a ring consumer's) if it made one.
        cdef uint64_t stamp = start, now
        cdef rb_meter *meter
        for i in range(count):
            entry = &entries[i]
            args[1] = <PyObject *>payload
            if entry.meter and stamp == 0:
                stamp = rb_clock_ticks()
            if entry.kind == CALL_STRONG:
                result = PyObject_Vectorcall(entry.target, &args[1],
                                             1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
            else:
                kind = entry.kind
                args[3] = <PyObject *>payload
                argv = &args[3]
                nargs = 1
                if kind & CALL_TYPED:
                    # Borrowed: _type_ids only grows while the table lives.
                    args[2] = PyList_GET_ITEM(self._type_ids, t)
                    argv = &args[2]
                    nargs = 2
                    kind &= ~CALL_TYPED
                alive = NULL
                callee = entry.target
                if kind != CALL_STRONG:
                    alive = ringbus_weakref_get(entry.ref)
                    if alive == NULL:
                        continue    # died since the array was built; its callback unsubscribes
                    if kind == CALL_WEAK_METHOD:
                        argv -= 1
                        argv[0] = alive
                        nargs += 1
                    else:
                        callee = alive
                result = PyObject_Vectorcall(callee, argv,
                                             nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
                if alive != NULL:
                    Py_DECREF(<object>alive)
            ran += 1
            if entry.meter:
                now = rb_clock_ticks()
                meter = self._meter(entry.meter)
                meter.calls += 1
                rb_hist_record(&meter.time, rb_clock_ns(now - stamp))
                stamp = now
            if result != NULL:
                Py_DECREF(<object>result)
                if result == _STOP:     # a guard: the later handlers do not run
                    self._stopped += 1
                    break
            else:
                try:
                    failed = self._handler_failed(entry, t, payload)
                except BaseException as stop:
                    # Unwinding now (a BaseException, or ringbus.aio suspending the event):
                    # the Exceptions kept for on_error="raise" must ride along, not vanish.
                    if errors:
                        _attach_pending(stop, errors)
                    if isinstance(stop, Suspension):
                        _suspended_at(stop, owner, base + i + 1, t)
                        self._handler_calls += ran      # this one's call included
                    raise
                if failed is not None:
                    if errors is None:
                        errors = []
                    errors.append(failed)
        self._handler_calls += ran
        if errors:
            first = errors[0]
            if len(errors) > 1:
                _attach_others(first, errors[1:])
            raise first
        return ran

    cdef object _handler_failed(self, HandlerEntry *entry, Py_ssize_t t, object payload):
        """A handler raised: isolate an Exception, unwind anything else now.

        Returns the exception when on_error="raise" wants it re-raised after the event's
        other handlers ran, else None.
        """
        exc = ringbus_take_exception()
        if not isinstance(exc, Exception) or isinstance(exc, EmitDepthError):
            raise exc       # BaseException (KeyboardInterrupt, SystemExit) is never swallowed
        self._handler_errors += 1
        if entry.meter:
            self._meter(entry.meter).errors += 1
        if self._raise_errors:
            return exc
        if self._error_sink is not None:
            self._error_sink(t, payload, <object>entry.subscription, exc)
        return None


class Suspension(BaseException):
    """Raised by a handler through the dispatch to hand the rest of its event to its
    caller (ringbus.aio: an async handler of the loop consumer has to wait).

    A BaseException, so the dispatch stops at once (it is never given to the error
    policy); the dispatch sets ``resume`` on its way out, which
    ``DispatchTable._resume`` takes to run the event's remaining handlers later.
    """

    def __init__(self, payload):
        super().__init__()
        self.payload = payload
        self.resume = None


cdef int _suspended_at(object stop, PyObject *owner, Py_ssize_t at, Py_ssize_t t) except -1:
    """Record where the suspended dispatch goes on: the handler array (its reference taken
    now, while the dispatch's hazard still protects it), the index after the handler, the
    type and the event's sequence (the frame of this dispatch is the innermost one)."""
    if owner == NULL or stop.resume is not None:
        return 0        # a group dispatch; or already set by an inner dispatch
    sequence = ringbus_frame_top.sequence
    stop.resume = (<object>owner, at, t, sequence)
    return 0


cdef class EventInfo:
    """The event a handler is handling: what :func:`ringbus.current_event` returns.

    ``type``: the event type id (as given to ``subscribe``/``emit``); ``name``: its
    registered name (None for a bare int id); ``sequence``: its ring sequence when it came
    through the ring's slots (``publish`` and friends, dispatched by a consumer thread, a
    ``drain`` or the loop consumer), else None (``emit``, ``emit_batch`` rows, follow-ups
    that waited in the backlog, requests); ``published_at``: None, the ring does not
    time-stamp events yet; ``payload``: the payload handed to the handler; ``redelivered``:
    True when a RecordRing or MessageRing handler gets records or a message that a consumer
    process which died may have handled already (at-least-once across a consumer crash),
    and for the events such a handler emits (a worker process's handlers, say).

    In a RecordRing or MessageRing handler, ``type`` and ``name`` are None, ``sequence`` is
    the ring sequence of the batch's first record (of the message's frame) and ``payload``
    what the handler was handed.

    >>> @bus.on(TICK)
    ... def on_tick(price):
    ...     ev = ringbus.current_event()
    ...     print(ev.name, ev.sequence)
    """

    cdef readonly object type
    cdef readonly object name
    cdef readonly object sequence
    cdef readonly object published_at
    cdef readonly object payload
    cdef readonly bint redelivered

    def __init__(self, type, *, name=None, sequence=None, published_at=None, payload=None,
                 redelivered=False):
        self.type = type
        self.name = name
        self.sequence = sequence
        self.published_at = published_at
        self.payload = payload
        self.redelivered = redelivered

    def __repr__(self):
        label = repr(self.name) if self.name is not None else "unnamed"
        return (f"<ringbus.EventInfo type={self.type!r} ({label}) sequence={self.sequence!r} "
                f"published_at={self.published_at!r}"
                f"{' redelivered' if self.redelivered else ''}>")


cdef object _event_name(object table, Py_ssize_t t):
    event_name = getattr(table, "event_name", None)     # a Bus; a bare DispatchTable has none
    if event_name is None:
        return None
    try:
        return event_name(t)
    except Exception:
        return None


def current_event():
    """The event the handler running on this thread is handling, as an :class:`EventInfo`;
    None outside a handler.

    In a nested ``emit`` it is the innermost event. An async handler sees its event after
    its awaits too (ringbus.aio restores it for each step of the coroutine). Costs nothing
    unless called: each dispatch keeps a C frame on its stack, and this builds the object
    from the innermost one.
    """
    cdef rb_frame *f = ringbus_frame_top
    if f == NULL:
        return None
    if f.event != NULL:
        return <object>f.event
    if f.type_id <= RING_ITEM:
        return EventInfo(None, sequence=f.sequence, payload=<object>f.payload,
                         redelivered=f.type_id == RING_ITEM_REDELIVERED)
    return EventInfo(f.type_id, name=_event_name(<object>f.table, f.type_id),
                     sequence=None if f.sequence == RB_NO_SEQUENCE else f.sequence,
                     payload=<object>f.payload, redelivered=_within_redelivery(f))


cdef bint _within_redelivery(rb_frame *f) noexcept:
    """Whether dispatch frame ``f`` runs inside a ring handler's call on a redelivered item:
    an event emitted while a redelivered message is handled (a worker process's bus) is part
    of doing that again."""
    f = f.outer
    while f != NULL:
        if f.type_id <= RING_ITEM:
            return f.type_id == RING_ITEM_REDELIVERED
        f = f.outer
    return False


# rb_frame.type_id of a ring handler's call (call_in_ring): no event type, a ring item.
cdef Py_ssize_t RING_ITEM = -2
cdef Py_ssize_t RING_ITEM_REDELIVERED = -3


cdef object call_in_ring(object fn, object arg, object ring, int64_t sequence,
                         bint redelivered):
    """``fn(arg)`` as a RecordRing or MessageRing handler's call: current_event() is the
    ring's item (its sequence, whether it is redelivered). Not a dispatch: the depth stays.
    One frame on this C stack, two TLS stores; nothing allocated unless current_event() is
    called."""
    global ringbus_frame_top
    cdef rb_frame frame
    frame.outer = ringbus_frame_top
    frame.table = <PyObject *>ring
    frame.payload = <PyObject *>arg
    frame.event = NULL
    frame.sequence = sequence
    frame.type_id = RING_ITEM_REDELIVERED if redelivered else RING_ITEM
    ringbus_frame_top = &frame
    try:
        return fn(arg)
    finally:
        ringbus_frame_top = frame.outer


def _in_event(EventInfo event, fn, arg):
    """Not API (ringbus.aio): ``fn(arg)`` with ``event`` as current_event(): one step of a
    suspended async handler's coroutine, resumed outside the dispatch that started it. Not a
    dispatch: the depth stays, no array is used."""
    global ringbus_frame_top
    cdef rb_frame frame
    frame.outer = ringbus_frame_top
    frame.table = NULL
    frame.payload = NULL
    frame.event = <PyObject *>event
    frame.sequence = RB_NO_SEQUENCE
    frame.type_id = -1
    ringbus_frame_top = &frame
    try:
        return fn(arg)
    finally:
        ringbus_frame_top = frame.outer


def emit_depth():
    """How deeply dispatches nest on this thread now: 0 outside any handler, 1 in a handler
    called by a drain or an outermost emit. Not API: ringbus.aio tells by it whether the loop
    consumer itself called an async handler. (The counter lives in this module only.)"""
    return ringbus_emit_depth


if sizeof(TableSlot) != 64:
    raise ImportError(f"ringbus: TableSlot is {sizeof(TableSlot)} bytes, not one 64-byte line")


def _attach_others(first, others):
    """on_error="raise" with several failures: the first is raised, the rest ride along."""
    try:
        first.other_errors = list(others)
    except AttributeError:
        pass
    add_note = getattr(first, "add_note", None)
    if add_note is not None:
        add_note(f"ringbus: {len(others)} more handler(s) of the same event failed: "
                 + ", ".join(repr(e) for e in others))


def _attach_pending(stop, errors):
    """``stop`` unwinds the dispatch of an event whose earlier handlers failed under
    on_error="raise": it carries them as ``pending_errors`` (ringbus.aio raises them once
    the event's handlers ran) and, where it has none, the first as its ``__context__``."""
    try:
        stop.pending_errors = list(errors)
    except AttributeError:
        pass
    if stop.__context__ is None:
        stop.__context__ = errors[0]
    add_note = getattr(stop, "add_note", None)
    if add_note is not None:
        add_note(f"ringbus: {len(errors)} earlier handler(s) of the same event failed: "
                 + ", ".join(repr(e) for e in errors))


def _call_floor(handler, payload):
    """Call ``handler(payload)`` once from compiled code and return 1.

    Not API: the benchmark's reference for what any compiled dispatcher must pay per event
    on this interpreter (a method call in, a C-to-Python call out).
    """
    cdef PyObject *args[2]
    args[1] = <PyObject *>payload
    result = PyObject_Vectorcall(<PyObject *>handler, &args[1],
                                 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
    if result == NULL:
        raise ringbus_take_exception()
    Py_DECREF(<object>result)
    return 1
