"""The compiled half of ``ringbus.conflation`` (read that module's docstring first).

The pending table maps ``(event type, key)`` to a one-item list holding the latest payload.
A publish that finds its key pending replaces the payload under the lock; one that does not
adds the key, then queues a carrier event ``(type, key)`` outside the lock (a publish may
wait for room). The consumer's carrier handler pops the key under the lock, so a payload is
either replaced before the pop (and dispatched) or finds the key gone and queues again:
never lost. The lock is a bare ``PyThread`` lock, taken without the GIL only when another
thread holds it.
"""
from cpython.dict cimport PyDict_GetItemWithError, PyDict_SetItem, PyDict_DelItem
from cpython.pythread cimport (
    PyThread_allocate_lock, PyThread_free_lock, PyThread_acquire_lock, PyThread_release_lock,
    NOWAIT_LOCK, WAIT_LOCK,
)
from cpython.ref cimport PyObject

import weakref


cdef class Conflator:
    """Conflator(bus, carrier)
--

The conflation state of one Bus (made on its first conflating publish)."""

    def __cinit__(self, *args, **kwargs):
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError()
        self._pending = {}

    def __init__(self, bus, Py_ssize_t carrier):
        self._bus = weakref.ref(bus)
        self.carrier = carrier

    def __dealloc__(self):
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

    cdef int _acquire(self) except -1:
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:                     # the holder may need the GIL to let go
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
        return 0

    cdef int publish_c(self, object bus, Py_ssize_t t, object key, object payload,
                       object timeout) except -1:
        """1: queued or conflated; 0: dropped by the lane's ``overflow="drop"``."""
        cdef tuple k = (t, key)
        cdef PyObject *found
        cdef list cell
        self._acquire()
        try:
            try:
                found = PyDict_GetItemWithError(self._pending, k)
            except TypeError:
                raise TypeError(f"key must be hashable (it names what conflates), got "
                                f"{type(key).__name__}: {key!r}") from None
            if found != NULL:
                (<list>found)[0] = payload  # still queued: the consumer takes this one
                self.conflated += 1
                return 1
            cell = [payload]
            PyDict_SetItem(self._pending, k, cell)
        finally:
            PyThread_release_lock(self._lock)
        queued = False
        try:
            # In T's lane: a conflated market-data type stays in the market-data lane.
            queued = bus.publish(self.carrier, k, timeout, bus._lane_arg_of(t))
        finally:
            if not queued:                  # dropped, or raised: nothing is queued for it
                self._acquire()
                try:
                    if self._pending.get(k) is cell:
                        PyDict_DelItem(self._pending, k)
                finally:
                    PyThread_release_lock(self._lock)
        return 1 if queued else 0

    def publish(self, bus, Py_ssize_t t, key, payload=None, timeout=None):
        """``bus.publish_conflated``'s work for the checked id ``t``."""
        return self.publish_c(bus, t, key, payload, timeout) == 1

    def deliver(self, tuple k):
        """The carrier's handler: dispatch the latest payload of key ``k``."""
        self._acquire()
        try:
            cell = self._pending.pop(k)
        finally:
            PyThread_release_lock(self._lock)
        bus = self._bus()
        if bus is not None:
            bus._dispatch_now(k[0], cell[0])

    @property
    def pending(self):
        """Keys queued and not yet dispatched."""
        return len(self._pending)
