from ringbus._dispatch cimport DispatchTable
from ringbus._ring cimport RingBuffer
from ringbus._conflation cimport Conflator


cdef class Bus(DispatchTable):
    # Compiled, with emit() defined on this class itself, so that the interpreter's
    # specialised method call applies. Registration is delegated to the plain-Python
    # Registry.
    cdef readonly object _registry
    cdef RingBuffer _ring           # publish() -> ring -> drain()/consumer thread -> dispatch
    cdef Py_ssize_t _batch_type     # the internal event type carrying publish_batch; -1: none yet
    # A finished asyncio Future: publish_async() returns it when there is room at once, which
    # `await` passes through without suspending; set by ringbus.aio on first use.
    cdef public object _aio_ready
    # Closing (Bus.close): _open is True from the end of __init__ until close(); publish*,
    # start and attach check it (one branch per call), so it also refuses an uninitialised
    # Bus. _closers: what later layers attached, closed in this order after the consumers.
    cdef bint _open
    cdef bint _closed
    cdef double _close_timeout      # seconds; -1: no bound
    cdef list _closers
    cdef object _watchdog           # ringbus.metrics.watchdog.Watchdog, or None
    cdef bint _watchdog_closer
    # Priority lanes (ringbus.lanes): None until a lane is added, then the lanes' one
    # consumer (ringbus._lanes.LaneConsumer), the Lane objects highest first, a dict from
    # each lane and its name to its ring (publish's lane=), and per event type id its lane's
    # ring or None (the default lane): publish's route is one list index.
    cdef object _lanes
    cdef list _lane_list
    cdef dict _lane_map
    cdef list _type_ring
    cdef Conflator _conflator       # publish_conflated's state, made on its first call
    cdef object __weakref__

    cdef inline int _need(self) except -1
    cdef inline int _need_open(self) except -1
    cdef inline Py_ssize_t _checked(self, object event_type) except -1
    cdef inline RingBuffer _ring_for(self, Py_ssize_t t, object lane)
    cdef RingBuffer _lane_ring(self, Py_ssize_t t, object lane)
    cdef object _drain(self, object max_events)
    cdef int _start(self) except -1
