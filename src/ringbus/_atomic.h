/* Atomics, padding and the park/wake primitives of the compiled core.
 *
 * Every atomic access of ringbus goes through a function below whose name says its memory
 * order. Cython code never touches an atomic field: it cannot express _Atomic, and keeping
 * the orders in one file is what lets one model checker run cover them.
 *
 * The same source compiles two ways:
 *   - production (C11): <stdatomic.h> and pthreads;
 *   - RINGBUS_RELACY (C++, tests/relacy/): Relacy's rl::atomic, rl::var and its pthread
 *     emulation, so that the ring algorithms in _ring.h are model-checked as written.
 * Only the RB_* macro layer differs between the two.
 */
#ifndef RINGBUS_ATOMIC_H
#define RINGBUS_ATOMIC_H

#include <stdint.h>

/* 128, not 64: Intel's spatial prefetcher pulls 64-byte lines in pairs, so two hot fields
 * 64 bytes apart still share traffic (crossbeam and Folly pad to 128 on x86-64 too). */
#define RB_CACHELINE 128

#if defined(RINGBUS_RELACY)
/* ---------------------------------------------------------------- model-checking layer */
#include <relacy/relacy.hpp>

typedef rl::atomic<int64_t> rb_atomic_i64;
typedef rl::atomic<int32_t> rb_atomic_i32;
#define RB_MO_relaxed rl::mo_relaxed
#define RB_MO_acquire rl::mo_acquire
#define RB_MO_release rl::mo_release
#define RB_MO_acq_rel rl::mo_acq_rel
#define RB_MO_seq_cst rl::mo_seq_cst
#define RB_LOAD(p, mo) ((p)->load(RB_MO_##mo, $))
#define RB_STORE(p, v, mo) ((p)->store((v), RB_MO_##mo, $))
#define RB_FETCH_ADD(p, v, mo) ((p)->fetch_add((v), RB_MO_##mo, $))
#define RB_EXCHANGE(p, v, mo) ((p)->exchange((v), RB_MO_##mo, $))
#define RB_CAS_WEAK(p, expected, desired, mo_ok, mo_fail) \
    ((p)->compare_exchange_weak(*(expected), (desired), RB_MO_##mo_ok, $, RB_MO_##mo_fail, $))
#define RB_FENCE(mo) rl::atomic_thread_fence(RB_MO_##mo, $)
/* Plain data shared between threads (slots): rl::var makes the model report a data race
 * when two accesses are not ordered by the atomics above. */
#define RB_VAR(T) rl::var<T>
#define RB_VAR_GET(x) ((x)($))
#define RB_VAR_SET(x, v) ((x)($) = (v))
/* Size of padding after a field of `used` bytes; the model does not care about layout. */
#define RB_PAD(name, used) char name[1]
#define RB_PAUSE() rl::yield(1, $)
#define RB_YIELD() rl::yield(1, $)

typedef rl::rl_pthread_mutex_t rb_mutex_t;
typedef rl::rl_pthread_cond_t rb_cond_t;
typedef int rb_deadline_t;                 /* the model treats every timed wait as "may time out" */
#define RB_MUTEX_INIT(m) rl::rl_pthread_mutex_init((m), 0, $)
#define RB_MUTEX_INIT_SHARED(m) RB_MUTEX_INIT(m)
#define RB_MUTEX_DESTROY(m) rl::rl_pthread_mutex_destroy((m), $)
#define RB_MUTEX_LOCK(m) rl::rl_pthread_mutex_lock((m), $)
#define RB_MUTEX_UNLOCK(m) rl::rl_pthread_mutex_unlock((m), $)
#define RB_COND_INIT(c) rl::rl_pthread_cond_init((c), 0, $)
#define RB_COND_INIT_SHARED(c) RB_COND_INIT(c)
#define RB_COND_DESTROY(c) rl::rl_pthread_cond_destroy((c), $)
#define RB_COND_BROADCAST(c) rl::rl_pthread_cond_broadcast((c), $)
/* A deadline of 0 means "no deadline": an untimed wait, so a lost wake-up is a deadlock the
 * model reports instead of a delay it cannot see. */
#define RB_COND_WAIT_UNTIL(c, m, d) \
    ((d) == 0 ? rl::rl_pthread_cond_wait((c), (m), $) : rl::rl_pthread_cond_timedwait((c), (m), 0, $))
/* The models check the park/wake protocol on a condition variable (production Linux sleeps
 * on a futex word in its place: the same handshake, see rb_parker in _ringbuffer.h). */
#define RB_PARK_FUTEX 0

#else
/* ---------------------------------------------------------------------- production layer */
#include <stdatomic.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <errno.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

typedef _Atomic int64_t rb_atomic_i64;
typedef _Atomic int32_t rb_atomic_i32;
#define RB_MO_relaxed memory_order_relaxed
#define RB_MO_acquire memory_order_acquire
#define RB_MO_release memory_order_release
#define RB_MO_acq_rel memory_order_acq_rel
#define RB_MO_seq_cst memory_order_seq_cst
#define RB_LOAD(p, mo) atomic_load_explicit((p), RB_MO_##mo)
#define RB_STORE(p, v, mo) atomic_store_explicit((p), (v), RB_MO_##mo)
#define RB_FETCH_ADD(p, v, mo) atomic_fetch_add_explicit((p), (v), RB_MO_##mo)
#define RB_EXCHANGE(p, v, mo) atomic_exchange_explicit((p), (v), RB_MO_##mo)
#define RB_CAS_WEAK(p, expected, desired, mo_ok, mo_fail) \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), RB_MO_##mo_ok, RB_MO_##mo_fail)
#define RB_FENCE(mo) atomic_thread_fence(RB_MO_##mo)
#define RB_VAR(T) T
#define RB_VAR_GET(x) (x)
#define RB_VAR_SET(x, v) ((x) = (v))
#define RB_PAD(name, used) char name[RB_CACHELINE - (used)]

#if defined(__x86_64__) || defined(__i386__)
#define RB_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define RB_PAUSE() __asm__ __volatile__("yield" ::: "memory")
#else
#define RB_PAUSE() __asm__ __volatile__("" ::: "memory")
#endif
#define RB_YIELD() sched_yield()

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "ringbus needs lock-free 64-bit atomics");
_Static_assert(sizeof(rb_atomic_i64) == 8, "unexpected size of _Atomic int64_t");

typedef pthread_mutex_t rb_mutex_t;
typedef pthread_cond_t rb_cond_t;
typedef struct timespec rb_deadline_t;    /* CLOCK_MONOTONIC; tv_sec == 0 && tv_nsec == 0: none */

/* `shared`: the condition variable lives in a region other processes may map, where it must
 * be PTHREAD_PROCESS_SHARED (a private one may not even be touched from another process). */
static inline int rb_cond_init_monotonic(pthread_cond_t *c, int shared)
{
    /* A monotonic clock: a wall-clock jump must not stretch or cut a publish timeout. */
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return rc;
#if !defined(__APPLE__)
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
    if (shared)
        pthread_condattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

/* A process-shared mutex is robust: a process killed while it holds one (a producer in the
 * middle of waking the consumer) must not leave it locked for ever. The next locker is told
 * (EOWNERDEAD) and marks it consistent: what the parker's mutex guards needs no repair (its
 * waiter count is a hint; one left too high costs a spare broadcast). Private mutexes never
 * report EOWNERDEAD, so one lock function serves both. */
static inline int rb_mutex_lock(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
#if defined(__linux__)     /* robust mutexes: glibc and musl */
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(m);
#endif
    return rc;
}

static inline int rb_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *d)
{
    int rc;
    if (d->tv_sec == 0 && d->tv_nsec == 0)
        rc = pthread_cond_wait(c, m);
    else
        rc = pthread_cond_timedwait(c, m, d);
#if defined(__linux__)     /* robust mutexes: glibc and musl */
    if (rc == EOWNERDEAD)       /* re-taken from a process that died holding it */
        rc = pthread_mutex_consistent(m);
#endif
    return rc;
}

static inline int rb_mutex_init_shared(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return rc;
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
#if defined(__linux__)     /* robust mutexes: glibc and musl */
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
#endif
    rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

/* Linux: parked threads sleep on a futex word (_ringbuffer.h's rb_parker), not on a condition
 * variable. A process killed while it sleeps on a futex leaves nothing behind; one killed
 * while it waits on a process-shared glibc condition variable leaves it waiting for that
 * waiter's acknowledgement, so the next broadcast blocks for ever. */
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>
#define RB_PARK_FUTEX 1

/* Sleep while *word == expected, until a wake-up, a signal or `d` (CLOCK_MONOTONIC, absolute;
 * {0, 0}: none). Returns at once if *word != expected. `shared`: the word is in memory other
 * processes map (no FUTEX_PRIVATE_FLAG). Callers loop: a return says nothing. */
static inline void rb_futex_wait(rb_atomic_i32 *word, int32_t expected, rb_deadline_t d,
                                 int shared)
{
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    const struct timespec *until = (d.tv_sec == 0 && d.tv_nsec == 0) ? NULL : &d;
    syscall(SYS_futex, (int32_t *)word, op, expected, until, NULL, FUTEX_BITSET_MATCH_ANY);
}

static inline void rb_futex_wake_all(rb_atomic_i32 *word, int shared)
{
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    syscall(SYS_futex, (int32_t *)word, op, INT_MAX, NULL, NULL, 0);
}
#else
#define RB_PARK_FUTEX 0
#endif

#define RB_MUTEX_INIT(m) pthread_mutex_init((m), NULL)
#define RB_MUTEX_INIT_SHARED(m) rb_mutex_init_shared((m))
#define RB_COND_INIT_SHARED(c) rb_cond_init_monotonic((c), 1)
#define RB_MUTEX_DESTROY(m) pthread_mutex_destroy((m))
#define RB_MUTEX_LOCK(m) rb_mutex_lock((m))
#define RB_MUTEX_UNLOCK(m) pthread_mutex_unlock((m))
#define RB_COND_INIT(c) rb_cond_init_monotonic((c), 0)
#define RB_COND_DESTROY(c) pthread_cond_destroy((c))
#define RB_COND_BROADCAST(c) pthread_cond_broadcast((c))
#define RB_COND_WAIT_UNTIL(c, m, d) rb_cond_wait_until((c), (m), &(d))

/* Monotonic time in seconds, for deadlines and timeouts. */
static inline double rb_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The deadline `seconds` from now, capped at `slice` seconds so a waiter wakes now and then
 * (a Python caller checks signals; a consumer thread re-checks its stop flag). */
static inline rb_deadline_t rb_deadline_in(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (seconds < 0)
        seconds = 0;
    int64_t whole = (int64_t)seconds;
    int64_t nsec = ts.tv_nsec + (int64_t)((seconds - (double)whole) * 1e9);
    ts.tv_sec += (time_t)whole + (time_t)(nsec / 1000000000);
    ts.tv_nsec = (long)(nsec % 1000000000);
    if (ts.tv_sec == 0 && ts.tv_nsec == 0)
        ts.tv_nsec = 1;                    /* (0, 0) is reserved for "no deadline" */
    return ts;
}

static inline rb_deadline_t rb_no_deadline(void)
{
    rb_deadline_t d = {0, 0};
    return d;
}

/* Whether `d` is a deadline (not rb_no_deadline()) that has passed. */
static inline int rb_deadline_passed(rb_deadline_t d)
{
    struct timespec now;
    if (d.tv_sec == 0 && d.tv_nsec == 0)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > d.tv_sec || (now.tv_sec == d.tv_sec && now.tv_nsec >= d.tv_nsec);
}

/* Sleep for a short while: the "sleep" wait strategy's back-off. */
static inline void rb_sleep_ns(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}
#endif

/* ------------------------------------------------------------------ named atomic operations
 * The only ways the rest of ringbus touches an atomic. */

static inline int64_t rb_load_relaxed_i64(rb_atomic_i64 *p) { return RB_LOAD(p, relaxed); }
static inline int64_t rb_load_acquire_i64(rb_atomic_i64 *p) { return RB_LOAD(p, acquire); }
static inline void rb_store_relaxed_i64(rb_atomic_i64 *p, int64_t v) { RB_STORE(p, v, relaxed); }
static inline void rb_store_release_i64(rb_atomic_i64 *p, int64_t v) { RB_STORE(p, v, release); }
static inline int64_t rb_fetch_add_relaxed_i64(rb_atomic_i64 *p, int64_t v)
{
    return RB_FETCH_ADD(p, v, relaxed);
}
/* Weak CAS: callers loop. On failure *expected gets the current value. */
static inline int rb_cas_relaxed_i64(rb_atomic_i64 *p, int64_t *expected, int64_t desired)
{
    return RB_CAS_WEAK(p, expected, desired, relaxed, relaxed);
}
/* The same, and what this thread stored before it happens-before whoever acquires the new
 * value (or a later one in its release sequence). */
static inline int rb_cas_release_i64(rb_atomic_i64 *p, int64_t *expected, int64_t desired)
{
    return RB_CAS_WEAK(p, expected, desired, release, relaxed);
}

static inline int32_t rb_load_relaxed_i32(rb_atomic_i32 *p) { return RB_LOAD(p, relaxed); }
static inline int32_t rb_load_acquire_i32(rb_atomic_i32 *p) { return RB_LOAD(p, acquire); }
static inline void rb_store_relaxed_i32(rb_atomic_i32 *p, int32_t v) { RB_STORE(p, v, relaxed); }
static inline void rb_store_release_i32(rb_atomic_i32 *p, int32_t v) { RB_STORE(p, v, release); }
static inline int32_t rb_fetch_add_relaxed_i32(rb_atomic_i32 *p, int32_t v)
{
    return RB_FETCH_ADD(p, v, relaxed);
}
static inline int32_t rb_fetch_add_release_i32(rb_atomic_i32 *p, int32_t v)
{
    return RB_FETCH_ADD(p, v, release);
}
/* Relaxed: its callers order it with a seq_cst fence (see rb_signal_take). */
static inline int32_t rb_exchange_relaxed_i32(rb_atomic_i32 *p, int32_t v)
{
    return RB_EXCHANGE(p, v, relaxed);
}

/* The one seq_cst operation: a full fence, used only by park/wake and signals (a store
 * followed by a load of a different variable, which acquire/release does not order). */
static inline void rb_fence_seq_cst(void) { RB_FENCE(seq_cst); }
/* A seqlock's fences (_claimants.h): between a writer's "busy" mark and its data, and
 * between a reader's data loads and its re-check of the mark. */
static inline void rb_fence_release(void) { RB_FENCE(release); }
static inline void rb_fence_acquire(void) { RB_FENCE(acquire); }

static inline void rb_cpu_pause(void) { RB_PAUSE(); }

/* ---------------------------------------------------------------------------------- Sequence
 * A 64-bit counter alone on its cache line(s): padded on both sides, so whatever is allocated
 * next to it (another sequence, the ring's read-mostly fields) never shares its line. No
 * _Alignas: a Sequence may live inside memory that is only 16-byte aligned (a CPython
 * object); the padding alone keeps neighbours off its line. */
typedef struct rb_sequence {
    RB_PAD(pad_before, 0);
    rb_atomic_i64 value;
    RB_PAD(pad_after, 8);
} rb_sequence;

static inline void rb_sequence_init(rb_sequence *s, int64_t v) { rb_store_relaxed_i64(&s->value, v); }
/* Another thread's sequence: acquire, so what it did before releasing it is visible. */
static inline int64_t rb_sequence_get(rb_sequence *s) { return rb_load_acquire_i64(&s->value); }
/* Our own sequence: only this thread writes it, no ordering needed to read it back. */
static inline int64_t rb_sequence_get_own(rb_sequence *s) { return rb_load_relaxed_i64(&s->value); }
/* Publish progress: release, so the slot reads/writes before it happen-before whoever acquires it. */
static inline void rb_sequence_set(rb_sequence *s, int64_t v) { rb_store_release_i64(&s->value, v); }

#endif /* RINGBUS_ATOMIC_H */
