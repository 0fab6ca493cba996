# The integer-keyed dispatch table: event type id -> the handlers of that type in their
# final order. Registration code (Python) builds a new immutable HandlerArray and swaps it
# in; emit only indexes an array.
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint32_t, uint64_t

from ringbus._atomic cimport rb_atomic_i64

cdef enum CallKind:
    CALL_STRONG = 0         # target(payload)
    CALL_WEAK_METHOD = 1    # target(ref(), payload): a bound method held weakly
    CALL_WEAK = 2           # ref()(payload): any callable held weakly
    # Added to a kind: the handler asked for the event type first (with_type=True), as
    # handler(event_type, payload). A bit of `kind`, not a field: the common call
    # (CALL_STRONG alone) keeps its one comparison.
    CALL_TYPED = 4

cdef struct HandlerEntry:
    # Borrowed pointers: the owning HandlerArray keeps each object alive in `_keep`.
    PyObject *target        # the callable, or the function of a weak bound method
    PyObject *ref           # the weakref for CALL_WEAK*, else NULL
    PyObject *subscription  # handed to the error policy
    unsigned char kind
    unsigned char batch     # called once per emit_batch group with an array view
    # The subscription's meter (DispatchTable._meter), 1-based; 0: not metered. An index,
    # not a pointer: the entry stays 32 bytes and a TableSlot one cache line.
    uint32_t meter

cdef struct TableSlot:
    # One cache line per event type (64 bytes: with a 64-aligned table, one slot per line).
    # `first` duplicates entries[0] so that a type with one handler (the common case, and the
    # whole story with 100,000 types) costs one line.
    Py_ssize_t count        # 0: no handlers
    HandlerEntry *entries   # inside the owning HandlerArray
    HandlerEntry first
    # (intptr_t) the owning HandlerArray: what a dispatch announces in its hazard slot.
    rb_atomic_i64 owner
    # A seqlock over the fields above: odd while _swap writes them. A dispatch re-checks it
    # after announcing `owner`, so it never uses a mix of two arrays, nor an array a scan
    # missed (_dispatch_frame.h).
    rb_atomic_i64 gen


from ringbus._histogram cimport rb_meter

# Meters live in chunks that never move (a dispatch holding an index may run on while
# registration adds meters): index m is chunk (m - 1) >> 10, entry (m - 1) & 1023.
cdef enum:
    METER_CHUNK_BITS = 10
    METER_CHUNK = 1024
    METER_CHUNKS = 1024             # so at most 1,048,576 metered subscriptions per bus


cdef class HandlerArray:
    # Immutable once built; owns what its entries point to.
    cdef HandlerEntry *entries
    cdef Py_ssize_t count
    cdef tuple _keep        # (subscription, target, ref) for every entry


cdef class DispatchTable:
    cdef TableSlot *_slots          # aligned, one line each; the hot path reads only this
    cdef list _owners               # HandlerArray (or None) per id: ownership, cold
    # Per id, only when the type has batch subscribers: every subscription, batch and
    # per-event, in the one dispatch order (emit_batch); None otherwise. Read once per
    # group of rows, never per event.
    cdef list _group_owners
    # The id of each type as an int object (id t at index t): what a with_type=True handler
    # is given, borrowed, so that its call allocates nothing for ids past the small-int cache.
    cdef list _type_ids
    cdef Py_ssize_t _size           # valid ids are [0, _size)
    cdef Py_ssize_t _capacity       # allocated slots
    # Swapped-out arrays that some dispatch still announces in its hazard slot: a handler
    # that unsubscribes itself must not free the array being iterated. Each is freed as
    # soon as no dispatch uses it (_reclaim). This replaces a refcount on the array per
    # event (a cache miss per event with many types).
    cdef list _retired
    cdef unsigned long long _emitted        # emit() calls; the ring counts its own
    cdef unsigned long long _handler_calls
    cdef unsigned long long _handler_errors
    cdef unsigned long long _stopped        # events whose handlers a guard stopped (STOP)
    cdef int _max_depth
    cdef bint _raise_errors         # on_error="raise": collect, run the rest, then raise
    cdef object _error_sink         # called as sink(event_type, payload, subscription, exc)
    # Per-subscription metrics (opt-in): chunks of meters, allocated as needed, freed with
    # the table; _meters counts them.
    cdef rb_meter **_meter_chunks
    cdef uint32_t _meters
    # Publish-to-handle delay per event type (a ring's stamps, RingBuffer._consume): the
    # meter of id t is _delay_meters[t] (NULL: none yet), one of the chunked meters above
    # (which never move). Touched only with the GIL held.
    cdef rb_meter **_delay_meters
    cdef Py_ssize_t _delay_n
    cdef dict _delay_index          # id -> meter index, for reading (cold)

    cdef Py_ssize_t check_id(self, object event_type) except -1
    cdef Py_ssize_t dispatch(self, Py_ssize_t t, object payload) except -1
    # The same, for an event taken from ring slot `sequence` (current_event().sequence).
    # ``start``: the caller's clock read (_ticks.h) just before, or 0 (a metered handler's call
    # then starts at its own clock read): one clock read shared by the queueing delay and
    # the first handler's time.
    cdef Py_ssize_t dispatch_at(self, Py_ssize_t t, object payload, int64_t sequence,
                                uint64_t start) except -1
    cdef int _reclaim(self) except -1
    # `per_row(rows)`: the sequence per-event handlers take the rows from (None: `rows`
    # itself), called once, only when the type has per-event handlers.
    cdef Py_ssize_t dispatch_group(self, Py_ssize_t t, object rows, Py_ssize_t n,
                                   object per_row=*) except -1
    # Runs entries[0:count], which are `owner`'s entries from index `base` on (owner NULL:
    # a group dispatch, which cannot be resumed); `errors`: Exceptions already collected
    # for this event under on_error="raise" (None: none).
    cdef Py_ssize_t _run(self, HandlerEntry *entries, Py_ssize_t count, Py_ssize_t t,
                         object payload, PyObject *owner, Py_ssize_t base,
                         list errors, uint64_t start) except -1
    cdef object _handler_failed(self, HandlerEntry *entry, Py_ssize_t t, object payload)
    cdef rb_meter *_meter(self, uint32_t m) noexcept nogil
    # The meter of event type t's queueing delay, made on first use; NULL for an unknown
    # id, or without memory (the delay then goes unrecorded: never an error in a consumer).
    cdef rb_meter *delay_meter(self, Py_ssize_t t) noexcept


# The metrics clock (_clock.h), whose calibration is this module's: other modules read
# ticks with _ticks.h, given these.
# Calibrate on the first call; then what _ticks.h's inline readers take: 1 when ticks are
# TSC counts, and the ticks-to-ns multiplier.
cdef int clock_is_tsc() noexcept
cdef uint64_t clock_mult() noexcept


# A RecordRing or MessageRing handler's call, under a frame current_event() reads.
cdef object call_in_ring(object fn, object arg, object ring, int64_t sequence,
                         bint redelivered)
