# cython: language_level=3
"""The per-event hand-off of ringbus.workers, compiled: the router in the parent, the
gathered message's delivery and the outbox gathering in the worker, and the results'
publish back in the parent. Each is a loop or a call per event; what is rare around them
(requests, batches, redelivered messages, errors) stays in Python.

A **gathered message** carries the events of one dispatch batch for one worker (or what a
worker's handlers published while it handled one) as ``(types, payloads, GATHERED)``:
``payloads`` a list, ``types`` one int id while they all share it (the common case), else a
list of ids, one per payload. Plain lists and ints: any codec carries them (msgspec's too),
and the pickled form is a list of payloads, not a tuple per event (a tuple per event cost
as much again to pickle, allocate and collect).
"""
cimport cython
from cpython.contextvars cimport get_value
from cpython.long cimport PyLong_CheckExact
from cpython.pythread cimport PyThread_get_thread_ident

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from ringbus._batch cimport _scatter_rows
from ringbus._bus cimport Bus
from ringbus._ring cimport RingBuffer

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object, int *) except? -1

#: The third field of a gathered message (workers.BATCH is 1, workers.REQUEST 2).
GATHERED = 3


cdef inline object _gathered_types(object types, Py_ssize_t n, object t):
    """The ``types`` field of a gathered run of ``n`` payloads, after one more of type
    ``t``: the one id while they share it, else the list (made on the first other id)."""
    if n == 0:
        return t
    if type(types) is list:
        (<list>types).append(t)
        return types
    if types is t or types == t:
        return types
    return [types] * n + [t]


def unpack(types, payloads):
    """A gathered message's events as ``(type, payload)`` pairs (for the rare paths: one
    by one after a failure, poison, redelivery)."""
    if type(types) is list:
        return list(zip(types, payloads))
    return [(types, p) for p in payloads]


def is_gathered(message):
    """Whether a decoded inbox or outbox message is a gathered one."""
    return len(message) == 3 and message[2] == GATHERED


@cython.final
cdef class Router:
    """Router(event_type, processes, key, worker_index, publish, gathering, gathering_types, ring, requests, on_request, send_gathered, not_running, gather_max)

    The handler that ``bus.subscribe(T, workers)`` puts in T's dispatch slot, called once
    per event. It picks the worker (round robin, an int key modulo the worker count, any
    other key through ``workers.worker_index``) and either adds the payload to that
    worker's gathering run (on the bus's consumer, inside a dispatch batch: the Workers send
    each run at the batch's end) or publishes ``(type, payload)`` at once (``emit`` on any
    other thread). No dict look-up, no lock, no allocation but the list's growth.

    Not API: made by ``Workers._ringbus_router``; ``publish``, ``gathering`` and
    ``gathering_types`` are the Workers' own lists (filled by start(), emptied by stop()),
    shared by the routers of all their event types, not copied."""

    cdef Py_ssize_t _t, _n, _gather_max
    cdef object _t_obj                  # _t as the int object the runs share
    cdef size_t _next                   # round robin
    cdef object _key                    # payload -> key, or None: round robin
    cdef object _worker_index           # (key, processes) -> worker, for non-int keys
    cdef list _publish                  # per worker: its inbox's publish
    cdef list _gathering                # per worker: the payloads of the current batch
    cdef list _gathering_types          # per worker: their types (see _gathered_types)
    cdef RingBuffer _ring               # whose dispatch batches end with a send
    cdef object _requests               # the ContextVar of the bus.request() being served
    cdef object _on_request             # request -> the item that carries it
    cdef object _send_gathered          # worker -> None: send its gathering run now
    cdef object _not_running            # () -> raises

    def __init__(self, Py_ssize_t event_type, Py_ssize_t processes, key, worker_index,
                 list publish not None, list gathering not None,
                 list gathering_types not None, RingBuffer ring not None, requests,
                 on_request, send_gathered, not_running, Py_ssize_t gather_max):
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self._t = event_type
        self._t_obj = event_type
        self._n = processes
        self._key = key
        self._worker_index = worker_index
        self._publish = publish
        self._gathering = gathering
        self._gathering_types = gathering_types
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
        cdef unsigned long thread = self._ring._batch_thread
        cdef bint in_batch = thread != 0 and thread == PyThread_get_thread_ident()
        cdef list payloads
        cdef Py_ssize_t n
        req = get_value(self._requests)
        if req is not None and req.payload is payload and req.event_type == self._t:
            # A bus.request() a worker will answer: its own message, after what the
            # batch gathered for that worker before it (the order per key holds).
            item = self._on_request(req)
            if in_batch and len(<list>self._gathering[w]):
                self._send_gathered(w)
            self._publish[w](item)
        elif in_batch:
            # On the bus's consumer, inside a batch: sent at its end, with the others.
            payloads = <list>self._gathering[w]
            n = len(payloads)
            self._gathering_types[w] = _gathered_types(self._gathering_types[w], n,
                                                       self._t_obj)
            payloads.append(payload)
            if n + 1 >= self._gather_max:
                self._send_gathered(w)
        else:
            self._publish[w]((self._t_obj, payload))

    def __repr__(self):
        return f"<ringbus Workers router of event type {self._t}>"


def split_rows(rows, Py_ssize_t offset, Py_ssize_t size, bint signed, Py_ssize_t n):
    """A batch's rows by worker, in one pass: ``(grouped, bounds)``, worker w's rows being
    ``grouped[bounds[w]:bounds[w + 1]]`` in their original order. The key of a row is the
    native-endian integer of ``size`` bytes (1, 2, 4, 8) at byte ``offset`` of the row
    (``signed`` or not); its worker is the key modulo ``n``, as Python's ``%`` takes it
    (so a row goes where ``worker_index`` sends the same key alone). ``rows``: a
    C-contiguous 1-D array without object fields (the caller checks)."""
    import numpy as np
    cdef Py_ssize_t count = len(rows), itemsize = rows.dtype.itemsize
    if n < 1 or size not in (1, 2, 4, 8) or offset < 0 or offset + size > itemsize:
        raise ValueError(f"split_rows: bad key layout (offset {offset}, size {size}, "
                         f"itemsize {itemsize}, {n} workers)")
    cdef const unsigned char[::1] src = rows.view(np.uint8).reshape(-1)
    owner = np.empty(count, np.int64)
    cdef int64_t[::1] own = owner
    cdef Py_ssize_t *counts = <Py_ssize_t *>calloc(n + 1, sizeof(Py_ssize_t))
    if counts == NULL:
        raise MemoryError()
    cdef Py_ssize_t i, w, pos
    # n a power of two: the modulo is a mask (a 64-bit division per row costs more than
    # the rest of the row's work); 0: divide.
    cdef int64_t mask = n - 1 if n > 1 and (n & (n - 1)) == 0 else 0
    cdef const unsigned char *at
    cdef int64_t k, i64
    cdef int32_t i32
    cdef int16_t i16
    cdef uint64_t u
    cdef uint32_t u32
    cdef uint16_t u16
    try:
        with nogil:
            for i in range(count):
                at = &src[i * itemsize + offset]
                # memcpy, not a cast: a packed dtype's field need not be aligned.
                if signed:
                    if size == 8:
                        memcpy(&i64, at, 8)
                        k = i64
                    elif size == 4:
                        memcpy(&i32, at, 4)
                        k = i32
                    elif size == 2:
                        memcpy(&i16, at, 2)
                        k = i16
                    else:
                        k = (<const int8_t *>at)[0]
                    if mask:                        # two's complement: Python's modulo
                        w = <Py_ssize_t>(k & mask)
                    else:
                        k = k % n                   # C's remainder: made Python's (>= 0)
                        w = <Py_ssize_t>(k + n if k < 0 else k)
                else:
                    if size == 8:
                        memcpy(&u, at, 8)
                    elif size == 4:
                        memcpy(&u32, at, 4)
                        u = u32
                    elif size == 2:
                        memcpy(&u16, at, 2)
                        u = u16
                    else:
                        u = at[0]
                    w = <Py_ssize_t>(u & mask if mask else u % <uint64_t>n)
                own[i] = w
                counts[w] += 1
            pos = 0
            for w in range(n):                      # counts -> each worker's start
                k = counts[w]
                counts[w] = pos
                pos += k
        bounds = [counts[w] for w in range(n)] + [count]
        grouped = np.empty_like(rows)
        _scatter_rows(own, counts, src, grouped.view(np.uint8).reshape(-1), itemsize)
    finally:
        free(counts)
    return grouped, bounds


# -- in the worker ------------------------------------------------------------------------

def emit_each(Bus bus not None, types, list payloads not None):
    """Emit the events of a gathered inbox message on the worker's ``bus``, in order, as
    ``bus.emit`` would. A BaseException from a handler stops the loop where it is (the
    message is not finished)."""
    cdef Py_ssize_t i, t = -1
    cdef list each = _each(types, payloads)
    if each is None:
        t = bus._checked(types)
    for i in range(len(payloads)):
        if each is not None:
            t = bus._checked(each[i])
        bus._emitted += 1
        bus.dispatch(t, payloads[i])


cdef list _each(object types, list payloads):
    """A gathered message's types as a list of one id per payload; None: one id for all."""
    if type(types) is not list:
        return None
    if len(<list>types) != len(payloads):
        raise ValueError(f"a gathered message with {len(<list>types)} types for "
                         f"{len(payloads)} payloads")
    return <list>types


cdef class GatheringBus(Bus):
    """The compiled half of a worker's Bus (ringbus._worker.WorkerBus): while the worker
    handles a gathered inbox message (``_gathered`` is a list), ``publish`` adds the event
    to the run that goes back to the parent as one outbox message at the message's end;
    otherwise, and for a type given by name, it calls ``_publish_out``."""

    cdef public list _gathered           # the payloads of the run, or None: not gathering
    cdef public object _gathered_types   # their types (see _gathered_types)

    def publish(self, event_type, payload=None, timeout=None, lane=None):
        """Send the event to the parent's bus (it arrives in order with this worker's
        other events); True. ``lane`` is ignored: the parent queues it in its type's
        lane."""
        if self._gathered is not None and PyLong_CheckExact(event_type):
            self._checked(event_type)           # a clear error for an id the table lacks
            self._gathered_types = _gathered_types(self._gathered_types,
                                                   len(self._gathered), event_type)
            self._gathered.append(payload)
            return True
        return self._publish_out(event_type, payload, timeout)


# -- back in the parent -------------------------------------------------------------------

def publish_each(Bus bus not None, types, list payloads not None):
    """Publish the events of a gathered outbox message (what a worker's handlers published
    while it handled one inbox message) into ``bus``'s ring, in order, as ``bus.publish``
    would."""
    cdef Py_ssize_t i, t = -1
    cdef list each = _each(types, payloads)
    bus._need_open()
    if each is None:
        t = bus._checked(types)
    for i in range(len(payloads)):
        if each is not None:
            t = bus._checked(each[i])
        bus._ring_for(t, None).publish_c(t, payloads[i], -1)   # the type's lane
