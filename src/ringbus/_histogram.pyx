# cython: language_level=3
"""ringbus.Histogram: latencies in a fixed-size log-linear histogram (C, _histogram.h)."""
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

# Not _clock.h: its calibration globals are _dispatch's alone (a static per module).
cdef extern from "_ticks.h" nogil:
    uint64_t _monotonic_ns "rb_ticks_monotonic_ns"()

import operator

#: The largest relative error of a reported percentile (a bucket's midpoint against any
#: value recorded in that bucket): 1/64.
RELATIVE_ERROR = 0.015625
#: Values at or above this land in the last bucket and are counted in ``overflow``.
TOP = 1 << 43

_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99_9", 0.999))


cdef uint64_t _value_arg(object value) except? 0xFFFFFFFFFFFFFFFF:
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"value must be an int (nanoseconds), got "
                        f"{type(value).__name__}: {value!r}")
    v = operator.index(value)
    if v < 0 or v > 0xFFFFFFFFFFFFFFFE:
        raise ValueError(f"value must be >= 0 and < 2**64 - 1, got {v}")
    return v


cdef class Histogram:
    """Histogram()
--

    Values (nanoseconds, by convention) in a fixed-size log-linear histogram: about 10 KiB
    whatever is recorded, O(1) to record, mergeable. Values under 64 are kept exactly;
    above, each power of two is cut into 32 buckets, so a percentile is within 1/64
    (1.6 %) of a value actually recorded near it. Up to 2**43 ns (2.4 hours); larger
    values are counted in ``overflow`` and ``max`` stays exact.

    >>> h = ringbus.Histogram()
    >>> for v in (100, 200, 300, 400):
    ...     h.record(v)
    >>> h.count, h.min, h.max, h.percentile(50)
    (4, 100, 400, 201)

    One writer at a time (ringbus records while holding the GIL).
    """

    def __cinit__(self):
        self._h = <rb_hist *>PyMem_Malloc(sizeof(rb_hist))     # the C struct's real size
        if self._h == NULL:
            raise MemoryError()
        rb_hist_reset(self._h)

    def __init__(self):
        pass                                # all set up in __cinit__

    def __dealloc__(self):
        PyMem_Free(self._h)

    def record(self, value):
        """Add one value (an int >= 0)."""
        rb_hist_record(self._h, _value_arg(value))

    def record_many(self, values):
        """Add every value of an iterable (ints >= 0); returns how many."""
        cdef Py_ssize_t n = 0
        for value in values:
            rb_hist_record(self._h, _value_arg(value))
            n += 1
        return n

    def merge(self, Histogram other not None):
        """Add ``other``'s values to this one (as if recorded here)."""
        rb_hist_merge(self._h, other._h)

    def reset(self):
        """Forget every value."""
        rb_hist_reset(self._h)

    def copy(self):
        """An independent copy."""
        cdef Histogram h = Histogram.__new__(Histogram)
        memcpy(h._h, self._h, sizeof(rb_hist))
        return h

    def percentile(self, p):
        """The value at percentile ``p`` (0 < p <= 100): the midpoint of the bucket holding
        the ceil(p/100 * count)-th smallest value, clamped to [min, max]; 0 when empty."""
        cdef double q
        try:
            q = p
        except TypeError:
            raise TypeError(f"p must be a number in (0, 100], got {type(p).__name__}: "
                            f"{p!r}") from None
        if not 0 < q <= 100:
            raise ValueError(f"p must be in (0, 100], got {p!r}")
        return rb_hist_quantile(self._h, q / 100.0)

    @property
    def count(self):
        """How many values were recorded."""
        return self._h.count

    @property
    def min(self):
        """The smallest value recorded, exactly (None when empty)."""
        return self._h.min if self._h.count else None

    @property
    def max(self):
        """The largest value recorded, exactly (None when empty)."""
        return self._h.max if self._h.count else None

    @property
    def mean(self):
        """The exact mean of the values (None when empty)."""
        return <double>self._h.sum / self._h.count if self._h.count else None

    @property
    def total(self):
        """The exact sum of the values."""
        return self._h.sum

    @property
    def overflow(self):
        """How many values were at or above ``TOP`` (2**43)."""
        return self._h.overflow

    def snapshot(self):
        """Plain data: ``{"count", "min", "max", "mean", "p50", "p90", "p99", "p99_9",
        "overflow"}`` (min, max, mean and percentiles None when empty)."""
        out = {"count": self.count, "min": self.min, "max": self.max, "mean": self.mean}
        for name, q in _PERCENTILES:
            out[name] = rb_hist_quantile(self._h, q) if self._h.count else None
        out["overflow"] = self.overflow
        return out

    def buckets(self):
        """The non-empty buckets as ``[(lowest value, count), ...]``, ascending."""
        cdef int i
        out = []
        for i in range(RB_HIST_BUCKETS):
            if self._h.buckets[i]:
                out.append((_lowest(i), self._h.buckets[i]))
        return out

    def counts_at(self, bounds):
        """For each bound of the ascending ``bounds`` (ints), how many values are at most
        it, counted by bucket: a bucket counts once its highest value is within the bound
        (Prometheus's cumulative ``le`` buckets, within a bucket's width)."""
        cdef int i = 0
        cdef uint64_t width, high, seen = 0
        out = []
        for bound in bounds:
            while i < RB_HIST_BUCKETS:
                high = rb_hist_lowest(i, &width) + width - 1
                if high > bound:
                    break
                seen += self._h.buckets[i]
                i += 1
            out.append(seen)
        return out

    def __reduce__(self):
        cdef bytes state = (<char *>self._h)[:sizeof(rb_hist)]
        return (_restore, (state,))

    def __repr__(self):
        if not self._h.count:
            return "<ringbus.Histogram empty>"
        s = self.snapshot()
        return (f"<ringbus.Histogram count={s['count']} min={s['min']} p50={s['p50']} "
                f"p99={s['p99']} max={s['max']}>")


cdef extern from "_histogram.h" nogil:
    uint64_t rb_hist_lowest(int i, uint64_t *width)


cdef object _lowest(int i):
    cdef uint64_t width
    return rb_hist_lowest(i, &width)


def _restore(bytes state):
    cdef Histogram h = Histogram.__new__(Histogram)
    if len(state) != sizeof(rb_hist):
        raise ValueError(f"a Histogram state of {len(state)} bytes, expected {sizeof(rb_hist)}")
    memcpy(h._h, <char *>state, sizeof(rb_hist))
    return h


def _record_loop(Histogram h not None, Py_ssize_t n, bint record=True):
    """Not API (``python -m ringbus bench``): record ``n`` pseudo-random values spread over
    20 ns to 1 ms in a C loop (``record=False``: only make them); the nanoseconds taken."""
    cdef uint64_t x = 0x9E3779B97F4A7C15, v, sink = 0
    cdef uint64_t t0, t1
    cdef Py_ssize_t i
    with nogil:
        t0 = _monotonic_ns()
        for i in range(n):
            x ^= x << 13                        # xorshift64
            x ^= x >> 7
            x ^= x << 17
            v = 20 + ((x & 0xFFFFF) >> (x >> 60))
            if record:
                rb_hist_record(h._h, v)
            else:
                sink += v
        t1 = _monotonic_ns()
    if sink == 1:
        print(end="")                           # keeps the loop from being optimised out
    return t1 - t0
