/* Signals: how a waiter that must not block its thread waits on a ring.
 *
 * A consumer thread or a blocked producer parks on the ring's condition variable (park/wake in
 * _ringbuffer.h). An event loop cannot: its thread has other tasks to run. So an event-loop
 * consumer waiting for events, or coroutines waiting for room, arm an rb_signal, re-check
 * their condition and, if it is unmet, go back to the loop and wait there for a file
 * descriptor or a callback. Whoever changes the condition takes the signal and signals only
 * if it was armed: one signal (one syscall) per wait, nothing per event while the waiter is
 * busy.
 *
 * A waiter:                     a signaller:
 *   armed = 1                     advance a sequence (release store)
 *   fence(seq_cst)                fence(seq_cst)
 *   re-check its condition        if armed and exchange(armed, 0) == 1: signal
 *   if unmet: wait for a signal   (nothing else)
 *
 * Dekker, as park/wake: the two seq_cst fences order each side's store before its load, so
 * either the signaller sees armed == 1 or the waiter's re-check sees the new sequence; without
 * them both may read old values and the waiter sleeps through the event. The exchange lets
 * exactly one of several racing signallers signal. A waiter whose re-check succeeds leaves the
 * flag armed: clearing it could erase another waiter's arm (several coroutines may wait for
 * room); the next signaller then signals for nothing and the waiter re-checks and re-arms.
 *
 * The signal itself (an eventfd write, a callback under the GIL) is the caller's; it must
 * order what the signaller did before it with what the waiter does after it, as a syscall or
 * a lock does. Written against _atomic.h only, so tests/relacy/ model-checks this file.
 */
#ifndef RINGBUS_SIGNAL_H
#define RINGBUS_SIGNAL_H

#include "_atomic.h"

/* Alone on its cache line(s): producers read it after every publish while a loop consumer is
 * attached. */
typedef struct rb_signal {
    RB_PAD(pad_before, 0);
    rb_atomic_i32 armed;         /* 1: a waiter armed it and may be waiting */
    RB_PAD(pad_after, 4);
} rb_signal;

static inline void rb_signal_init(rb_signal *s) { rb_store_relaxed_i32(&s->armed, 0); }

/* Before re-checking the condition the waiter is about to wait for. */
static inline void rb_signal_arm(rb_signal *s)
{
    rb_store_relaxed_i32(&s->armed, 1);
    rb_fence_seq_cst();
}

/* After advancing a sequence: 1 if the caller must signal the waiter. Costs a fence and a
 * load of a line that stays shared while nobody waits. */
static inline int rb_signal_take(rb_signal *s)
{
    rb_fence_seq_cst();
    if (rb_load_relaxed_i32(&s->armed) == 0)
        return 0;
    return rb_exchange_relaxed_i32(&s->armed, 0) == 1;
}

#endif /* RINGBUS_SIGNAL_H */
