# cython: language_level=3
"""An extension that publishes records into a ringbus.RecordRing from a nogil loop.

It uses ringbus's C API the way any compiled producer would: it cimports
``ringbus.records`` (built with ``ringbus.get_include()`` on the include path), gets the
ring's handle once with the GIL, then publishes without it.

>>> import threading, numpy as np, ringbus, nogil_producer
>>> ring = ringbus.RecordRing(nogil_producer.TICK, 4096)
>>> ring.subscribe(lambda view: print(len(view)))         # doctest: +SKIP
>>> ring.start()
>>> t = threading.Thread(target=nogil_producer.produce, args=(ring, 1_000_000))
>>> t.start(); t.join(); ring.stop()
"""
from libc.stdint cimport int64_t

from ringbus.records cimport (
    ringbus_record_ring, ringbus_record_ring_of, ringbus_record_size,
    ringbus_record_publish, ringbus_record_try_publish, RINGBUS_PUBLISHED,
)

import numpy

# One record: the C struct and the numpy dtype the ring is made with describe the same 16
# bytes (packed: no padding on either side).
cdef packed struct Tick:
    int64_t seq
    double price

TICK = numpy.dtype([("seq", "<i8"), ("price", "<f8")])


def produce(ring, Py_ssize_t count, int64_t producer=0, double timeout=-1.0):
    """Publish ``count`` Ticks into ``ring`` (a RecordRing of dtype TICK) from this thread,
    without the GIL: seq = producer << 32 | i, price = i / 4. A full ring gets the ring's
    overflow rule (wait up to ``timeout`` seconds per record if >= 0, then the policy acts);
    the loop stops at the first record not published. Returns how many were published."""
    # With the GIL, once: the handle, and a check that the ring's records are Ticks.
    cdef ringbus_record_ring *handle = ringbus_record_ring_of(ring)
    if ringbus_record_size(handle) != sizeof(Tick):
        raise ValueError(f"the ring's records are {ringbus_record_size(handle)} bytes, a "
                         f"Tick is {sizeof(Tick)}: make the ring with nogil_producer.TICK")
    cdef Tick tick
    cdef Py_ssize_t i = 0
    # `ring` stays referenced by this frame, so the handle stays valid during the loop.
    with nogil:
        while i < count:
            tick.seq = (producer << 32) | i
            tick.price = i * 0.25
            if ringbus_record_publish(handle, &tick, timeout) != RINGBUS_PUBLISHED:
                break
            i += 1
    return i


def try_produce(ring, Py_ssize_t count, int64_t producer=0):
    """Like :func:`produce`, but never waits: returns how many fitted right now."""
    cdef ringbus_record_ring *handle = ringbus_record_ring_of(ring)
    if ringbus_record_size(handle) != sizeof(Tick):
        raise ValueError("make the ring with nogil_producer.TICK")
    cdef Tick tick
    cdef Py_ssize_t i = 0
    with nogil:
        while i < count:
            tick.seq = (producer << 32) | i
            tick.price = i * 0.25
            if ringbus_record_try_publish(handle, &tick) != RINGBUS_PUBLISHED:
                break
            i += 1
    return i
