/* A tick of ringbus's metrics clock, without the calibration (_clock.h owns that, in
 * _dispatch alone: its globals are static, one copy per module that includes it).
 *
 * A module that stamps on its own hot path (the ring: publish stamps, the consumer's
 * queueing delay) takes the tick source and multiplier _dispatch calibrated
 * (clock_is_tsc(), clock_mult()) once, keeps them, and calls these inline: no call through
 * a pointer per event.
 */
#ifndef RINGBUS_TICKS_H
#define RINGBUS_TICKS_H

#include <stdint.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

static inline uint64_t rb_ticks_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* tsc: 1 for a TSC count (x86-64 only), else CLOCK_MONOTONIC nanoseconds. */
static inline uint64_t rb_ticks_read(int tsc)
{
#if defined(__x86_64__)
    if (tsc)
        return __rdtsc();
#endif
    (void)tsc;
    return rb_ticks_monotonic_ns();
}

/* Ticks to nanoseconds; mult: ns = ticks * mult >> 20 (TSC only). */
static inline uint64_t rb_ticks_ns(uint64_t ticks, int tsc, uint64_t mult)
{
    if (!tsc)
        return ticks;
    /* 128-bit product: an hour of ticks times the multiplier would overflow 64 bits. */
    return (uint64_t)(((unsigned __int128)ticks * mult) >> 20);
}

#endif
