# The conflation state of one Bus (ringbus.conflation): compiled, so that a conflating
# publish that replaces a queued payload (the common case while the consumer lags) costs one
# tuple, one dict look-up and an uncontended lock, no Python frame.
from cpython.pythread cimport PyThread_type_lock


cdef class Conflator:
    cdef object _bus                    # weakref.ref to the Bus
    cdef PyThread_type_lock _lock       # guards _pending (publishers vs the consumer)
    cdef dict _pending                  # (type, key) -> [latest payload]
    cdef readonly Py_ssize_t carrier    # the internal event type's id
    cdef readonly unsigned long long conflated
    cdef object __weakref__

    cdef int publish_c(self, object bus, Py_ssize_t t, object key, object payload,
                       object timeout) except -1
    cdef int _acquire(self) except -1
