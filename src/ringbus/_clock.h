/* The clock of ringbus's metrics: cheap ticks on the hot path, nanoseconds off it.
 *
 * On x86-64, when the kernel itself keeps time with the TSC (its clocksource is "tsc": the
 * counter is invariant and synchronised across cores), a tick is one RDTSC (about 10 ns
 * here, against 24 ns for clock_gettime through the vDSO), converted to nanoseconds with a
 * multiplier calibrated once against CLOCK_MONOTONIC. Elsewhere a tick is a
 * CLOCK_MONOTONIC nanosecond.
 *
 * rb_clock_calibrate() runs on the registration path (enable_metrics), holding the GIL;
 * afterwards the two globals are only read.
 */
#ifndef RINGBUS_CLOCK_H
#define RINGBUS_CLOCK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "_ticks.h"

static int rb_clock_tsc = 0;              /* 1: ticks are TSC counts */
static uint64_t rb_clock_mult = 1u << 20; /* ns = ticks * mult >> 20 (TSC only) */

static inline uint64_t rb_clock_ticks(void)
{
    return rb_ticks_read(rb_clock_tsc);
}

static inline uint64_t rb_clock_ns(uint64_t ticks)
{
    return rb_ticks_ns(ticks, rb_clock_tsc, rb_clock_mult);
}

/* Choose the tick source and calibrate it (about 5 ms, once). Returns 1 for the TSC. */
static inline int rb_clock_calibrate(void)
{
#if defined(__x86_64__)
    static int done = 0;
    char source[32] = {0};
    FILE *f;
    if (done)
        return rb_clock_tsc;
    done = 1;
    f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (f == NULL)
        return 0;
    if (fgets(source, sizeof source, f) == NULL)
        source[0] = 0;
    fclose(f);
    if (strncmp(source, "tsc", 3) != 0)
        return 0;
    uint64_t t0 = rb_ticks_monotonic_ns(), c0 = __rdtsc(), t1, c1;
    do {
        t1 = rb_ticks_monotonic_ns();
    } while (t1 - t0 < 5000000u);
    c1 = __rdtsc();
    if (c1 <= c0)
        return 0;
    rb_clock_mult = (uint64_t)((((unsigned __int128)(t1 - t0)) << 20) / (c1 - c0));
    rb_clock_tsc = rb_clock_mult > 0;
    return rb_clock_tsc;
#else
    return 0;
#endif
}

#endif
