# Declarations only: the record ring of _recordring.h (region layout, the process-local
# handle, producers, consumer). The handle is opaque except for what Cython reads while it
# alone holds the ring (configuration); everything shared goes through the functions.
from libc.stdint cimport int32_t, int64_t, uint32_t
from ringbus._atomic cimport rb_sequence, rb_deadline_t, rb_atomic_i32
from ringbus._ringbuffer cimport rb_consumer, rb_sequencer

cdef extern from "_recordring.h" nogil:
    enum:
        RB_RECORD_PUBLISHED
        RB_RECORD_FULL
        RB_RECORD_DROPPED
        RB_RECORD_TIMEOUT
        RB_RECORD_WOULD_DEADLOCK
        RB_RECORD_CONSUMER_GONE
    enum:
        RB_OVERFLOW_BLOCK
        RB_OVERFLOW_RAISE
        RB_OVERFLOW_DROP

    enum:
        RB_RECORD_DESCR_MAX
    enum:
        RB_KIND_RECORDS
        RB_KIND_MESSAGES
    enum:
        RB_FRAME_UNIT

    ctypedef struct rb_record_header:
        int64_t capacity
        int64_t record_size
        int64_t region_size
        int64_t records_offset
        int32_t multi
        int32_t wait
        int32_t descr_len
        char descr[1]                  # RB_RECORD_DESCR_MAX bytes
        int64_t creator_pid
        int32_t kind
        uint32_t nonce
        double unblock_timeout
        rb_sequence messages
        rb_sequence consumed
        rb_sequence consumer_pid
        rb_sequence inflight
        rb_sequence redelivered
        rb_sequence abandoned
        rb_sequence producer_pid
        rb_sequence cursor
        int64_t sp_next
        int64_t sp_cached_gating
        rb_sequence dropped
        rb_consumer consumer
        rb_sequence stop_target
        rb_atomic_i32 consumer_gone

    ctypedef struct rb_record_ring:
        rb_sequencer seq
        rb_record_header *header
        int64_t record_size
        int32_t shared

    int64_t rb_record_layout(int64_t capacity, int64_t record_size, int multi,
                             int64_t *available_offset, int64_t *records_offset) noexcept
    void rb_record_region_init(void *region, int64_t capacity, int64_t record_size,
                               int multi, int shared) noexcept
    void rb_record_region_destroy(void *region) noexcept
    int rb_record_ring_attach(rb_record_ring *rr, void *region, int overflow, int wait) noexcept
    const char *rb_record_header_check(const void *region, int64_t mapped) noexcept
    int64_t rb_record_ring_record_size(const rb_record_ring *rr) noexcept
    int64_t rb_record_ring_capacity(const rb_record_ring *rr) noexcept

    void rb_record_write(const rb_record_ring *rr, int64_t lo, int64_t hi, const void *src) noexcept
    void rb_record_publish_range(const rb_record_ring *rr, int64_t lo, int64_t hi) noexcept
    int64_t rb_record_claim(const rb_record_ring *rr, int64_t max_n, int64_t *hi) noexcept
    int rb_record_try_publish(rb_record_ring *rr, const void *record) noexcept
    void rb_record_release(const rb_record_ring *rr, int64_t hi) noexcept
    void rb_record_wake(const rb_record_ring *rr) noexcept
    int64_t rb_record_available(const rb_record_ring *rr, int64_t next) noexcept
    int64_t rb_record_wait_for(const rb_record_ring *rr, int64_t next, int strategy,
                               rb_deadline_t no_deadline) noexcept
    int64_t rb_record_run_end(const rb_record_ring *rr, int64_t lo, int64_t hi) noexcept
    unsigned char *rb_record_slot(const rb_record_ring *rr, int64_t seq) noexcept

    int64_t rb_record_claim_wait(rb_record_ring *rr, int64_t max_n, double timeout,
                                 int64_t *hi) noexcept
    int rb_record_publish(rb_record_ring *rr, const void *record, double timeout) noexcept
    int64_t rb_record_publish_many(rb_record_ring *rr, const void *records, int64_t n,
                                   double timeout, int *status) noexcept

    int64_t rb_frame_units(int64_t length) noexcept
    int64_t rb_message_max(int64_t capacity) noexcept
    void rb_message_write(const rb_record_ring *rr, int64_t lo, int64_t hi, const void *data,
                          int64_t length) noexcept
    void rb_message_publish(const rb_record_ring *rr, int64_t lo, int64_t hi) noexcept
    const unsigned char *rb_message_frame(const rb_record_ring *rr, int64_t s, int64_t hi,
                                          int64_t *units, int64_t *length) noexcept
    int rb_pid_gone(int64_t pid) noexcept
    void rb_record_share(rb_record_ring *rr) noexcept
