# Declarations only: the named atomic operations, Sequence and pause primitive of _atomic.h.
# Atomic types are opaque here on purpose: Cython cannot express _Atomic, so it must reach
# them through these functions, whose names carry the memory order.
from libc.stdint cimport int32_t, int64_t

cdef extern from "_atomic.h" nogil:
    enum: RB_CACHELINE

    ctypedef struct rb_atomic_i64:
        pass
    ctypedef struct rb_atomic_i32:
        pass

    ctypedef struct rb_sequence:
        rb_atomic_i64 value

    ctypedef struct rb_deadline_t:
        pass

    int64_t rb_load_relaxed_i64(rb_atomic_i64 *p) noexcept
    int64_t rb_load_acquire_i64(rb_atomic_i64 *p) noexcept
    void rb_store_relaxed_i64(rb_atomic_i64 *p, int64_t v) noexcept
    void rb_store_release_i64(rb_atomic_i64 *p, int64_t v) noexcept
    int64_t rb_fetch_add_relaxed_i64(rb_atomic_i64 *p, int64_t v) noexcept
    bint rb_cas_relaxed_i64(rb_atomic_i64 *p, int64_t *expected, int64_t desired) noexcept

    int32_t rb_load_relaxed_i32(rb_atomic_i32 *p) noexcept
    int32_t rb_load_acquire_i32(rb_atomic_i32 *p) noexcept
    void rb_store_relaxed_i32(rb_atomic_i32 *p, int32_t v) noexcept
    void rb_store_release_i32(rb_atomic_i32 *p, int32_t v) noexcept
    int32_t rb_fetch_add_relaxed_i32(rb_atomic_i32 *p, int32_t v) noexcept
    int32_t rb_exchange_relaxed_i32(rb_atomic_i32 *p, int32_t v) noexcept

    void rb_fence_seq_cst() noexcept
    void rb_cpu_pause() noexcept

    void rb_sequence_init(rb_sequence *s, int64_t v) noexcept
    int64_t rb_sequence_get(rb_sequence *s) noexcept
    int64_t rb_sequence_get_own(rb_sequence *s) noexcept
    void rb_sequence_set(rb_sequence *s, int64_t v) noexcept

    double rb_monotonic() noexcept
    rb_deadline_t rb_deadline_in(double seconds) noexcept
    rb_deadline_t rb_no_deadline() noexcept
    void rb_sleep_ns(long ns) noexcept
