# Declarations only: the ring algorithms of _ringbuffer.h (slots, sequencers, barriers,
# park/wake). The structs are opaque except for the fields Cython reads while it holds the
# ring alone (configuration); everything shared goes through the functions.
from libc.stdint cimport int32_t, int64_t
from ringbus._atomic cimport rb_atomic_i32, rb_sequence, rb_deadline_t

cdef extern from "_ringbuffer.h" nogil:
    enum: RB_MAX_GATING
    enum:
        RB_WAIT_BLOCK
        RB_WAIT_SPIN
        RB_WAIT_YIELD
        RB_WAIT_SLEEP
    enum:
        RB_RUN
        RB_STOP_WHEN_DONE
        RB_STOP_NOW

    ctypedef struct rb_slot:
        pass

    ctypedef struct rb_parker:
        pass

    ctypedef struct rb_ring:
        int64_t capacity
        int32_t multi
        int32_t n_gating
        rb_sequence *gating[RB_MAX_GATING]
        rb_sequence cursor
        rb_sequence dropped
        rb_sequence stop_target
        rb_atomic_i32 consumer_gone
        rb_parker *park

    ctypedef struct rb_consumer:
        rb_sequence sequence
        rb_atomic_i32 alert

    ctypedef struct rb_consuming:
        pass

    # Where a ring's sequencing state lives (process-local pointers). Cython reads its
    # configuration and hands it to the functions below.
    ctypedef struct rb_sequencer:
        int64_t capacity
        int64_t mask
        int32_t multi
        rb_sequence *cursor
        rb_parker *parker

    enum:
        RB_CLAIM_TIMEOUT
        RB_CLAIM_WOULD_DEADLOCK
        RB_CLAIM_CONSUMER_GONE
    double RB_CLAIM_WAIT_SLICE

    rb_sequencer rb_ring_sequencer(rb_ring *r) noexcept
    int64_t rb_sequencer_claim_upto(const rb_sequencer *q, int64_t max_n, int64_t *hi) noexcept
    int64_t rb_sequencer_claimed(const rb_sequencer *q) noexcept
    int64_t rb_sequencer_barrier_available(const rb_sequencer *q, rb_sequence **deps,
                                           int32_t ndeps, int64_t next) noexcept
    int64_t rb_sequencer_wait_for(const rb_sequencer *q, rb_sequence **deps, int32_t ndeps,
                                  int64_t next, int strategy, rb_atomic_i32 *alert,
                                  rb_deadline_t no_deadline) noexcept
    int64_t rb_sequencer_poll(const rb_sequencer *q, rb_sequence **deps, int32_t ndeps,
                              int64_t next, rb_atomic_i32 *alert, double seconds) noexcept
    int64_t rb_sequencer_claim_wait(const rb_sequencer *q, const void *ring, rb_atomic_i32 *gone,
                                    int64_t max_n, double timeout, int64_t *hi) noexcept
    int64_t rb_sequencer_unblock_gap(const rb_sequencer *q, int64_t next,
                                     int (*gone)(int64_t) noexcept nogil) noexcept
    int32_t rb_lanes_ready(const rb_sequencer *const *qs, const int64_t *next,
                           int32_t n) noexcept
    int32_t rb_lanes_wait(const rb_sequencer *const *qs, const int64_t *next,
                          rb_atomic_i32 *const *alerts, int32_t n, int strategy, double poll,
                          rb_deadline_t until) noexcept
    void rb_parker_init(rb_parker *p, int shared) noexcept
    void rb_parker_wake(rb_parker *p) noexcept
    void rb_parker_hold(rb_parker *p) noexcept

    void rb_ring_init(rb_ring *r, int64_t capacity, int multi, rb_slot *slots, rb_atomic_i32 *available) noexcept
    void rb_ring_destroy(rb_ring *r) noexcept
    int64_t rb_min_gating(rb_ring *r, int64_t limit) noexcept
    int64_t rb_claimed(rb_ring *r) noexcept
    int64_t rb_claim_upto(rb_ring *r, int64_t max_n, int64_t *hi) noexcept
    bint rb_room_for(rb_ring *r, int64_t wrap_point) noexcept
    void *rb_slot_write(rb_ring *r, int64_t seq, int64_t type, void *payload) noexcept
    void rb_publish(rb_ring *r, int64_t lo, int64_t hi) noexcept
    int64_t rb_barrier_available(rb_ring *r, rb_sequence **deps, int32_t ndeps,
                                 int64_t next) noexcept
    void *rb_slot_read(rb_ring *r, int64_t seq, int64_t *type, int take) noexcept

    void rb_wake(rb_ring *r) noexcept
    void rb_park_begin(rb_ring *r) noexcept
    void rb_park_wait(rb_ring *r, rb_deadline_t deadline) noexcept
    void rb_park_end(rb_ring *r) noexcept
    int64_t rb_wait_for(rb_ring *r, rb_sequence **deps, int32_t ndeps, int64_t next,
                        int strategy, rb_atomic_i32 *alert, rb_deadline_t no_deadline) noexcept

    void rb_stop_set_target(rb_sequence *target, int64_t t) noexcept
    int64_t rb_stop_limit(rb_sequence *target, rb_atomic_i32 *alert, int64_t avail) noexcept
    bint rb_stop_reached(rb_sequence *target, int64_t next) noexcept

    void rb_consumer_init(rb_consumer *c, int64_t sequence) noexcept
    # The consuming-thread registry, owned by ringbus._driver (which alone pushes and pops);
    # a module that reads it (rb_consuming_find) binds it first: rb_consuming_bind(consuming_head).
    void rb_consuming_push(rb_consuming *node, const void *ring, rb_consumer *c) noexcept
    void rb_consuming_pop(rb_consuming *node) noexcept
    rb_consumer *rb_consuming_find(const void *ring) noexcept
    void rb_consuming_bind(rb_consuming **(*head)() noexcept nogil) noexcept
