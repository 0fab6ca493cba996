/* Claimants: who holds which claim of a shared ring, so that the claim of a producer killed
 * between claiming and publishing can be skipped, and only then.
 *
 * With several producers a claim is a CAS on the cursor; its slots are published moments
 * later. A producer killed in between leaves slots that will never be published, and the
 * consumer, which delivers in sequence order, would wait for them forever. It must skip
 * them, but never the slots of a producer that is merely slow (stopped, descheduled): those
 * will be published, and skipping them would lose events, or deliver what a late producer
 * writes over skipped slots as part of a later lap.
 *
 * So every producing thread of a shared ring owns an entry in the ring's header and records
 * each claim there:
 *
 *   producer                               entry state (a seqlock with its range)
 *     from, n = the cursor it CASes from,  ATTEMPT   (before the CAS, release)
 *               the slots it claims
 *     CAS cursor from -> from + n (release)
 *     on success                           WON       (release)
 *     write, publish the slots
 *     after publishing                     IDLE      (release)
 *
 * A consumer stuck at `next` (claimed, not published) for unblock_timeout reads the cursor,
 * then every entry (rb_sequencer_unblock_gap in _ringbuffer.h). A claim that covers `next`
 * is in some entry as WON, or its claimant is between its CAS and its WON store (ATTEMPT):
 * the CAS is a release after the ATTEMPT store, so a consumer that acquired the cursor sees
 * at least ATTEMPT. It waits while any live claimant is in ATTEMPT or holds a WON claim
 * covering `next`; otherwise `next` belongs to a dead one: the rest of its WON claim, or
 * (it died before storing WON) the gap up to the next recorded claim or published slot. The
 * gap is re-checked as unpublished after the entries were read: a claimant that published
 * and went IDLE meanwhile published first (release), so its slots show.
 *
 * Only shared rings with several producers track claims (a single producer's claim is
 * invisible until it publishes). tests/relacy/unblock_models.cpp checks the protocol.
 */
#ifndef RINGBUS_CLAIMANTS_H
#define RINGBUS_CLAIMANTS_H

#include "_atomic.h"

/* Producing threads a ring tracks at once; a thread beyond them claims untracked (its claims
 * are never skipped: a dead one's then stall the ring, as without tracking). The model has a
 * thread or two. */
#if defined(RINGBUS_RELACY)
#define RB_CLAIMANTS 2
#else
#define RB_CLAIMANTS 128
#endif

/* Where the unblock model (tests/relacy/unblock_models.cpp) may end a producer: a process
 * killed at that step. Nothing in production. */
#if defined(RINGBUS_RELACY) && defined(RB_MODEL_POINT)
#define RB_MAY_DIE(point) RB_MODEL_POINT(point)
#else
#define RB_MAY_DIE(point) ((void)0)
#endif

enum { RB_CLAIM_IDLE = 0, RB_CLAIM_ATTEMPT = 1, RB_CLAIM_WON = 2, RB_CLAIM_BUSY = 3 };

typedef struct rb_claimant {
    rb_atomic_i64 pid;           /* the owning thread's process; 0: free */
    rb_atomic_i64 tid;           /* the owning thread (production: its kernel tid) */
    /* A seqlock over the claim: (claims so far << 2) | RB_CLAIM_*. BUSY while `from` and
     * `n` change, so a consumer never pairs one claim's state with another's range. */
    rb_atomic_i64 word;
    rb_atomic_i64 from;          /* the claim: sequences from + 1 .. from + n */
    rb_atomic_i64 n;
    RB_PAD(pad_after, 40);       /* one line per entry: only its thread writes it */
} rb_claimant;

typedef struct rb_claimants {
    rb_claimant entry[RB_CLAIMANTS];
} rb_claimants;

static inline void rb_claimants_init(rb_claimants *t)
{
    int i;
    for (i = 0; i < RB_CLAIMANTS; i++) {
        rb_store_relaxed_i64(&t->entry[i].pid, 0);
        rb_store_relaxed_i64(&t->entry[i].tid, 0);
        rb_store_relaxed_i64(&t->entry[i].word, RB_CLAIM_IDLE);
        rb_store_relaxed_i64(&t->entry[i].from, -1);
        rb_store_relaxed_i64(&t->entry[i].n, 0);
    }
}

static inline int64_t rb_claimant_state(int64_t word) { return word & 3; }

/* The owner's own word with another state (the same claim). */
static inline void rb_claimant_set(rb_claimant *e, int64_t state)
{
    int64_t w = rb_load_relaxed_i64(&e->word);
    rb_store_release_i64(&e->word, (w & ~(int64_t)3) | state);
}

/* About to CAS the cursor from `from` to `from + n`: a new claim, written as a seqlock. */
static inline void rb_claimant_attempt(rb_claimant *e, int64_t from, int64_t n)
{
    int64_t claim = (rb_load_relaxed_i64(&e->word) | 3) + 1;    /* the next claim, state 0 */
    rb_store_relaxed_i64(&e->word, claim | RB_CLAIM_BUSY);
    rb_fence_release();
    rb_store_relaxed_i64(&e->from, from);
    rb_store_relaxed_i64(&e->n, n);
    rb_store_release_i64(&e->word, claim | RB_CLAIM_ATTEMPT);
}

static inline void rb_claimant_won(rb_claimant *e) { rb_claimant_set(e, RB_CLAIM_WON); }

/* Published, or the attempt gave up (no room). */
static inline void rb_claimant_idle(rb_claimant *e) { rb_claimant_set(e, RB_CLAIM_IDLE); }

/* Another thread's entry, consistent: its state and, if WON, its range. A claim being
 * written (BUSY) reads as ATTEMPT: its CAS is still ahead. Acquire: what the owner did
 * before the state read (its publishes before an IDLE) is visible. */
static inline int64_t rb_claimant_read(rb_claimant *e, int64_t *lo, int64_t *hi)
{
    for (;;) {
        int64_t w1 = rb_load_acquire_i64(&e->word), from, n;
        if (rb_claimant_state(w1) == RB_CLAIM_BUSY)
            return RB_CLAIM_ATTEMPT;
        from = rb_load_relaxed_i64(&e->from);
        n = rb_load_relaxed_i64(&e->n);
        rb_fence_acquire();
        if (rb_load_relaxed_i64(&e->word) == w1) {
            *lo = from + 1;
            *hi = from + n;
            return rb_claimant_state(w1);
        }
    }
}

/* --------------------------------------------------------------------- this thread's entry */
#if defined(RINGBUS_RELACY)
/* A model that tracks claims gives each of its threads an entry (RB_MODEL_CLAIMANT, see
 * tests/relacy/unblock_models.cpp); the others track none. */
#if defined(RB_MODEL_CLAIMANT)
#define RB_CLAIMANT_MINE(t) ((t) ? RB_MODEL_CLAIMANT(t) : (rb_claimant *)0)
#else
#define RB_CLAIMANT_MINE(t) ((void)(t), (rb_claimant *)0)
#endif
#else
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Whether process `pid` (> 0) is known to be gone: no such process, or a zombie (it runs
 * nothing; only its parent has not reaped it yet). 0 is no process: never gone. */
static inline int rb_pid_gone(int64_t pid)
{
    char path[48], buf[256], *p;
    ssize_t n;
    int fd;
    if (pid <= 0)
        return 0;
    if (kill((pid_t)pid, 0) != 0)
        return errno == ESRCH;
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    p = strrchr(buf, ')');      /* the state follows the command name, which may hold ')' */
    return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

/* This thread's entries, by table: a thread publishing into a handful of rings finds its
 * entry with a compare or two. Each module that includes this header has its own cache;
 * registration finds the same entry for a thread whichever module asks. */
#define RB_CLAIMANT_CACHE 4
typedef struct rb_claimant_slot { rb_claimants *table; rb_claimant *entry; } rb_claimant_slot;
static _Thread_local rb_claimant_slot rb_claimant_cache[RB_CLAIMANT_CACHE];
static _Thread_local int64_t rb_claimant_pid, rb_claimant_tid;
static _Thread_local int rb_claimant_next;
static pthread_once_t rb_claimant_once = PTHREAD_ONCE_INIT;

/* A forked child is another process: its thread must not use its parent's entries. */
static void rb_claimant_forget(void)
{
    int i;
    for (i = 0; i < RB_CLAIMANT_CACHE; i++)
        rb_claimant_cache[i].table = 0;
    rb_claimant_pid = 0;
}

static void rb_claimant_at_fork(void) { pthread_atfork(0, 0, rb_claimant_forget); }

static inline int rb_tid_gone(int64_t pid, int64_t tid)
{
    return syscall(SYS_tgkill, (pid_t)pid, (pid_t)tid, 0) != 0 && errno == ESRCH;
}

/* Find or take an entry for this thread: its own from an earlier call (of another module),
 * a free one, or one whose thread is gone and that holds no claim. NULL: the table is full. */
static rb_claimant *rb_claimant_register(rb_claimants *t)
{
    int i, pass;
    rb_claimant *e = 0;
    pthread_once(&rb_claimant_once, rb_claimant_at_fork);
    if (rb_claimant_pid == 0) {
        rb_claimant_pid = (int64_t)getpid();
        rb_claimant_tid = (int64_t)syscall(SYS_gettid);
    }
    for (i = 0; i < RB_CLAIMANTS && e == 0; i++)
        if (rb_load_acquire_i64(&t->entry[i].pid) == rb_claimant_pid
                && rb_load_relaxed_i64(&t->entry[i].tid) == rb_claimant_tid)
            e = &t->entry[i];
    for (pass = 0; pass < 2 && e == 0; pass++) {
        for (i = 0; i < RB_CLAIMANTS && e == 0; i++) {
            rb_claimant *c = &t->entry[i];
            int64_t holder = rb_load_acquire_i64(&c->pid);
            if (holder != 0) {
                /* The second pass reclaims entries of threads that are gone; an entry
                 * still holding a claim waits for the consumer to get past it. */
                if (pass == 0
                        || rb_claimant_state(rb_load_acquire_i64(&c->word)) != RB_CLAIM_IDLE)
                    continue;
                if (!(holder == rb_claimant_pid ? rb_tid_gone(holder, rb_load_relaxed_i64(&c->tid))
                                                : rb_pid_gone(holder)))
                    continue;
            }
            if (rb_cas_relaxed_i64(&c->pid, &holder, rb_claimant_pid)) {
                rb_store_relaxed_i64(&c->tid, rb_claimant_tid);
                rb_claimant_idle(c);
                e = c;
            }
        }
    }
    if (e != 0) {
        rb_claimant_cache[rb_claimant_next].table = t;
        rb_claimant_cache[rb_claimant_next].entry = e;
        rb_claimant_next = (rb_claimant_next + 1) % RB_CLAIMANT_CACHE;
    }
    return e;
}

static inline rb_claimant *rb_claimant_mine(rb_claimants *t)
{
    int i;
    for (i = 0; i < RB_CLAIMANT_CACHE; i++) {
        rb_claimant *e = rb_claimant_cache[i].entry;
        /* Still ours: another ring may have been mapped where a closed one was. */
        if (rb_claimant_cache[i].table == t && rb_load_relaxed_i64(&e->pid) == rb_claimant_pid
                && rb_load_relaxed_i64(&e->tid) == rb_claimant_tid)
            return e;
    }
    return rb_claimant_register(t);
}

/* The thread's entry in table t (NULL: claims are not tracked, a heap ring). */
#define RB_CLAIMANT_MINE(t) ((t) ? rb_claimant_mine(t) : (rb_claimant *)0)
#endif

#endif /* RINGBUS_CLAIMANTS_H */
