# The log-linear latency histogram of _histogram.h, and its Python face.
from libc.stdint cimport uint64_t


cdef extern from "_histogram.h" nogil:
    int RB_HIST_BUCKETS
    ctypedef struct rb_hist:
        uint64_t count
        uint64_t sum
        uint64_t min
        uint64_t max
        uint64_t overflow
        uint64_t buckets[1]         # RB_HIST_BUCKETS of them: the header owns the size
    ctypedef struct rb_meter:
        uint64_t calls
        uint64_t errors
        rb_hist time
    void rb_hist_reset(rb_hist *h)
    void rb_hist_record(rb_hist *h, uint64_t v)
    void rb_hist_merge(rb_hist *into, const rb_hist *src)
    uint64_t rb_hist_quantile(const rb_hist *h, double q)


cdef class Histogram:
    # Owned, fixed size (about 10 KiB); a Histogram made by ringbus's metrics may instead
    # copy a subscription's live one (snapshot), never alias it.
    cdef rb_hist *_h
