# The rings laid out in one region by _recordring.h: RegionRing is what RecordRing (fixed-size
# records) and MessageRing (variable-length messages, _messages.pyx) share as faces of the
# ring driver: the region and its C handle, handlers and errors, the consumer verbs, and a
# shared ring's lifetime (the consumer lease, close, unlink). Each kind adds its slot codec.
from libc.stdint cimport int64_t
from ringbus._driver cimport Consumer, Driver
from ringbus._recordring cimport rb_record_ring
from ringbus._region cimport Region, SharedRegion


cdef class RegionRing(Driver):
    cdef rb_record_ring *_rr        # owned (malloc): the C handle, points into _region
    cdef Region _region             # the ring's memory; views keep it alive on their own
    cdef bint _open                 # bound to a region and not closed
    cdef readonly str producers     # "single" or "multi"
    cdef readonly str overflow      # "block", "raise" or "drop"
    cdef readonly str wait          # "block", "spin", "yield" or "sleep"
    cdef int _overflow
    cdef object _on_error
    cdef tuple _handlers            # copy-on-write: a batch in flight keeps the tuple it read
    cdef Consumer _consumer         # the one consumer; its rb_consumer is in the header
    cdef readonly unsigned long long errors    # Exceptions from handlers
    cdef readonly unsigned long long batches   # handler calls' batches dispatched
    cdef bint _warned_kept_view
    cdef readonly object shared     # the segment's name (a shared ring), else None
    cdef bint _leased               # this handle holds the shared ring's consumer lease
    # Taken over from a consumer process that died: up to this sequence, what is delivered
    # may have been handled by it (current_event().redelivered); -1: nothing.
    cdef int64_t _redeliver_upto
    cdef readonly double unblock_timeout
    cdef int64_t _stuck_at          # the sequence the consumer found claimed, not published
    cdef double _stuck_since        # since when (rb_monotonic)
    cdef bint _producing            # a single-producer shared ring: this handle's lease

    cdef int _bind_region(self, Region region, str overflow, object on_error,
                          object shared, str unit) except -1
    cdef int _ready(self) except -1
    cdef int _add_handler(self, object handler) except -1
    cdef int _consume_here(self) except -1
    cdef int _take_lease(self) except -1
    cdef object _region_key(self)
    cdef int _drop_lease(self) noexcept
    cdef int _failed(self, object handler, object item, object exc, str what) except -1
    cdef object _call_handlers(self, tuple handlers, object item, int64_t sequence,
                               Py_ssize_t n, str unit, int64_t items, bint *failed)
    cdef Py_ssize_t _drain(self, str arg, object max_n) except -1
    cdef int _produce_here(self) except -1
    cdef int64_t _abandoned_gap(self, int64_t next) except -2
    cdef int64_t _abandoned_count(self, int64_t lo, int64_t hi) noexcept
    cdef int64_t _published(self) noexcept
    cdef int64_t _dispatched(self) noexcept


cdef object _choice(str what, object value, dict table)
cdef Region make_region(object shared, int kind, int64_t capacity, int64_t record_size,
                        int multi, int wait, double unblock_timeout, bytes descr, str what)
cdef SharedRegion attach_region(object name, int kind)
cdef int _on_error_arg(object on_error) except -1
cdef double unblock_arg(object value) except -1
