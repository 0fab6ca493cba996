/* Record rings: rings of fixed-size records (bytes laid out by a numpy dtype) instead of
 * Python objects, written by producers that hold no GIL and create no Python object.
 *
 * One region holds the whole ring, addressed only by offsets from its start:
 *
 *   [ rb_record_header | availability flags (multi-producer) | records ]
 *     0                  available_offset                      records_offset
 *
 * The header keeps the layout, the sequences (cursor, the consumer's sequence, ...) and the
 * parker; nothing in the region is a pointer, so the same bytes could be mapped by several
 * processes. Each process (each RecordRing today) makes an rb_record_ring: a process-local
 * handle whose rb_sequencer points into the region, and runs the algorithms of _ringbuffer.h
 * on it, the very code RingBuffer runs.
 *
 * Ownership of a slot: a producer owns it from its claim until it publishes the sequence; the
 * consumer then owns it (its handlers read it in place) until it releases the sequence by
 * advancing its own; then producers may claim it again.
 *
 * Compiles under RINGBUS_RELACY like _ringbuffer.h: tests/relacy/record_models.cpp checks it.
 */
#ifndef RINGBUS_RECORDRING_H
#define RINGBUS_RECORDRING_H

#include "_ringbuffer.h"
#include <string.h>

/* "RBRECRD1" */
#define RB_RECORD_MAGIC ((int64_t)0x3144524345524252LL)
/* Bumped whenever the header or the region's layout changes. */
/* 3: the wait strategy, the dtype's descriptor, the creator and the consumer lease.
 * 4: the ring's kind (records or messages), unblock_timeout, the message counters. */
#define RB_RECORD_LAYOUT_VERSION 6   /* 6: the parker's futex word */
/* Bytes of the dtype descriptor a header holds (the text numpy.lib.format writes). */
#define RB_RECORD_DESCR_MAX 2048

/* What publishing returns; the same values as RINGBUS_* in the public ringbus_records.h. */
enum {
    RB_RECORD_PUBLISHED = 1,
    RB_RECORD_FULL = 0,              /* no room now (try_publish; overflow="raise") */
    RB_RECORD_DROPPED = -1,          /* no room, counted in `dropped` (overflow="drop") */
    RB_RECORD_TIMEOUT = RB_CLAIM_TIMEOUT,                  /* no room within the timeout */
    RB_RECORD_WOULD_DEADLOCK = RB_CLAIM_WOULD_DEADLOCK,    /* this thread is the ring's
                                                              consumer, inside a handler */
    RB_RECORD_CONSUMER_GONE = RB_CLAIM_CONSUMER_GONE       /* full, and the consumer thread
                                                              that was started ended */
};

enum { RB_OVERFLOW_BLOCK = 0, RB_OVERFLOW_RAISE = 1, RB_OVERFLOW_DROP = 2 };

/* What a region holds: fixed-size records (RecordRing), or variable-length messages in
 * frames of RB_FRAME_UNIT-byte slots (MessageRing: the same layout with framed claims). */
enum { RB_KIND_RECORDS = 0, RB_KIND_MESSAGES = 1 };

/* Record storage. In production a record is `record_size` plain bytes, copied with memcpy. The
 * model makes a record one race-checked word (rl::var), so that a read of a slot not ordered
 * after its write (or a write over a slot still being read) is a reported data race. */
#if defined(RINGBUS_RELACY)
typedef RB_VAR(int64_t) rb_record_cell;
#define RB_RECORD_CELLS(record_size) 1
#define RB_RECORD_COPY_IN(cell, src, size) RB_VAR_SET(*(cell), *(const int64_t *)(src))
#define RB_RECORD_COPY_OUT(dst, cell, size) (*(int64_t *)(dst) = RB_VAR_GET(*(cell)))
#else
typedef unsigned char rb_record_cell;
#define RB_RECORD_CELLS(record_size) (record_size)
#define RB_RECORD_COPY_IN(cell, src, size) memcpy((cell), (src), (size_t)(size))
#define RB_RECORD_COPY_OUT(dst, cell, size) memcpy((dst), (cell), (size_t)(size))
#endif

/* At offset 0 of the region. Only plain numbers, sequences and the parker: no pointers. */
typedef struct rb_record_header {
    /* Layout: written by rb_record_region_init before the region is shared, then read-only. */
    /* Stored last by rb_record_region_init, with release: a process that loads it with
     * acquire (rb_record_header_check) and finds RB_RECORD_MAGIC sees every field the
     * creator wrote before it, so it never attaches to a half-made ring. */
    rb_atomic_i64 magic;
    int64_t layout_version;
    int64_t region_size;         /* bytes */
    int64_t capacity;            /* records; a power of two */
    int64_t record_size;         /* bytes per record (the dtype's itemsize) */
    int64_t available_offset;    /* int32 lap flags, one per slot (multi-producer only) */
    int64_t records_offset;      /* capacity * record_size bytes, cache-line aligned */
    int32_t index_shift;         /* log2(capacity) */
    int32_t multi;               /* multi-producer sequencer */
    int32_t wait;                /* RB_WAIT_*: a property of the ring, in every process */
    int32_t descr_len;           /* bytes of `descr` in use (0: not recorded, a heap ring) */
    char descr[RB_RECORD_DESCR_MAX];   /* the record dtype, or the message format, as text */
    int64_t creator_pid;         /* the process that laid the ring out */
    int32_t kind;                /* RB_KIND_*; messages: record_size is RB_FRAME_UNIT */
    /* Random, drawn when the ring is laid out: with the name and creator_pid, tells this
     * ring from every other made before or after it under the same name (a bridge's
     * de-duplication ids). Was padding: a segment of an older build reads 0 here. */
    uint32_t nonce;
    double unblock_timeout;      /* seconds before an abandoned claim may be skipped */

    /* Producers. The cursor is the highest claimed (multi) or published (single) sequence. */
    rb_sequence cursor;
    int64_t sp_next;             /* single producer: that producer's own plain fields */
    int64_t sp_cached_gating;
    RB_PAD(pad_sp, 16);
    rb_sequence gating_cache;    /* multi producer: lower bound of the consumer's sequence */
    rb_sequence dropped;         /* records refused by overflow="drop" */
    /* A message ring counts messages, not slots: producers add to `messages` once they
     * published one (a claim abandoned by a killed producer is never counted), the consumer
     * to `consumed` before it releases their slots; so `consumed` may pass `messages` for a
     * moment. */
    rb_sequence messages;
    rb_sequence consumed;

    /* The consumer: its sequence gates the producers; stop() raises its alert. */
    rb_consumer consumer;
    /* stop(drain=True)'s hard stop target (see rb_stop_limit): the consumer dispatches up to
     * it and no further, however fast producers in any process go. */
    rb_sequence stop_target;
    /* Non-zero while the consumer thread that was started has ended by an exception: nothing
     * will make room, so a producer waiting for room gives up (RB_RECORD_CONSUMER_GONE). */
    rb_atomic_i32 consumer_gone;
    RB_PAD(pad_gone, 4);
    /* The consumer lease of a shared ring: the pid of the process whose handle consumes it
     * (0: none). Another process takes it over only once that pid is dead. */
    rb_sequence consumer_pid;
    /* The last sequence the consumer handed to its handlers, stored before their call; at
     * or below the consumer's sequence once released. A consumer process that dies leaves
     * it above: what the next consumer delivers up to it again may have been handled, and
     * is marked redelivered (at-least-once across a consumer crash). */
    rb_sequence inflight;
    /* Items (records, messages) delivered marked redelivered, by every consumer so far. */
    rb_sequence redelivered;
    /* The producer lease of a shared ring with a single producer: the pid of the process
     * whose handle publishes (0: none). Its claims are its own plain fields (sp_next); a new
     * producer takes over once that pid is dead, from the cursor (what the dead one claimed
     * and never published is not there). */
    rb_sequence producer_pid;

    /* Where parked consumers and producers wait: in a region other processes map, a
     * process-shared mutex and condition variable, so that they park and wake on the same
     * objects (rb_record_region_init's `shared`). */
    rb_parker parker;
    /* Shared rings with several producers: who holds which claim (_claimants.h). */
    rb_sequence abandoned;       /* slots (records) or claims (messages) skipped as abandoned */
    rb_claimants claimants;
} rb_record_header;

/* The process-local handle of a ring: where its region is in this process, and the policies
 * of this process's producers. It is what the C API calls a ringbus_record_ring. */
struct rb_record_ring {
    rb_sequencer seq;            /* points into the region (and at `gating` below) */
    rb_sequence *gating[1];      /* the consumer's sequence: the only gating sequence */
    rb_record_header *header;
    rb_record_cell *records;
    int64_t record_size;         /* bytes */
    int64_t cells;               /* rb_record_cells per record */
    int32_t overflow;            /* RB_OVERFLOW_*: publish() without a timeout on a full ring */
    /* wait="block": the consumer may park, so every publish ends with the wake protocol (a
     * seq_cst fence); the other strategies poll and producers skip it. */
    int32_t wake_consumer;
    /* Other processes may map the region: a producer waiting for room also checks that the
     * consumer process (the lease's pid) is alive. */
    int32_t shared;
};
typedef struct rb_record_ring rb_record_ring;


/* ------------------------------------------------------------------------------ layout */

static inline int64_t rb_record_align(int64_t x) { return (x + RB_CACHELINE - 1) / RB_CACHELINE * RB_CACHELINE; }

/* The offsets of the flags and the records in a region for `capacity` records of
 * `record_size` bytes; returns the region's size. */
static inline int64_t rb_record_layout(int64_t capacity, int64_t record_size, int multi,
                                       int64_t *available_offset, int64_t *records_offset)
{
    int64_t off = rb_record_align((int64_t)sizeof(rb_record_header));
    *available_offset = off;
    if (multi)
        off += rb_record_align(capacity * (int64_t)sizeof(rb_atomic_i32));
    *records_offset = off;
    off += rb_record_align(capacity * RB_RECORD_CELLS(record_size) * (int64_t)sizeof(rb_record_cell));
    return off;
}

/* Lay out an empty ring in `region` (rb_record_layout's size, cache-line aligned). Before the
 * region is shared: single-threaded. */
/* `shared`: other processes may map the region, so its parker is process-shared (a futex
 * keyed by the physical page: every park and wake-up then costs more, so a region only this
 * process maps keeps a private one). */
static inline void rb_record_region_init(void *region, int64_t capacity, int64_t record_size, int multi,
                                         int shared)
{
    rb_record_header *h = (rb_record_header *)region;
    int64_t i;
    rb_store_relaxed_i64(&h->magic, 0);
    h->layout_version = RB_RECORD_LAYOUT_VERSION;
    h->region_size = rb_record_layout(capacity, record_size, multi, &h->available_offset,
                                      &h->records_offset);
    h->capacity = capacity;
    h->record_size = record_size;
    h->index_shift = rb_log2(capacity);
    h->multi = multi;
    rb_sequence_init(&h->cursor, -1);
    h->sp_next = -1;
    h->sp_cached_gating = -1;
    rb_sequence_init(&h->gating_cache, -1);
    rb_sequence_init(&h->dropped, 0);
    rb_sequence_init(&h->messages, 0);
    rb_sequence_init(&h->consumed, 0);
    rb_consumer_init(&h->consumer, -1);
    rb_sequence_init(&h->stop_target, INT64_MAX);
    rb_store_relaxed_i32(&h->consumer_gone, 0);
    rb_sequence_init(&h->consumer_pid, 0);
    rb_sequence_init(&h->inflight, -1);
    rb_sequence_init(&h->redelivered, 0);
    rb_sequence_init(&h->producer_pid, 0);
    if (multi) {
        rb_atomic_i32 *available = (rb_atomic_i32 *)((char *)region + h->available_offset);
        for (i = 0; i < capacity; i++)
            rb_store_relaxed_i32(&available[i], -1);   /* no lap published yet */
    }
    rb_parker_init(&h->parker, shared);
    rb_sequence_init(&h->abandoned, 0);
    rb_claimants_init(&h->claimants);
    /* Last: the ring is whole (and so are wait, descr and creator_pid, which the caller
     * writes before calling this). */
    rb_store_release_i64(&h->magic, RB_RECORD_MAGIC);
}

/* Once no thread uses the region any more. */
static inline void rb_record_region_destroy(void *region)
{
    rb_parker_destroy(&((rb_record_header *)region)->parker);
}

/* Check a header another process laid out (a mapped segment of `mapped` bytes) before
 * anything else reads it: every field is range-checked and the layout is recomputed from the
 * capacity, record size and sequencer, so that no offset or size read from shared memory can
 * lead an access out of the mapping. Returns NULL if the header is sound, else why not. */
static inline const char *rb_record_header_check(const void *region, int64_t mapped)
{
    const rb_record_header *h = (const rb_record_header *)region;
    int64_t available_offset, records_offset, size;
    if (mapped < (int64_t)sizeof(rb_record_header))
        return "the segment is smaller than a record ring's header";
    if (rb_load_acquire_i64((rb_atomic_i64 *)&h->magic) != RB_RECORD_MAGIC)
        return "the segment does not hold a ringbus record ring (bad magic number, or its "
               "creator has not finished making it)";
    if (h->layout_version != RB_RECORD_LAYOUT_VERSION)
        return "the segment holds a record ring of another layout version";
    if (h->capacity < 2 || h->capacity > ((int64_t)1 << 30) || (h->capacity & (h->capacity - 1)))
        return "the header's capacity is not a power of two between 2 and 2**30";
    if (h->index_shift != rb_log2(h->capacity))
        return "the header's index shift does not match its capacity";
    if (h->record_size < 1 || h->record_size > ((int64_t)1 << 30)
            || h->capacity * h->record_size > ((int64_t)1 << 40))
        return "the header's record size is out of range";
    if (h->multi != 0 && h->multi != 1)
        return "the header's producer mode is neither single nor multi";
    if (h->wait < RB_WAIT_BLOCK || h->wait > RB_WAIT_SLEEP)
        return "the header's wait strategy is unknown";
    if (h->descr_len < 0 || h->descr_len > RB_RECORD_DESCR_MAX)
        return "the header's dtype descriptor length is out of range";
    if (h->kind != RB_KIND_RECORDS && h->kind != RB_KIND_MESSAGES)
        return "the header's ring kind is neither records nor messages";
    if (h->kind == RB_KIND_MESSAGES && h->record_size != RB_FRAME_UNIT)
        return "the header's slot size is not a message ring's";
    if (!(h->unblock_timeout >= 0 && h->unblock_timeout <= 1e9))
        return "the header's unblock timeout is out of range";
    size = rb_record_layout(h->capacity, h->record_size, h->multi, &available_offset,
                            &records_offset);
    if (h->available_offset != available_offset || h->records_offset != records_offset
            || h->region_size != size)
        return "the header's offsets do not match its capacity and record size";
    if (size > mapped)
        return "the segment is smaller than the ring its header describes (truncated)";
    return NULL;
}

/* Make `rr` the handle of the ring in `region` (initialized, in this process at this
 * address). Returns 0, or -1 if the region is not a record ring of this layout version. */
static inline int rb_record_ring_attach(rb_record_ring *rr, void *region, int overflow, int wait)
{
    rb_record_header *h = (rb_record_header *)region;
    if (rb_load_acquire_i64(&h->magic) != RB_RECORD_MAGIC
            || h->layout_version != RB_RECORD_LAYOUT_VERSION)
        return -1;
    rr->header = h;
    rr->records = (rb_record_cell *)((char *)region + h->records_offset);
    rr->record_size = h->record_size;
    rr->cells = RB_RECORD_CELLS(h->record_size);
    rr->overflow = overflow;
    rr->wake_consumer = wait == RB_WAIT_BLOCK;
    rr->gating[0] = &h->consumer.sequence;
    rr->seq.capacity = h->capacity;
    rr->seq.mask = h->capacity - 1;
    rr->seq.index_shift = h->index_shift;
    rr->seq.multi = h->multi;
    rr->seq.n_gating = 1;
    rr->seq.cursor = &h->cursor;
    rr->seq.sp_next = &h->sp_next;
    rr->seq.sp_cached_gating = &h->sp_cached_gating;
    rr->seq.gating_cache = &h->gating_cache;
    rr->seq.available = h->multi ? (rb_atomic_i32 *)((char *)region + h->available_offset) : 0;
    rr->seq.gating = rr->gating;
    rr->seq.parker = &h->parker;
    rr->seq.framed = h->kind == RB_KIND_MESSAGES;
    rr->seq.frames = (const unsigned char *)rr->records;
    rr->seq.claimants = 0;           /* tracked by shared rings alone: rb_record_track_claims */
    rr->shared = 0;
    return 0;
}

/* Other processes map the region: record every claim (several producers), so that a dead
 * producer's can be skipped, and let waiting producers watch the consumer process. */
static inline void rb_record_share(rb_record_ring *rr)
{
    rr->shared = 1;
    if (rr->seq.multi)
        rr->seq.claimants = &rr->header->claimants;
}

static inline int64_t rb_record_ring_record_size(const rb_record_ring *rr) { return rr->record_size; }
static inline int64_t rb_record_ring_capacity(const rb_record_ring *rr) { return rr->seq.capacity; }

/* The slot of sequence `seq`. */
static inline rb_record_cell *rb_record_slot(const rb_record_ring *rr, int64_t seq)
{
    return rr->records + (seq & rr->seq.mask) * rr->cells;
}

/* ---------------------------------------------------------------------------- producers */

/* Copy records for the claimed sequences lo..hi from `src` (packed, record_size apart). At
 * most two copies: the run up to the end of the storage, and the rest from its start. */
static inline void rb_record_write(const rb_record_ring *rr, int64_t lo, int64_t hi, const void *src)
{
    const unsigned char *p = (const unsigned char *)src;
#if defined(RINGBUS_RELACY)
    int64_t s;
    for (s = lo; s <= hi; s++, p += rr->record_size)
        RB_RECORD_COPY_IN(rb_record_slot(rr, s), p, rr->record_size);
#else
    int64_t end = lo | rr->seq.mask;          /* the last sequence before the storage wraps */
    int64_t first = (hi < end ? hi : end) - lo + 1;
    RB_RECORD_COPY_IN(rb_record_slot(rr, lo), p, first * rr->record_size);
    if (first < hi - lo + 1)
        RB_RECORD_COPY_IN(rb_record_slot(rr, lo + first), p + first * rr->record_size,
                          (hi - lo + 1 - first) * rr->record_size);
#endif
}

/* Hand the written sequences lo..hi to the consumer. The sequencer's release store orders the
 * record bytes before the consumer's acquire; then the wake protocol, if it may be parked. */
static inline void rb_record_publish_range(const rb_record_ring *rr, int64_t lo, int64_t hi)
{
    rb_sequencer_publish(&rr->seq, lo, hi);
    if (rr->wake_consumer)
        rb_parker_wake(rr->seq.parker);
}

/* Claim up to `max_n` sequences if there is room now; returns how many (0: full), the
 * highest in *hi. */
static inline int64_t rb_record_claim(const rb_record_ring *rr, int64_t max_n, int64_t *hi)
{
    return rb_sequencer_claim_upto(&rr->seq, max_n, hi);
}

/* One record if there is room now: RB_RECORD_PUBLISHED or RB_RECORD_FULL. Never waits. */
static inline int rb_record_try_publish(rb_record_ring *rr, const void *record)
{
    int64_t hi;
    if (rb_sequencer_claim_upto(&rr->seq, 1, &hi) == 0)
        return RB_RECORD_FULL;
    rb_record_write(rr, hi, hi, record);
    rb_record_publish_range(rr, hi, hi);
    return RB_RECORD_PUBLISHED;
}

/* The consumer releases slots: everything up to `hi` is done with (its handlers returned), so
 * producers may overwrite those slots. Release: the handlers' reads of the records
 * happen-before a producer's acquire of this sequence and its next write to them. */
static inline void rb_record_release(const rb_record_ring *rr, int64_t hi)
{
    rb_sequence_set(&rr->header->consumer.sequence, hi);
    rb_parker_wake(rr->seq.parker);          /* producers parked for room */
}

/* Wake every thread parked on the ring (stop(): the consumer re-checks its alert). */
static inline void rb_record_wake(const rb_record_ring *rr) { rb_parker_wake(rr->seq.parker); }

/* ---------------------------------------------------------------------------- consumer */

/* The highest sequence the consumer may process, given that it wants `next` (below `next`:
 * nothing yet). Acquire, through the sequencer: the records up to it are fully written. */
static inline int64_t rb_record_available(const rb_record_ring *rr, int64_t next)
{
    return rb_sequencer_barrier_available(&rr->seq, 0, 0, next);
}

/* Wait (by `strategy`) until `next` is published or the consumer's alert is raised. */
static inline int64_t rb_record_wait_for(const rb_record_ring *rr, int64_t next, int strategy,
                                         rb_deadline_t no_deadline)
{
    return rb_sequencer_wait_for(&rr->seq, 0, 0, next, strategy, &rr->header->consumer.alert,
                                 no_deadline);
}

/* The last sequence of the contiguous run of storage that starts at `lo` and ends at most at
 * `hi`: a run stops where the storage wraps, and the rest begins at its start. */
static inline int64_t rb_record_run_end(const rb_record_ring *rr, int64_t lo, int64_t hi)
{
    int64_t end = lo | rr->seq.mask;
    return hi < end ? hi : end;
}

/* ------------------------------------------------------------------- blocking publish
 * Without the GIL (the C API). */

/* Claim up to `max_n` sequences, waiting for room at most `timeout` seconds (< 0: no limit):
 * the one blocking claim of _ringbuffer.h. Returns how many were claimed (> 0, the highest in
 * *hi), RB_RECORD_TIMEOUT, RB_RECORD_WOULD_DEADLOCK when this thread runs the ring's consumer
 * and only it could make room, or RB_RECORD_CONSUMER_GONE when the consumer thread ended. */
static inline int64_t rb_record_claim_wait(rb_record_ring *rr, int64_t max_n, double timeout,
                                           int64_t *hi)
{
#if !defined(RINGBUS_RELACY)
    /* A shared ring: wait a slice at a time, and give up once the consumer process is gone
     * (killed: nothing will make room until a new consumer attaches). */
    double deadline = timeout >= 0 ? rb_monotonic() + timeout : -1, slice_;
    int64_t got;
    if (rr->shared) {
        for (;;) {
            slice_ = RB_CLAIM_WAIT_SLICE;
            if (deadline >= 0) {
                double left = deadline - rb_monotonic();
                if (left <= 0)
                    left = 0;
                if (left < slice_)
                    slice_ = left;
            }
            got = rb_sequencer_claim_wait(&rr->seq, rr->header, &rr->header->consumer_gone,
                                          max_n, slice_, hi);
            if (got != RB_CLAIM_TIMEOUT)
                return got;
            if (rb_pid_gone(rb_sequence_get(&rr->header->consumer_pid))) {
                got = rb_sequencer_claim_upto(&rr->seq, max_n, hi);
                return got ? got : RB_CLAIM_CONSUMER_GONE;
            }
            if (deadline >= 0 && rb_monotonic() >= deadline)
                return RB_CLAIM_TIMEOUT;
        }
    }
#endif
    return rb_sequencer_claim_wait(&rr->seq, rr->header, &rr->header->consumer_gone, max_n,
                                   timeout, hi);
}

/* The overflow rule (the same as the Python faces'): a full ring waits for room up to
 * `timeout` seconds (< 0: the policy's own wait, forever under "block", none under "raise"
 * and "drop"), then the policy acts. Returns how many slots were claimed (> 0), or why
 * none: RB_RECORD_DROPPED under "drop" (the caller counts the drop), RB_RECORD_FULL under
 * "raise" without a timeout, else rb_record_claim_wait's code. */
static inline int64_t rb_record_claim_within(rb_record_ring *rr, int64_t max_n, double timeout,
                                             int64_t *hi)
{
    int64_t got;
    if (timeout < 0 && rr->overflow == RB_OVERFLOW_DROP)
        return RB_RECORD_DROPPED;
    if (timeout < 0 && rr->overflow == RB_OVERFLOW_RAISE)
        return RB_RECORD_FULL;
    got = rb_record_claim_wait(rr, max_n, timeout, hi);
    return got < 0 && rr->overflow == RB_OVERFLOW_DROP ? RB_RECORD_DROPPED : got;
}

/* Publish one record: RB_RECORD_PUBLISHED, RB_RECORD_DROPPED (counted) or why not, by the
 * overflow rule of rb_record_claim_within. */
static inline int rb_record_publish(rb_record_ring *rr, const void *record, double timeout)
{
    int64_t hi, got = rb_sequencer_claim_upto(&rr->seq, 1, &hi);
    if (got == 0) {
        got = rb_record_claim_within(rr, 1, timeout, &hi);
        if (got == RB_RECORD_DROPPED)
            rb_fetch_add_relaxed_i64(&rr->header->dropped.value, 1);
        if (got <= 0)
            return (int)got;
    }
    rb_record_write(rr, hi, hi, record);
    RB_MAY_DIE(4);
    rb_record_publish_range(rr, hi, hi);
    return RB_RECORD_PUBLISHED;
}

/* Publish `n` packed records, one claim per run of free slots. Returns how many went in, in
 * order; *status is RB_RECORD_PUBLISHED when all did, else why the rest did not (under
 * overflow="drop" they are counted as dropped). `timeout` bounds the whole call; the overflow
 * rule is rb_record_claim_within's. */
static inline int64_t rb_record_publish_many(rb_record_ring *rr, const void *records, int64_t n,
                                             double timeout, int *status)
{
    const unsigned char *src = (const unsigned char *)records;
    int64_t done = 0, hi, got;
#if !defined(RINGBUS_RELACY)
    double deadline = timeout >= 0 ? rb_monotonic() + timeout : -1;
#endif
    *status = RB_RECORD_PUBLISHED;
    while (done < n) {
        got = rb_sequencer_claim_upto(&rr->seq, n - done, &hi);
        if (got == 0) {
#if !defined(RINGBUS_RELACY)
            if (deadline >= 0) {
                timeout = deadline - rb_monotonic();   /* what is left of it */
                if (timeout < 0)
                    timeout = 0;
            }
#endif
            got = rb_record_claim_within(rr, n - done, timeout, &hi);
            if (got == RB_RECORD_DROPPED)
                rb_fetch_add_relaxed_i64(&rr->header->dropped.value, n - done);
            if (got <= 0) {
                *status = (int)got;
                return done;
            }
        }
        rb_record_write(rr, hi - got + 1, hi, src + done * rr->record_size);
        rb_record_publish_range(rr, hi - got + 1, hi);
        done += got;
    }
    return done;
}

/* ------------------------------------------------------------------------ message frames
 * A message ring (RB_KIND_MESSAGES) is this region with framed claims (_ringbuffer.h): a
 * claim lo..hi is a padding frame up to the storage's end when the message would not fit
 * before it, then the message's frame (its header, then its bytes). */

/* The longest message a ring of `capacity` slots takes: a frame of at most half the storage,
 * so that the frame and the padding before it always fit in an empty ring (a longer one
 * could wait for room forever). */
static inline int64_t rb_message_max(int64_t capacity)
{
    return (capacity / 2 - 1) * RB_FRAME_UNIT;
}

/* Fill the claim lo..hi with the frames of one `length`-byte message. */
static inline void rb_message_write(const rb_record_ring *rr, int64_t lo, int64_t hi,
                                    const void *data, int64_t length)
{
    int64_t units = rb_frame_units(length);
    int64_t msg = hi - units + 1;
    rb_frame_header *f;
    if (msg != lo) {
        f = (rb_frame_header *)rb_record_slot(rr, lo);
        f->units = (int32_t)(msg - lo);
        f->length = -1;
    }
    f = (rb_frame_header *)rb_record_slot(rr, msg);
    f->units = (int32_t)units;
    f->length = (int32_t)length;
    memcpy(f + 1, data, (size_t)length);
}

/* Hand the frames of lo..hi to the consumer: counted first (see `messages`), then published
 * as records are. */
static inline void rb_message_publish(const rb_record_ring *rr, int64_t lo, int64_t hi)
{
    rb_record_publish_range(rr, lo, hi);
    rb_fetch_add_relaxed_i64(&rr->header->messages.value, 1);
}

/* Read the header of the frame at published sequence `s`: its slots and its message's
 * length (-1: padding); returns where its bytes start, or NULL if the header does not fit
 * the published range up to `hi` (a corrupted segment: never a read outside the storage).
 * Each field is read once, so what was checked is what is used. */
static inline const unsigned char *rb_message_frame(const rb_record_ring *rr, int64_t s,
                                                    int64_t hi, int64_t *units, int64_t *length)
{
    /* volatile: each field is loaded exactly once, another process may be overwriting it */
    const volatile rb_frame_header *f = (const volatile rb_frame_header *)rb_record_slot(rr, s);
    int64_t u = f->units, n = f->length;
    if (u < 1 || u > hi - s + 1 || (n >= 0 ? rb_frame_units(n) != u : n != -1))
        return 0;
    *units = u;
    *length = n;
    return (const unsigned char *)rb_record_slot(rr, s) + sizeof(rb_frame_header);
}

#endif /* RINGBUS_RECORDRING_H */
