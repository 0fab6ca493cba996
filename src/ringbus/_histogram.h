/* A log-linear latency histogram (HdrHistogram's layout, our own code): fixed memory,
 * O(1) record, mergeable by adding buckets, percentiles within RB_HIST_ERROR of the truth.
 *
 * Values are unsigned integers (nanoseconds, by convention). Below RB_HIST_LINEAR each value
 * has its own bucket (exact). Above, each power-of-two range [2^e, 2^(e+1)) is cut into
 * RB_HIST_SUB linear buckets of width 2^(e - RB_HIST_SUB_BITS): a bucket is at most 1/32 of
 * its lowest value wide, and a percentile reported as its bucket's midpoint is within
 * 1/64 (1.6 %) of the recorded value it stands for. The top range ends at 2^(RB_HIST_TOP+1)
 * ns (about 2.4 hours); larger values land in the last bucket and are counted in
 * `overflow`, and `max` stays exact.
 *
 * Not atomic: a histogram has one writer at a time. ringbus records into a subscription's
 * histogram while holding the GIL (the handler's dispatch); without a GIL, a writer per
 * thread, merged on read, would be the way.
 */
#ifndef RINGBUS_HISTOGRAM_H
#define RINGBUS_HISTOGRAM_H

#include <stdint.h>
#include <string.h>

#define RB_HIST_SUB_BITS 5
#define RB_HIST_SUB (1 << RB_HIST_SUB_BITS)           /* 32 buckets per power of two */
#define RB_HIST_LINEAR_BITS (RB_HIST_SUB_BITS + 1)
#define RB_HIST_LINEAR (1 << RB_HIST_LINEAR_BITS)     /* 0..63: exact */
#define RB_HIST_TOP 42                                /* the last range: [2^42, 2^43) */
#define RB_HIST_BUCKETS (RB_HIST_LINEAR + (RB_HIST_TOP - RB_HIST_LINEAR_BITS + 1) * RB_HIST_SUB)

typedef struct {
    uint64_t count;
    uint64_t sum;               /* wraps after 584 years of nanoseconds */
    uint64_t min;               /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t overflow;          /* values past the top range (in the last bucket) */
    uint64_t buckets[RB_HIST_BUCKETS];
} rb_hist;

static inline void rb_hist_reset(rb_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static inline int rb_hist_index(uint64_t v)
{
    if (v < RB_HIST_LINEAR)
        return (int)v;
    int e = 63 - __builtin_clzll(v);                  /* floor(log2 v) >= LINEAR_BITS */
    if (e > RB_HIST_TOP)
        return RB_HIST_BUCKETS - 1;
    int shift = e - RB_HIST_SUB_BITS;
    int sub = (int)(v >> shift) - RB_HIST_SUB;        /* 0 .. SUB-1 */
    return RB_HIST_LINEAR + (e - RB_HIST_LINEAR_BITS) * RB_HIST_SUB + sub;
}

/* The lowest value of bucket i, and its width. */
static inline uint64_t rb_hist_lowest(int i, uint64_t *width)
{
    if (i < RB_HIST_LINEAR) {
        *width = 1;
        return (uint64_t)i;
    }
    int k = i - RB_HIST_LINEAR;
    int e = RB_HIST_LINEAR_BITS + k / RB_HIST_SUB;
    int shift = e - RB_HIST_SUB_BITS;
    *width = (uint64_t)1 << shift;
    return ((uint64_t)(RB_HIST_SUB + k % RB_HIST_SUB)) << shift;
}

static inline void rb_hist_record(rb_hist *h, uint64_t v)
{
    h->count += 1;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    if (v >> (RB_HIST_TOP + 1))
        h->overflow += 1;
    h->buckets[rb_hist_index(v)] += 1;
}

static inline void rb_hist_merge(rb_hist *into, const rb_hist *from)
{
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
    into->overflow += from->overflow;
    for (int i = 0; i < RB_HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
}

/* The value at quantile q (0 < q <= 1): the midpoint of the bucket holding the
 * ceil(q * count)-th smallest value, clamped to [min, max] (so q = 1 is max, exactly). */
static inline uint64_t rb_hist_quantile(const rb_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r || rank == 0)
        rank += 1;
    if (rank >= h->count)
        return h->max;
    uint64_t seen = 0;
    for (int i = 0; i < RB_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t width, low = rb_hist_lowest(i, &width);
            uint64_t mid = low + (width - 1) / 2;
            if (i == RB_HIST_BUCKETS - 1 && h->overflow)
                mid = h->max;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

/* One subscription's metrics: its calls, the calls that raised, and the time of each call
 * (nanoseconds, from the clock of _clock.h). Written by the dispatch holding the GIL. */
typedef struct {
    uint64_t calls;
    uint64_t errors;
    rb_hist time;
} rb_meter;

#endif
