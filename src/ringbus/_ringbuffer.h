/* The ring algorithms: a preallocated ring of slots, its single- and multi-producer
 * sequencers, consumer barriers and gating, and the park/wake protocol of blocking waits.
 *
 * Disruptor vocabulary and conventions: sequences are int64 and start at -1 ("nothing yet");
 * the cursor is the highest claimed (multi-producer) or published (single-producer)
 * sequence; a consumer's sequence is the highest one it has finished with; the producer never
 * claims sequence s while any gating sequence is below s - capacity.
 *
 * Written only against the RB_* layer of _atomic.h so that tests/relacy/ model-checks this
 * very file. Nothing here knows about Python: a payload is an opaque pointer whose ownership
 * the caller manages (the Cython side moves one strong reference in and one out).
 *
 * The algorithms run on an rb_sequencer: pointers to wherever a ring keeps its sequencing
 * state. RingBuffer keeps it in an rb_ring (the rb_* functions on an rb_ring below build a
 * sequencer from its fields; inlined, that costs nothing); RecordRing keeps it in one region
 * addressed by offsets, which could be shared between processes (_recordring.h). One copy
 * of each algorithm serves both, and the Relacy models check it through either.
 */
#ifndef RINGBUS_RINGBUFFER_H
#define RINGBUS_RINGBUFFER_H

#include "_atomic.h"
#include "_claimants.h"

/* Gating sequences and barrier dependencies are kept in fixed arrays: a pipeline is a handful
 * of stages, and the hot path then reads no pointer it has to chase twice. */
#define RB_MAX_GATING 32

/* wait="block" spins this many times before it parks. The model parks at once: spinning
 * changes no outcome, only the number of schedules to explore. */
/* A producer waiting for room wakes at least this often (seconds): a Python caller checks
 * signals, and a deadline is re-read. */
#define RB_CLAIM_WAIT_SLICE 0.05

#if defined(RINGBUS_RELACY)
#define RB_SPINS_BEFORE_PARK 1
#else
#define RB_SPINS_BEFORE_PARK 64
#endif

enum { RB_WAIT_BLOCK = 0, RB_WAIT_SPIN = 1, RB_WAIT_YIELD = 2, RB_WAIT_SLEEP = 3 };

typedef struct rb_slot {
    RB_VAR(int64_t) type;
    RB_VAR(void *) payload;      /* owned by the ring while queued; NULL once handed out */
} rb_slot;

/* Where anyone who waits without spinning parks: consumers waiting for events, stages waiting
 * for the stages they depend on, producers waiting for room. One parker per ring keeps the
 * protocol simple; a wake-up is a broadcast and every waiter re-checks its own condition. */
typedef struct rb_parker {
    RB_PAD(pad_before, 0);
    rb_atomic_i32 waiters;       /* threads between rb_park_begin and rb_park_end */
    RB_PAD(pad_after, 4);
    rb_mutex_t mutex;
    rb_cond_t cond;              /* where waiters sleep unless RB_PARK_FUTEX */
    /* RB_PARK_FUTEX: waiters sleep on this word instead, and a wake-up bumps it. A waiter
     * killed in its sleep leaves only `waiters` too high (a spare wake-up each time); one
     * killed waiting on a process-shared glibc condition variable would make the next
     * broadcast wait for it for ever. */
    rb_atomic_i32 word;
    int32_t token;               /* `word` as the waiter in hand read it (guarded by mutex) */
    int32_t shared;              /* the parker is in memory other processes map */
} rb_parker;

typedef struct rb_ring {
    /* Read-mostly: written before the ring is shared (or while no thread uses it). */
    RB_PAD(pad_config, 0);
    int64_t capacity;
    int64_t mask;                /* capacity - 1: capacity is a power of two */
    int32_t index_shift;         /* log2(capacity): the lap of sequence s is s >> index_shift */
    int32_t multi;               /* multi-producer sequencer */
    int32_t n_gating;
    rb_slot *slots;
    rb_atomic_i32 *available;    /* multi-producer: lap number of the event in each slot */
    rb_sequence *gating[RB_MAX_GATING];   /* the last consumers: the producer waits for them */

    /* Producer side. */
    rb_sequence cursor;
    /* Single-producer only: touched by the one producing thread, so plain fields. The
     * producer claims privately (sp_next) and makes events visible with the cursor. */
    int64_t sp_next;
    int64_t sp_cached_gating;
    RB_PAD(pad_sp, 16);
    /* Multi-producer: a lower bound of min(gating) shared by producers, so that most claims
     * read one line instead of every consumer's sequence. */
    rb_sequence gating_cache;
    /* Events refused by overflow="drop"; only producers touch it, on the slow path. */
    rb_sequence dropped;
    /* stop(drain=True)'s hard stop target: the cursor when stop was called. Consumers never
     * process past it while their alert says RB_STOP_WHEN_DONE (rb_stop_limit). In the ring's
     * own state, not a Python attribute, so a ring mapped by another process sees it too. */
    rb_sequence stop_target;
    /* Non-zero while a consumer thread that was started has ended by an exception: nothing
     * will make room, so a producer waiting for room gives up (RB_CLAIM_CONSUMER_GONE). */
    rb_atomic_i32 consumer_gone;
    RB_PAD(pad_gone, 4);

    rb_parker parker;
    /* Where this ring's waiters park and its wakers wake: its own parker, or the one of
     * the ring whose consumer also waits on this one (priority lanes: one consumer thread
     * parks once for all its rings, so every lane's producers must wake that one parker). */
    rb_parker *park;
} rb_ring;

/* What a consumer shares with other threads: its sequence (read by the stages after it and,
 * for the last stages, by producers) and its alert flag (raised by stop()). */
typedef struct rb_consumer {
    rb_sequence sequence;
    rb_atomic_i32 alert;         /* RB_RUN, RB_STOP_WHEN_DONE or RB_STOP_NOW */
    RB_PAD(pad_after, 4);
} rb_consumer;

enum { RB_RUN = 0, RB_STOP_WHEN_DONE = 1, RB_STOP_NOW = 2 };

/* The stop protocol. stop(drain=True) stores the target (the cursor it read: everything
 * published before the call) and then raises each consumer's alert, both with release; a
 * consumer that acquires RB_STOP_WHEN_DONE from its alert therefore reads that target, and
 * caps every batch at it. Producers that go on publishing cannot keep it running: what they
 * publish past the target stays queued for the next start or drain. */
static inline void rb_stop_set_target(rb_sequence *target, int64_t t)
{
    rb_sequence_set(target, t);
}

/* The highest sequence a consumer may process now, given `avail` (what its barrier allows):
 * `avail` itself, or the stop target once stop(drain=True) raised its alert. One acquire load
 * per batch, and a predictable branch. */
static inline int64_t rb_stop_limit(rb_sequence *target, rb_atomic_i32 *alert, int64_t avail)
{
    if (rb_load_acquire_i32(alert) == RB_STOP_WHEN_DONE) {
        int64_t t = rb_sequence_get(target);
        if (avail > t)
            return t;
    }
    return avail;
}

/* Whether a consumer that wants `next` is done under stop(drain=True): it has passed the
 * target. */
static inline int rb_stop_reached(rb_sequence *target, int64_t next)
{
    return next > rb_sequence_get(target);
}

/* A sequencer as the algorithms see it: where each piece of a ring's sequencing state lives.
 * Process-local (it holds pointers); what it points to may be an rb_ring's own fields or a
 * pointer-free region shared by several processes. Every field is read-mostly: set while no
 * other thread uses the ring. */
typedef struct rb_sequencer {
    int64_t capacity;
    int64_t mask;                /* capacity - 1 */
    int32_t index_shift;         /* log2(capacity) */
    int32_t multi;               /* multi-producer sequencer */
    int32_t n_gating;
    rb_sequence *cursor;
    int64_t *sp_next;            /* single producer: plain fields only the producer touches */
    int64_t *sp_cached_gating;
    rb_sequence *gating_cache;   /* multi producer: shared lower bound of min(gating) */
    rb_atomic_i32 *available;    /* multi producer: lap number of the event in each slot */
    rb_sequence *const *gating;  /* n_gating sequences: the last consumers */
    rb_parker *parker;
    /* Framed (a message ring): a claim is one frame of several slots (RB_FRAME_UNIT bytes
     * each) that never wraps the storage, padding to its end first where it would; each
     * frame starts with an rb_frame_header, and only its first slot carries an availability
     * flag. 0 for rings of one event per slot. */
    int32_t framed;
    const unsigned char *frames; /* framed: the storage, capacity * RB_FRAME_UNIT bytes */
    /* Several producers in several processes: every claim is recorded there (_claimants.h),
     * so that a dead producer's can be skipped. NULL: not tracked. */
    rb_claimants *claimants;
} rb_sequencer;

/* A message ring's storage is in slots of RB_FRAME_UNIT bytes; a frame is its header and the
 * message bytes, rounded up to whole slots. Padding fills the storage's end when a frame
 * would not fit before it (a message is always contiguous). */
#define RB_FRAME_UNIT 8
enum { RB_FRAME_MESSAGE = 0, RB_FRAME_PADDING = 1 };
typedef struct rb_frame_header {
    int32_t units;               /* slots the frame takes, header included (>= 1) */
    int32_t length;              /* message bytes; RB_FRAME_PADDING: -1 */
} rb_frame_header;

/* The slots a frame of a `length`-byte message takes. */
static inline int64_t rb_frame_units(int64_t length)
{
    return 1 + (length + RB_FRAME_UNIT - 1) / RB_FRAME_UNIT;
}

/* The sequencer of an rb_ring: its own fields. Built per call; once inlined, every field is
 * just the rb_ring's. */
static inline rb_sequencer rb_ring_sequencer(rb_ring *r)
{
    rb_sequencer q;
    q.capacity = r->capacity;
    q.mask = r->mask;
    q.index_shift = r->index_shift;
    q.multi = r->multi;
    q.n_gating = r->n_gating;
    q.cursor = &r->cursor;
    q.sp_next = &r->sp_next;
    q.sp_cached_gating = &r->sp_cached_gating;
    q.gating_cache = &r->gating_cache;
    q.available = r->available;
    q.gating = r->gating;
    q.parker = r->park;
    q.framed = 0;
    q.frames = 0;
    q.claimants = 0;
    return q;
}

/* ------------------------------------------------------------------------------ set-up */

/* `shared`: the parker lives in a region other processes may map (process-shared objects). */
static inline void rb_parker_init(rb_parker *p, int shared)
{
    rb_store_relaxed_i32(&p->waiters, 0);
    rb_store_relaxed_i32(&p->word, 0);
    p->token = 0;
    p->shared = shared;
    if (shared) {
        RB_MUTEX_INIT_SHARED(&p->mutex);
        RB_COND_INIT_SHARED(&p->cond);
    } else {
        RB_MUTEX_INIT(&p->mutex);
        RB_COND_INIT(&p->cond);
    }
}

static inline void rb_parker_destroy(rb_parker *p)
{
    RB_COND_DESTROY(&p->cond);
    RB_MUTEX_DESTROY(&p->mutex);
}

static inline int32_t rb_log2(int64_t x)
{
    int32_t n = 0;
    while (((int64_t)1 << n) < x)
        n++;
    return n;
}

/* `slots` and `available` (multi only) hold `capacity` entries; capacity is a power of two.
 * Single-threaded: the ring is not shared yet. */
static inline void rb_ring_init(rb_ring *r, int64_t capacity, int multi, rb_slot *slots, rb_atomic_i32 *available)
{
    int64_t i;
    r->capacity = capacity;
    r->mask = capacity - 1;
    r->index_shift = rb_log2(capacity);
    r->multi = multi;
    r->n_gating = 0;
    r->slots = slots;
    r->available = available;
    for (i = 0; i < capacity; i++) {
        RB_VAR_SET(slots[i].type, 0);
        RB_VAR_SET(slots[i].payload, (void *)0);
        if (multi)
            rb_store_relaxed_i32(&available[i], -1);   /* no lap published yet */
    }
    rb_sequence_init(&r->cursor, -1);
    r->sp_next = -1;
    r->sp_cached_gating = -1;
    rb_sequence_init(&r->gating_cache, -1);
    rb_sequence_init(&r->dropped, 0);
    rb_sequence_init(&r->stop_target, INT64_MAX);
    rb_store_relaxed_i32(&r->consumer_gone, 0);
    rb_parker_init(&r->parker, 0);
    r->park = &r->parker;
}

static inline void rb_ring_destroy(rb_ring *r) { rb_parker_destroy(&r->parker); }

/* ------------------------------------------------------------------------------- gating */

/* min(gating sequences, `limit`). Acquire: the consumers' reads of a slot (and their clearing
 * of its payload) happen-before our next write to it. */
static inline int64_t rb_sequencer_min_gating(const rb_sequencer *q, int64_t limit)
{
    int32_t i;
    int64_t v, m = limit;
    for (i = 0; i < q->n_gating; i++) {
        v = rb_sequence_get(q->gating[i]);
        if (v < m)
            m = v;
    }
    return m;
}

/* The highest sequence claimed so far (equal to the published one for a single producer).
 * Single producer: only the producing thread may ask (sp_next is its plain field). */
static inline int64_t rb_sequencer_claimed(const rb_sequencer *q)
{
    return q->multi ? rb_load_relaxed_i64(&q->cursor->value) : *q->sp_next;
}

/* ---------------------------------------------------------------------------- sequencers */

/* Single producer: no CAS, no shared write until publish. Claims up to `max_n` (>= 1)
 * sequences; returns how many (0: the ring is full) with the highest in *hi. */
static inline int64_t rb_sequencer_sp_claim_upto(const rb_sequencer *q, int64_t max_n, int64_t *hi)
{
    int64_t room = *q->sp_cached_gating + q->capacity - *q->sp_next;
    if (room < max_n) {
        /* The cached minimum may be stale: consumers only move forward, so re-reading can
         * only find more room. */
        *q->sp_cached_gating = rb_sequencer_min_gating(q, *q->sp_next);
        room = *q->sp_cached_gating + q->capacity - *q->sp_next;
        if (room <= 0)
            return 0;
        if (room < max_n)
            max_n = room;
    }
    *q->sp_next += max_n;
    *hi = *q->sp_next;
    return max_n;
}

/* Multi producer: check room, then claim with a CAS on the cursor. (A fetch-add could not
 * refuse a claim when the ring is full, and "raise", "drop" and timeouts need to.) */
/* The CAS of a claim of `n` after `*current`, recorded in this thread's claimant entry `e`
 * when claims are tracked (see _claimants.h): ATTEMPT before, WON after. Release when
 * tracked: whoever acquires the cursor sees the ATTEMPT. */
static inline int rb_sequencer_cas_claim(const rb_sequencer *q, rb_claimant *e, int64_t *current,
                                         int64_t n)
{
    if (e == 0)
        /* Relaxed: the cursor only hands out numbers. Which slot contents are visible is
         * decided by the gating sequences (acquire) and the availability flags. */
        return rb_cas_relaxed_i64(&q->cursor->value, current, *current + n);
    rb_claimant_attempt(e, *current, n);
    RB_MAY_DIE(1);
    if (rb_cas_release_i64(&q->cursor->value, current, *current + n)) {
        RB_MAY_DIE(2);
        rb_claimant_won(e);
        RB_MAY_DIE(3);
        return 1;
    }
    return 0;
}

/* No room after all: an attempt that was recorded is withdrawn. */
static inline int64_t rb_sequencer_no_room(rb_claimant *e)
{
    if (e != 0)
        rb_claimant_idle(e);
    return 0;
}

static inline int64_t rb_sequencer_mp_claim_upto(const rb_sequencer *q, int64_t max_n, int64_t *hi)
{
    rb_claimant *e = RB_CLAIMANT_MINE(q->claimants);
    int64_t current = rb_load_relaxed_i64(&q->cursor->value);
    for (;;) {
        int64_t n = max_n;
        /* Acquire: the cache was stored (release) by a producer right after it acquired the
         * gating sequences, so claiming on the cached value still orders our slot writes
         * after the consumers' reads of those slots. */
        int64_t cached = rb_load_acquire_i64(&q->gating_cache->value);
        int64_t room = cached + q->capacity - current;
        if (room < n) {
            int64_t m = rb_sequencer_min_gating(q, current);
            room = m + q->capacity - current;
            if (room <= 0)
                return rb_sequencer_no_room(e);
            rb_store_release_i64(&q->gating_cache->value, m);
            if (room < n)
                n = room;
        }
        if (rb_sequencer_cas_claim(q, e, &current, n)) {
            *hi = current + n;
            return n;
        }
        /* Lost the race: `current` now holds the winner's cursor; check room again. */
    }
}

/* The slots a frame of `units` slots claims after `claimed` (the highest claimed sequence):
 * its own, plus the padding to the storage's end when it would not fit before it. */
static inline int64_t rb_frame_claim_size(const rb_sequencer *q, int64_t claimed, int64_t units)
{
    int64_t index = (claimed + 1) & q->mask;
    return index + units > q->capacity ? q->capacity - index + units : units;
}

/* Framed, single producer: all of one frame (and its padding) or nothing. */
static inline int64_t rb_sequencer_sp_claim_frame(const rb_sequencer *q, int64_t units, int64_t *hi)
{
    int64_t n = rb_frame_claim_size(q, *q->sp_next, units);
    if (*q->sp_cached_gating + q->capacity - *q->sp_next < n) {
        *q->sp_cached_gating = rb_sequencer_min_gating(q, *q->sp_next);
        if (*q->sp_cached_gating + q->capacity - *q->sp_next < n)
            return 0;
    }
    *q->sp_next += n;
    *hi = *q->sp_next;
    return n;
}

/* Framed, several producers: the frame's size depends on where it starts, so it is computed
 * again from each cursor value a CAS attempt starts from. All or nothing. */
static inline int64_t rb_sequencer_mp_claim_frame(const rb_sequencer *q, int64_t units, int64_t *hi)
{
    rb_claimant *e = RB_CLAIMANT_MINE(q->claimants);
    int64_t current = rb_load_relaxed_i64(&q->cursor->value);
    for (;;) {
        int64_t n = rb_frame_claim_size(q, current, units);
        int64_t cached = rb_load_acquire_i64(&q->gating_cache->value);
        if (cached + q->capacity - current < n) {
            int64_t m = rb_sequencer_min_gating(q, current);
            if (m + q->capacity - current < n)
                return rb_sequencer_no_room(e);
            rb_store_release_i64(&q->gating_cache->value, m);
        }
        if (rb_sequencer_cas_claim(q, e, &current, n)) {
            *hi = current + n;
            return n;
        }
    }
}

/* Claim up to `max_n` slots (framed: exactly one frame of `max_n` slots and the padding
 * before it, or none). Returns how many, the highest in *hi; 0 when there is no room. */
static inline int64_t rb_sequencer_claim_upto(const rb_sequencer *q, int64_t max_n, int64_t *hi)
{
    if (q->framed)
        return q->multi ? rb_sequencer_mp_claim_frame(q, max_n, hi)
                        : rb_sequencer_sp_claim_frame(q, max_n, hi);
    return q->multi ? rb_sequencer_mp_claim_upto(q, max_n, hi) : rb_sequencer_sp_claim_upto(q, max_n, hi);
}

/* Is there room for claims up to `wrap_point` + capacity, i.e. have all gating consumers
 * passed `wrap_point`? What a parked producer waits for. */
static inline int rb_sequencer_room_for(const rb_sequencer *q, int64_t wrap_point)
{
    return wrap_point <= rb_sequencer_min_gating(q, INT64_MAX);
}

/* Make claimed sequences lo..hi visible to consumers (their slots written). Release: the slot
 * writes happen-before a consumer's acquire of the cursor / availability flag. */
static inline void rb_sequencer_publish(const rb_sequencer *q, int64_t lo, int64_t hi)
{
    if (q->framed && q->multi) {
        /* Each frame's first slot: lo..hi is the padding frame (if any), then the message's. */
        const rb_frame_header *f = (const rb_frame_header *)(q->frames + (lo & q->mask) * RB_FRAME_UNIT);
        int64_t msg = lo + (f->length < 0 ? f->units : 0);
        if (msg != lo)
            rb_store_release_i32(&q->available[lo & q->mask], (int32_t)(lo >> q->index_shift));
        rb_store_release_i32(&q->available[msg & q->mask], (int32_t)(msg >> q->index_shift));
        (void)hi;
    } else if (q->multi) {
        int64_t s;
        for (s = lo; s <= hi; s++)
            rb_store_release_i32(&q->available[s & q->mask], (int32_t)(s >> q->index_shift));
    } else {
        rb_sequence_set(q->cursor, hi);
    }
    /* After the flags (release, both): a consumer that sees this entry IDLE sees them. */
    if (q->claimants != 0 && q->multi) {
        rb_claimant *e = RB_CLAIMANT_MINE(q->claimants);
        if (e != 0)
            rb_claimant_idle(e);
    }
}

/* ------------------------------------------------------------------------------ barriers */

/* The highest s in [lo, hi] such that lo..s are all published (lo - 1 if lo is not). With
 * several producers claims complete out of order: a consumer must stop at the first gap. */
static inline int64_t rb_sequencer_highest_published(const rb_sequencer *q, int64_t lo, int64_t hi)
{
    int64_t s;
    if (!q->multi)
        return hi;
    if (q->framed) {
        /* Frame by frame: a frame's flag is on its first slot, and (acquired) orders its
         * header and bytes before our reads. A header that does not fit the claimed range
         * (a corrupted segment) ends the scan: never a read outside the storage. */
        for (s = lo; s <= hi;) {
            const rb_frame_header *f;
            if (rb_load_acquire_i32(&q->available[s & q->mask]) != (int32_t)(s >> q->index_shift))
                return s - 1;
            f = (const rb_frame_header *)(q->frames + (s & q->mask) * RB_FRAME_UNIT);
            if (f->units < 1 || f->units > hi - s + 1)
                return s - 1;
            s += f->units;
        }
        return hi;
    }
    for (s = lo; s <= hi; s++) {
        if (rb_load_acquire_i32(&q->available[s & q->mask]) != (int32_t)(s >> q->index_shift))
            return s - 1;
    }
    return hi;
}

/* The highest sequence a consumer with dependencies `deps` may process, given that it wants
 * `next`; below `next` means nothing yet. Read once per batch. */
static inline int64_t rb_sequencer_barrier_available(const rb_sequencer *q, rb_sequence **deps,
                                                     int32_t ndeps, int64_t next)
{
    int64_t avail;
    if (ndeps == 0) {
        /* Acquire: pairs with the single producer's release of the cursor. */
        avail = rb_sequence_get(q->cursor);
        if (avail < next)
            return avail;
        return rb_sequencer_highest_published(q, next, avail);
    } else {
        /* Acquire on each dependency: what it saw of the slots (and the producers' writes it
         * acquired) happens-before our reads. Dependencies only pass published sequences, so
         * no availability scan is needed. */
        int32_t i;
        avail = rb_sequence_get(deps[0]);
        for (i = 1; i < ndeps; i++) {
            int64_t v = rb_sequence_get(deps[i]);
            if (v < avail)
                avail = v;
        }
        return avail;
    }
}

/* --------------------------------------------------------------------------- unblocking
 * A shared ring's consumer stuck at `next` (claimed, not published) for unblock_timeout
 * asks which sequences it may skip: the protocol of _claimants.h. `gone(pid)` tells a dead
 * process (a parameter: the model decides it). Returns the last sequence of the abandoned
 * gap that starts at `next`, or next - 1 when it must go on waiting: a live claimant may
 * own `next`, or nothing is claimed there yet. */

/* Whether sequence s shows published (a frame's first slot, for a framed ring). */
static inline int rb_sequencer_shows_published(const rb_sequencer *q, int64_t s)
{
    return rb_load_acquire_i32(&q->available[s & q->mask]) == (int32_t)(s >> q->index_shift);
}

static inline int64_t rb_sequencer_unblock_gap(const rb_sequencer *q, int64_t next,
                                               int (*gone)(int64_t pid))
{
    rb_claimants *t = q->claimants;
    int64_t cursor, end = -1, later = INT64_MAX, s;
    int i;
    if (t == 0 || !q->multi)
        return next - 1;
    /* Acquire: every claim up to it has at least its ATTEMPT visible. */
    cursor = rb_sequence_get(q->cursor);
    if (next > cursor || rb_sequencer_shows_published(q, next))
        return next - 1;
    for (i = 0; i < RB_CLAIMANTS; i++) {
        rb_claimant *e = &t->entry[i];
        int64_t pid = rb_load_acquire_i64(&e->pid), state, lo = 0, hi = -1;
        if (pid == 0)
            continue;
        state = rb_claimant_read(e, &lo, &hi);
        if (state == RB_CLAIM_IDLE)
            continue;
        if (state == RB_CLAIM_ATTEMPT) {
            if (!gone(pid))
                return next - 1;        /* it may own `next`: its CAS may have won */
            continue;                   /* dead: whether it won, the gap below tells */
        }
        if (lo <= next && next <= hi) {
            if (!gone(pid))
                return next - 1;        /* a live producer's claim: slow, not abandoned */
            end = hi < cursor ? hi : cursor;   /* the rest of a dead producer's claim */
        } else if (lo > next && lo < later) {
            later = lo;
        }
    }
    if (end < 0) {
        /* Claimed by a producer that died before it recorded WON: up to the next claim on
         * record, the next published slot (frame), or the cursor. */
        end = later - 1 < cursor ? later - 1 : cursor;
        for (s = next + 1; s <= end; s++)
            if (rb_sequencer_shows_published(q, s)) {
                end = s - 1;
                break;
            }
    }
    /* Read after the entries: a claimant that published and went IDLE meanwhile published
     * first, so its slots show here. */
    for (s = next; s <= end; s++)
        if (rb_sequencer_shows_published(q, s))
            return next - 1;
    return end;
}

/* ----------------------------------------------------------------------------- park/wake
 * A waiter:                     a waker:
 *   lock; waiters += 1            advance a sequence (release store)
 *   fence(seq_cst)                fence(seq_cst)
 *   re-check its condition        if waiters > 0: lock; broadcast; unlock
 *   if unmet: cond_wait           (nothing else)
 *   waiters -= 1; unlock
 * The two seq_cst fences order each side's store before its load (Dekker): either the waker
 * sees waiters > 0, or the waiter's re-check sees the new sequence. Without them both loads
 * may read old values and the waiter sleeps through the event (lost wake-up). The waker takes
 * the mutex to broadcast, and the waiter holds it from the re-check until cond_wait releases
 * it, so the broadcast cannot fall between the two either. */

static inline void rb_parker_wake(rb_parker *p)
{
    rb_fence_seq_cst();
    if (rb_load_relaxed_i32(&p->waiters) > 0) {
#if RB_PARK_FUTEX
        /* No mutex: a waiter that read the word before this bump returns from its futex
         * wait at once; one that read it after sees the event in its re-check (release
         * here, acquire in rb_parker_begin). */
        rb_fetch_add_release_i32(&p->word, 1);
        rb_futex_wake_all(&p->word, p->shared);
#else
        RB_MUTEX_LOCK(&p->mutex);
        RB_COND_BROADCAST(&p->cond);
        RB_MUTEX_UNLOCK(&p->mutex);
#endif
    }
}

/* Tests only: take the mutex and never give it back, as a process killed in the middle
 * of rb_parker_wake leaves it (robust: the next locker recovers it, _atomic.h). */
static inline void rb_parker_hold(rb_parker *p)
{
    RB_MUTEX_LOCK(&p->mutex);
}

static inline void rb_parker_begin(rb_parker *p)
{
    RB_MUTEX_LOCK(&p->mutex);
    rb_fetch_add_relaxed_i32(&p->waiters, 1);
    rb_fence_seq_cst();
#if RB_PARK_FUTEX
    /* Before the caller's re-check: a wake-up after this read changes the word, and the
     * futex wait then returns at once. */
    p->token = rb_load_acquire_i32(&p->word);
#endif
}

/* Between rb_parker_begin and rb_parker_end, after the condition was re-checked and found
 * unmet. May return early (spurious wake-up, deadline): callers loop. */
static inline void rb_parker_wait(rb_parker *p, rb_deadline_t deadline)
{
#if RB_PARK_FUTEX
    int32_t token = p->token;
    RB_MUTEX_UNLOCK(&p->mutex);
    rb_futex_wait(&p->word, token, deadline, p->shared);
    RB_MUTEX_LOCK(&p->mutex);
#else
    RB_COND_WAIT_UNTIL(&p->cond, &p->mutex, deadline);
#endif
}

static inline void rb_parker_end(rb_parker *p)
{
    rb_fetch_add_relaxed_i32(&p->waiters, -1);
    RB_MUTEX_UNLOCK(&p->mutex);
}

/* One idle step of a consumer's wait strategy, its `tries`-th look having found nothing:
 * spin, yield or sleep (the strategies that never park), or, for wait="block", spin briefly
 * (an event is often a few hundred ns away). Returns 1 when the caller should park now. */
static inline int rb_wait_step(int strategy, int32_t tries)
{
    switch (strategy) {
    case RB_WAIT_SPIN:
        rb_cpu_pause();
        return 0;
    case RB_WAIT_YIELD:
        if (tries < 100)
            rb_cpu_pause();
        else
            RB_YIELD();
        return 0;
#if !defined(RINGBUS_RELACY)
    case RB_WAIT_SLEEP:
        if (tries < 100)
            rb_cpu_pause();
        else if (tries < 200)
            RB_YIELD();
        else
            rb_sleep_ns(50000);     /* 50 us: the timer slack makes shorter sleeps longer */
        return 0;
#endif
    default:   /* RB_WAIT_BLOCK */
        if (tries < RB_SPINS_BEFORE_PARK) {
            rb_cpu_pause();
            return 0;
        }
        return 1;
    }
}

/* Wait until a consumer (dependencies `deps`) can process `next`, or `*alert` becomes non-zero
 * (stop), or `until` passes (rb_no_deadline(): never). Returns the highest available
 * sequence; below `next` only when alerted or past `until`. Runs without the GIL. */
static inline int64_t rb_sequencer_wait_for(const rb_sequencer *q, rb_sequence **deps, int32_t ndeps,
                                            int64_t next, int strategy, rb_atomic_i32 *alert,
                                            rb_deadline_t until)
{
    int64_t avail;
    int32_t tries = 0;
    for (;;) {
        avail = rb_sequencer_barrier_available(q, deps, ndeps, next);
        if (avail >= next)
            return avail;
        /* Acquire: whoever raised the alert wrote its reasons before. */
        if (rb_load_acquire_i32(alert))
            return avail;
        tries++;
#if !defined(RINGBUS_RELACY)
        if ((tries & 63) == 0 && rb_deadline_passed(until))
            return avail;
#endif
        if (!rb_wait_step(strategy, tries))
            continue;
        rb_parker_begin(q->parker);
        avail = rb_sequencer_barrier_available(q, deps, ndeps, next);
        if (avail < next && !rb_load_acquire_i32(alert))
            rb_parker_wait(q->parker, until);
        rb_parker_end(q->parker);
#if !defined(RINGBUS_RELACY)
        if (avail < next && rb_deadline_passed(until))
            return rb_sequencer_barrier_available(q, deps, ndeps, next);
#endif
    }
}

/* ------------------------------------------------------------------------- lanes
 * One consumer of several rings (priority lanes, highest first): each lane has one consumer
 * sequence and no dependencies, and every lane's sequencer parks on the same parker (the
 * rings' `park`), so one waiter covers them all and a publish into any lane wakes it.
 *
 * Wait until a lane has an event for its consumer (`next[i]`: what lane i wants), an alert
 * is raised, or `until` passes. Returns the index of the first lane, in the order given,
 * with an event; -1 when alerted or past `until`. `poll`: wait="block" polls that long
 * before it parks (as rb_sequencer_poll does for one ring). Runs without the GIL. */
static inline int32_t rb_lanes_ready(const rb_sequencer *const *qs, const int64_t *next,
                                     int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++)
        if (rb_sequencer_barrier_available(qs[i], 0, 0, next[i]) >= next[i])
            return i;
    return -1;
}

static inline int rb_lanes_alerted(rb_atomic_i32 *const *alerts, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; i++)
        if (rb_load_acquire_i32(alerts[i]))      /* acquire: the stop target before it */
            return 1;
    return 0;
}

static inline int32_t rb_lanes_wait(const rb_sequencer *const *qs, const int64_t *next,
                                    rb_atomic_i32 *const *alerts, int32_t n, int strategy,
                                    double poll, rb_deadline_t until)
{
    int32_t ready, tries = 0;
    rb_parker *parker = qs[0]->parker;
#if !defined(RINGBUS_RELACY)
    double poll_until = -1;
#else
    (void)poll;
#endif
    for (;;) {
        ready = rb_lanes_ready(qs, next, n);
        if (ready >= 0)
            return ready;
        if (rb_lanes_alerted(alerts, n))
            return -1;
        tries++;
#if !defined(RINGBUS_RELACY)
        if ((tries & 63) == 0 && rb_deadline_passed(until))
            return -1;
#endif
        if (!rb_wait_step(strategy, tries))
            continue;
#if !defined(RINGBUS_RELACY)
        if (poll > 0) {             /* wait="block": poll this long before parking */
            if (poll_until < 0)
                poll_until = rb_monotonic() + poll;
            if (rb_monotonic() < poll_until) {
                rb_cpu_pause();
                continue;
            }
        }
#endif
        /* The Dekker handshake of rb_parker_begin (see park/wake above): every lane's
         * producer wakes this parker after its release of the slot, so either it sees us
         * among the waiters or our re-check below sees its event. */
        rb_parker_begin(parker);
        ready = rb_lanes_ready(qs, next, n);
        if (ready < 0 && !rb_lanes_alerted(alerts, n))
            rb_parker_wait(parker, until);
        rb_parker_end(parker);
        if (ready >= 0)
            return ready;
#if !defined(RINGBUS_RELACY)
        if (rb_deadline_passed(until))
            return rb_lanes_ready(qs, next, n);
#endif
    }
}

/* ------------------------------------------------------------------- the same, on an rb_ring
 * RingBuffer's interface: each is the algorithm above on the ring's own fields. */

static inline int64_t rb_min_gating(rb_ring *r, int64_t limit)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_min_gating(&q, limit);
}

static inline int64_t rb_claimed(rb_ring *r)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_claimed(&q);
}

static inline int64_t rb_sp_claim_upto(rb_ring *r, int64_t max_n, int64_t *hi)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_sp_claim_upto(&q, max_n, hi);
}

static inline int64_t rb_mp_claim_upto(rb_ring *r, int64_t max_n, int64_t *hi)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_mp_claim_upto(&q, max_n, hi);
}

static inline int64_t rb_claim_upto(rb_ring *r, int64_t max_n, int64_t *hi)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_claim_upto(&q, max_n, hi);
}

static inline int rb_room_for(rb_ring *r, int64_t wrap_point)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_room_for(&q, wrap_point);
}

/* Fill a claimed slot. Returns the payload the slot still held (non-NULL only when no single
 * consumer clears slots, see RingBuffer: the caller releases it). */
static inline void *rb_slot_write(rb_ring *r, int64_t seq, int64_t type, void *payload)
{
    rb_slot *s = &r->slots[seq & r->mask];
    void *old = RB_VAR_GET(s->payload);
    RB_VAR_SET(s->type, type);
    RB_VAR_SET(s->payload, payload);
    return old;
}

static inline void rb_publish(rb_ring *r, int64_t lo, int64_t hi)
{
    rb_sequencer q = rb_ring_sequencer(r);
    rb_sequencer_publish(&q, lo, hi);
}

static inline int64_t rb_highest_published(rb_ring *r, int64_t lo, int64_t hi)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_highest_published(&q, lo, hi);
}

static inline int64_t rb_barrier_available(rb_ring *r, rb_sequence **deps, int32_t ndeps,
                                           int64_t next)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_barrier_available(&q, deps, ndeps, next);
}

/* Read a published slot. take: move the payload out and leave NULL (the last consumer);
 * otherwise borrow it (the slot keeps its reference for the stages after us). */
static inline void *rb_slot_read(rb_ring *r, int64_t seq, int64_t *type, int take)
{
    rb_slot *s = &r->slots[seq & r->mask];
    void *p = RB_VAR_GET(s->payload);
    *type = RB_VAR_GET(s->type);
    if (take)
        RB_VAR_SET(s->payload, (void *)0);
    return p;
}

static inline void rb_wake(rb_ring *r) { rb_parker_wake(r->park); }
static inline void rb_park_begin(rb_ring *r) { rb_parker_begin(r->park); }
static inline void rb_park_wait(rb_ring *r, rb_deadline_t deadline) { rb_parker_wait(r->park, deadline); }
static inline void rb_park_end(rb_ring *r) { rb_parker_end(r->park); }

static inline int64_t rb_wait_for(rb_ring *r, rb_sequence **deps, int32_t ndeps, int64_t next,
                                  int strategy, rb_atomic_i32 *alert, rb_deadline_t no_deadline)
{
    rb_sequencer q = rb_ring_sequencer(r);
    return rb_sequencer_wait_for(&q, deps, ndeps, next, strategy, alert, no_deadline);
}

static inline void rb_consumer_init(rb_consumer *c, int64_t sequence)
{
    rb_sequence_init(&c->sequence, sequence);
    rb_store_relaxed_i32(&c->alert, RB_RUN);
}

#if !defined(RINGBUS_RELACY)
/* ------------------------------------------------------------- consuming-thread registry
 * The consumers this thread is running right now, innermost first (a handler may drain
 * another ring). Nodes live on the C stack of the consuming call. A producer on this thread
 * that finds one of these rings full would wait for itself: it must fail instead.
 *
 * One list per thread for the whole process, whatever the ring kind: a `static` thread-local
 * in this header would exist once per extension module that includes it, and a ring kind in
 * one module would not see the consumers another runs. ringbus._driver owns the variable;
 * every other module points rb_consuming_head at the driver's accessor when it is imported
 * (rb_consuming_bind). Until then a module's own list stands in, so nothing can crash. */
typedef struct rb_consuming {
    const void *ring;            /* the ring's identity: the address of its sequencing state */
    rb_consumer *consumer;
    struct rb_consuming *outer;
} rb_consuming;

static _Thread_local rb_consuming *rb_consuming_local = NULL;
static rb_consuming **rb_consuming_local_head(void) { return &rb_consuming_local; }
static rb_consuming **(*rb_consuming_head)(void) = rb_consuming_local_head;

static inline void rb_consuming_bind(rb_consuming **(*head)(void)) { rb_consuming_head = head; }

static inline void rb_consuming_push(rb_consuming *node, const void *ring, rb_consumer *c)
{
    rb_consuming **head = rb_consuming_head();
    node->ring = ring;
    node->consumer = c;
    node->outer = *head;
    *head = node;
}

static inline void rb_consuming_pop(rb_consuming *node) { *rb_consuming_head() = node->outer; }

/* The consumer of `ring` this thread is running, or NULL. */
static inline rb_consumer *rb_consuming_find(const void *ring)
{
    rb_consuming *n;
    for (n = *rb_consuming_head(); n != NULL; n = n->outer)
        if (n->ring == ring)
            return n->consumer;
    return NULL;
}
#endif

/* ------------------------------------------------------------------- blocking claim
 * Without the GIL, for every ring kind (the Python faces call it one wait slice at a time,
 * the record C API with the caller's whole timeout). The model runs it as written, with every
 * wait untimed (a lost wake-up is then a deadlock it reports); deadlines, spinning and the
 * deadlock check are production only. */

enum {
    RB_CLAIM_TIMEOUT = -2,          /* no room within the timeout */
    RB_CLAIM_WOULD_DEADLOCK = -3,   /* this thread runs a last consumer of the ring, inside a
                                       handler: only it could make room */
    RB_CLAIM_CONSUMER_GONE = -4     /* full, and the consumer thread that was started ended */
};

/* Park until the last consumers have passed `wrap_point` (there is room) or `until`, or a
 * wake-up. Callers loop: they re-claim afterwards. */
static inline void rb_sequencer_park_for_room(const rb_sequencer *q, int64_t wrap_point,
                                              rb_deadline_t until)
{
    rb_parker_begin(q->parker);
    if (!rb_sequencer_room_for(q, wrap_point))
        rb_parker_wait(q->parker, until);
    rb_parker_end(q->parker);
}

/* Claim up to `max_n` sequences, waiting for room at most `timeout` seconds (< 0: no limit).
 * Returns how many were claimed (> 0, the highest in *hi) or an RB_CLAIM_* code. `ring` is
 * the ring's identity in the consuming-thread registry, `gone` its consumer-gone word. */
static inline int64_t rb_sequencer_claim_wait(const rb_sequencer *q, const void *ring,
                                              rb_atomic_i32 *gone, int64_t max_n,
                                              double timeout, int64_t *hi)
{
#if !defined(RINGBUS_RELACY)
    double deadline = timeout >= 0 ? rb_monotonic() + timeout : -1, left, slice_;
    int32_t tries = 0;
    rb_consumer *own;
#endif
    rb_deadline_t until;
    (void)timeout;
    (void)ring;
    (void)gone;
    for (;;) {
        int64_t got = rb_sequencer_claim_upto(q, max_n, hi);
        if (got)
            return got;
        /* Room for one more (framed: for the whole frame): every last consumer has passed
         * this sequence. */
        int64_t claimed = rb_sequencer_claimed(q);
        int64_t wrap_point = claimed + (q->framed ? rb_frame_claim_size(q, claimed, max_n) : 1)
                             - q->capacity;
#if !defined(RINGBUS_RELACY)
        own = rb_consuming_find(ring);
        if (own != NULL && wrap_point > rb_sequence_get_own(&own->sequence))
            return RB_CLAIM_WOULD_DEADLOCK;
        /* Acquire: the ended consumer released its last sequence before raising the flag;
         * one more claim sees any room it made before it went. */
        if (rb_load_acquire_i32(gone)) {
            got = rb_sequencer_claim_upto(q, max_n, hi);
            return got ? got : RB_CLAIM_CONSUMER_GONE;
        }
        /* A consumer that is running frees a batch within microseconds: spin a little
         * before paying for a futex sleep and wake-up. */
        if (++tries < RB_SPINS_BEFORE_PARK) {
            rb_cpu_pause();
            continue;
        }
        slice_ = RB_CLAIM_WAIT_SLICE;
        if (deadline >= 0) {
            left = deadline - rb_monotonic();
            if (left <= 0)
                return RB_CLAIM_TIMEOUT;
            if (left < slice_)
                slice_ = left;
        }
        until = rb_deadline_in(slice_);
#else
        until = 0;
#endif
        rb_sequencer_park_for_room(q, wrap_point, until);
    }
}

#if !defined(RINGBUS_RELACY)
/* Poll for `next` for up to `seconds` before a blocking wait parks: with wait="block" a
 * consumer that parks costs every producer a mutex and a futex wake-up until it is running
 * again, and a producer that was merely preempted is usually back within tens of
 * microseconds. Returns the highest available sequence (below `next`: none yet, or `alert`
 * was raised). The same acquire reads as rb_sequencer_barrier_available. */
static inline int64_t rb_sequencer_poll(const rb_sequencer *q, rb_sequence **deps, int32_t ndeps,
                                        int64_t next, rb_atomic_i32 *alert, double seconds)
{
    double until = -1;
    int32_t i;
    for (;;) {
        for (i = 0; i < 64; i++) {
            int64_t avail = rb_sequencer_barrier_available(q, deps, ndeps, next);
            if (avail >= next || rb_load_acquire_i32(alert))
                return avail;
            rb_cpu_pause();
        }
        if (until < 0)
            until = rb_monotonic() + seconds;
        else if (rb_monotonic() >= until)
            return next - 1;
    }
}
#endif

#endif /* RINGBUS_RINGBUFFER_H */
