# The integer-keyed dispatch table: event type id -> immutable array of handlers in their
# final order. Registration code (Python) builds a new HandlerArray and swaps it in; emit
# only indexes an array.
from cpython.object cimport PyObject

cdef enum CallKind:
    CALL_STRONG = 0         # target(payload)
    CALL_WEAK_METHOD = 1    # target(ref(), payload): a bound method held weakly
    CALL_WEAK = 2           # ref()(payload): any callable held weakly

cdef struct HandlerEntry:
    # Borrowed pointers: the owning HandlerArray keeps each object alive in `_keep`.
    PyObject *target        # the callable, or the function of a weak bound method
    PyObject *ref           # the weakref for CALL_WEAK*, else NULL
    PyObject *subscription  # handed to the error policy
    int kind


cdef class HandlerArray:
    # Immutable once built. A dispatch holds a reference to the array it started with,
    # so (un)subscribing from a handler takes effect from the next event.
    cdef HandlerEntry *entries
    cdef Py_ssize_t count
    cdef tuple _keep        # (subscription, target, ref) for every entry: ownership


cdef class DispatchTable:
    cdef PyObject **_table          # owned references to HandlerArray, or NULL: no handlers
    cdef Py_ssize_t _size           # valid ids are [0, _size)
    cdef Py_ssize_t _capacity       # allocated length of _table
    cdef unsigned long long _emitted
    cdef unsigned long long _handler_calls
    cdef unsigned long long _handler_errors
    cdef int _max_depth
    cdef bint _raise_errors         # on_error="raise": collect, run the rest, then raise
    cdef object _error_sink         # called as sink(event_type, payload, subscription, exc)

    cdef Py_ssize_t check_id(self, object event_type) except -1
    cdef Py_ssize_t dispatch(self, Py_ssize_t t, object payload) except -1
    cdef Py_ssize_t _run(self, HandlerArray handlers, Py_ssize_t t, object payload) except -1
    cdef object _handler_failed(self, HandlerEntry *entry, Py_ssize_t t, object payload)
