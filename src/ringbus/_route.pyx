# cython: language_level=3
"""The per-event hand-off of ringbus.workers, compiled: the router in the parent, the
gathered message's delivery and the outbox gathering in the worker, and the results'
publish back in the parent. Each is a loop or a call per event; what is rare around them
(requests, batches, redelivered messages, errors) stays in Python.

The router is the handler that a ``bus.subscribe(T, workers)`` puts in T's dispatch slot,
called once per event.

Per event it picks the worker (round robin, an int key modulo the worker count, any other
key through ``workers.worker_index``), builds the inbox item ``(type, payload)`` and either
appends it to that worker's gathering list (on the bus's consumer, inside a dispatch batch:
the Workers send each list at the batch's end) or publishes it at once (``emit`` on any
other thread). No dict look-up, no lock: a few C compares, one tuple, one list append. What
is rare stays in Python: a ``bus.request()`` being served, a full gathering list, routing
while the workers are not running.
"""
cimport cython
from cpython.contextvars cimport get_value
from cpython.long cimport PyLong_CheckExact
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.tuple cimport PyTuple_GET_SIZE

from ringbus._bus cimport Bus
from ringbus._ring cimport RingBuffer

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object, int *) except? -1


@cython.final
cdef class Router:
    """Router(event_type, processes, key, worker_index, publish, gathering, ring, requests, on_request, send_gathered, not_running, gather_max)

    Not API: made by ``Workers._ringbus_router``; ``publish`` and ``gathering`` are the
    Workers' own lists (filled by start(), emptied by stop()), shared, not copied."""

    cdef Py_ssize_t _t, _n, _gather_max
    cdef size_t _next                   # round robin
    cdef object _key                    # payload -> key, or None: round robin
    cdef object _worker_index           # (key, processes) -> worker, for non-int keys
    cdef list _publish                  # per worker: its inbox's publish
    cdef list _gathering                # per worker: the items of the current batch
    cdef RingBuffer _ring               # whose dispatch batches end with a send
    cdef object _requests               # the ContextVar of the bus.request() being served
    cdef object _on_request             # request -> the item that carries it
    cdef object _send_gathered          # worker -> None: send its gathering list now
    cdef object _not_running            # () -> raises

    def __init__(self, Py_ssize_t event_type, Py_ssize_t processes, key, worker_index,
                 list publish not None, list gathering not None, RingBuffer ring not None,
                 requests, on_request, send_gathered, not_running, Py_ssize_t gather_max):
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self._t = event_type
        self._n = processes
        self._key = key
        self._worker_index = worker_index
        self._publish = publish
        self._gathering = gathering
        self._ring = ring
        self._requests = requests
        self._on_request = on_request
        self._send_gathered = send_gathered
        self._not_running = not_running
        self._gather_max = gather_max
        self._next = 0

    cdef Py_ssize_t _worker(self, payload) except -1:
        cdef long long k, r
        cdef int overflow = 0
        if self._key is None:
            self._next += 1
            return <Py_ssize_t>((self._next - 1) % <size_t>self._n)
        key = self._key(payload)
        if PyLong_CheckExact(key):
            k = PyLong_AsLongLongAndOverflow(key, &overflow)
            if not overflow:
                r = k % self._n                # C's remainder: made Python's (>= 0)
                return <Py_ssize_t>(r + self._n if r < 0 else r)
        return self._worker_index(key, self._n)

    def __call__(self, payload):
        if not self._publish:
            self._not_running()
        cdef Py_ssize_t w = self._worker(payload)
        req = get_value(self._requests)
        if req is not None and req.payload is payload and req.event_type == self._t:
            item = self._on_request(req)           # a bus.request() a worker will answer
        else:
            item = (self._t, payload)
        cdef unsigned long thread = self._ring._batch_thread
        cdef list gathered
        if thread != 0 and thread == PyThread_get_thread_ident():
            # On the bus's consumer, inside a batch: sent at its end, with the others.
            gathered = <list>self._gathering[w]
            gathered.append(item)
            if len(gathered) >= self._gather_max:
                self._send_gathered(w)
        else:
            self._publish[w](item)

    def __repr__(self):
        return f"<ringbus Workers router of event type {self._t}>"


# -- in the worker ------------------------------------------------------------------------

def emit_each(Bus bus not None, list items not None, deliver_other):
    """Emit each ``(type, payload)`` pair of a gathered inbox message on the worker's
    ``bus``, in order, as ``bus.emit`` would; any other item (a request, a batch of rows)
    goes to ``deliver_other(item)`` in its place. A BaseException from a handler stops the
    loop where it is (the message is not finished)."""
    cdef Py_ssize_t i
    cdef Py_ssize_t t
    for i in range(len(items)):
        item = items[i]
        if type(item) is tuple and PyTuple_GET_SIZE(item) == 2:
            t = bus._checked((<tuple>item)[0])
            bus._emitted += 1
            bus.dispatch(t, (<tuple>item)[1])
        else:
            deliver_other(item)


cdef class GatheringBus(Bus):
    """The compiled half of a worker's Bus (ringbus._worker.WorkerBus): while the worker
    handles a gathered inbox message (``_gathered`` is a list), ``publish`` appends the
    ``(type, payload)`` pair to it, to go back to the parent as one outbox message at the
    message's end; otherwise, and for a type given by name, it calls ``_publish_out``."""

    cdef public list _gathered

    def publish(self, event_type, payload=None, timeout=None):
        """Send the event to the parent's bus (it arrives in order with this worker's
        other events); True."""
        if self._gathered is not None and PyLong_CheckExact(event_type):
            self._checked(event_type)           # a clear error for an id the table lacks
            self._gathered.append((event_type, payload))
            return True
        return self._publish_out(event_type, payload, timeout)


# -- back in the parent -------------------------------------------------------------------

def publish_each(Bus bus not None, list items not None):
    """Publish each ``(type, payload)`` pair a worker sent back (one gathered outbox
    message) into ``bus``'s ring, in order, as ``bus.publish`` would."""
    cdef Py_ssize_t i
    bus._need_open()
    cdef RingBuffer ring = bus._ring
    for i in range(len(items)):
        item = items[i]
        ring.publish_c(bus._checked(item[0]), item[1], -1)
