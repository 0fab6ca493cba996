# ringbus's C API for compiled producers: declarations of ringbus_records.h.
#
# Publish fixed-size records into a ringbus.RecordRing from nogil code:
#
#     from ringbus.records cimport (ringbus_record_ring, ringbus_record_ring_of,
#                                   ringbus_record_publish, RINGBUS_PUBLISHED)
#     cdef ringbus_record_ring *ring = ringbus_record_ring_of(ring_object)   # with the GIL
#     with nogil:
#         rc = ringbus_record_publish(ring, &record, -1.0)      # block while the ring is full
#
# Compile with ringbus.get_include() on the include path (the header's directory). The
# handle is valid while the RecordRing object is alive: keep a reference to it. Return
# values, policies and timeouts are documented in ringbus_records.h.
from libc.stdint cimport int64_t

cdef extern from "ringbus_records.h":
    enum:
        RINGBUS_RECORDS_ABI_VERSION
    enum:
        RINGBUS_PUBLISHED
        RINGBUS_FULL
        RINGBUS_DROPPED
        RINGBUS_TIMEOUT
        RINGBUS_WOULD_DEADLOCK
        RINGBUS_CONSUMER_GONE

    # Opaque: a RecordRing's C handle.
    ctypedef struct ringbus_record_ring:
        pass

    # With the GIL.
    int ringbus_records_import() except -1
    ringbus_record_ring *ringbus_record_ring_of(object ring) except NULL

cdef extern from "ringbus_records.h" nogil:
    # Without the GIL (or with it).
    int ringbus_record_try_publish(ringbus_record_ring *ring, const void *record) noexcept
    int ringbus_record_publish(ringbus_record_ring *ring, const void *record,
                               double timeout) noexcept
    int64_t ringbus_record_publish_many(ringbus_record_ring *ring, const void *records,
                                        int64_t n, double timeout, int *status) noexcept
    int64_t ringbus_record_size(const ringbus_record_ring *ring) noexcept
    int64_t ringbus_record_capacity(const ringbus_record_ring *ring) noexcept
