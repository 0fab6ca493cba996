// Relacy models of the signal protocol in src/ringbus/_signal.h, with which an event loop waits
// on a ring without blocking its thread, compiled from that very file and _ringbuffer.h
// (RINGBUS_RELACY switches their _atomic.h layer to Relacy's atomics and pthreads).
//
// The loop's file descriptor is modelled by `Fd`: a counter under a mutex, as an eventfd is a
// counter in the kernel; a lost signal leaves the waiter blocked on it forever, a reported
// deadlock.
//
//   g++ -O1 -std=c++11 -w -I<src/ringbus> signal_models.cpp -o signal_models
//   ./signal_models MODEL [iterations] [random|bound]
// Models: loop_wake, loop_wake_mp, room. Exit status 0 when the model passes.
#define RINGBUS_RELACY 1
#include "_ringbuffer.h"
#include "_signal.h"
#include "model_main.hpp"
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

void *payload_of(int64_t seq) { return reinterpret_cast<void *>(static_cast<intptr_t>(seq + 1)); }

// An eventfd: post() adds one (the producer's write), wait() blocks until the count is
// non-zero and takes it all (the loop's reader callback).
struct Fd {
    rb_mutex_t m;
    rb_cond_t c;
    rl::var<int> count;

    Fd()
    {
        RB_MUTEX_INIT(&m);
        RB_COND_INIT(&c);
        count($) = 0;
    }
    ~Fd()
    {
        RB_COND_DESTROY(&c);
        RB_MUTEX_DESTROY(&m);
    }
    void post()
    {
        RB_MUTEX_LOCK(&m);
        count($) = count($) + 1;
        RB_COND_BROADCAST(&c);
        RB_MUTEX_UNLOCK(&m);
    }
    void wait()
    {
        RB_MUTEX_LOCK(&m);
        while (count($) == 0)
            RB_COND_WAIT_UNTIL(&c, &m, 0);
        count($) = 0;
        RB_MUTEX_UNLOCK(&m);
    }
};

struct Ring {
    rb_ring ring;
    rb_slot *slots;
    rb_atomic_i32 *available;
    rb_consumer consumer;
    rb_signal events;   // the loop consumer waits for events
    rb_signal room;     // loop producers wait for room
    Fd events_fd;
    Fd room_fd;

    Ring(int64_t capacity, int multi)
    {
        slots = new rb_slot[capacity];
        available = new rb_atomic_i32[capacity];
        rb_ring_init(&ring, capacity, multi, slots, multi ? available : 0);
        rb_consumer_init(&consumer, -1);
        ring.n_gating = 1;
        ring.gating[0] = &consumer.sequence;
        rb_signal_init(&events);
        rb_signal_init(&room);
    }
    ~Ring()
    {
        rb_ring_destroy(&ring);
        delete[] slots;
        delete[] available;
    }
};

// A producer on any thread (RingBuffer._write_one with a loop consumer attached): publish,
// then signal the loop only if it armed. Blocks for room the thread way (park/wake).
void publish(Ring &q, int64_t type)
{
    rb_ring *r = &q.ring;
    int64_t hi;
    while (rb_claim_upto(r, 1, &hi) == 0) {
        int64_t wrap_point = rb_claimed(r) + 1 - r->capacity;
        rb_park_begin(r);
        if (!rb_room_for(r, wrap_point))
            rb_park_wait(r, 0);
        rb_park_end(r);
    }
    rb_slot_write(r, hi, type, payload_of(hi));
    rb_publish(r, hi, hi);
    if (rb_signal_take(&q.events))
        q.events_fd.post();
}

// The loop consumer (AioState.consume): drain what is there; when nothing is, arm, look again,
// and only then wait for the fd. Signals room for loop producers once per batch.
void loop_consume(Ring &q, int64_t total, int64_t *seen)
{
    rb_ring *r = &q.ring;
    rb_consumer *c = &q.consumer;
    int64_t next = 0;
    while (next < total) {
        int64_t avail = rb_barrier_available(r, 0, 0, next);
        if (avail < next) {
            rb_signal_arm(&q.events);
            if (rb_barrier_available(r, 0, 0, next) < next)
                q.events_fd.wait();
            continue;
        }
        for (int64_t s = next; s <= avail; s++) {
            int64_t type;
            void *p = rb_slot_read(r, s, &type, 1);
            RL_ASSERT(p == payload_of(s));              // each event once, intact
            seen[s] = type;
        }
        rb_sequence_set(&c->sequence, avail);
        rb_wake(r);
        if (rb_signal_take(&q.room))
            q.room_fd.post();
        next = avail + 1;
    }
}

// A coroutine publishing with publish_async (aio.publish_wait): when full, arm the room signal,
// look again, and only then wait; never parks its thread.
void loop_publish(Ring &q, int64_t type)
{
    rb_ring *r = &q.ring;
    int64_t hi;
    while (rb_claim_upto(r, 1, &hi) == 0) {
        rb_signal_arm(&q.room);
        if (!rb_room_for(r, rb_claimed(r) + 1 - r->capacity))
            q.room_fd.wait();
    }
    rb_slot_write(r, hi, type, payload_of(hi));
    rb_publish(r, hi, hi);
    rb_wake(r);                                         // a consumer thread may be parked
}

// One producer thread, the loop consumer idle in between: each event must wake it.
struct loop_wake_model : rl::test_suite<loop_wake_model, 2> {
    Ring *q;
    void before() { q = new Ring(2, 0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            for (int64_t i = 0; i < 3; i++)
                publish(*q, i);
        } else {
            int64_t seen[3];
            loop_consume(*q, 3, seen);
            for (int i = 0; i < 3; i++)
                RL_ASSERT(seen[i] == i);
        }
    }
};

// Two producers racing to take one armed signal: one signals, and the consumer still sees
// both events.
struct loop_wake_mp_model : rl::test_suite<loop_wake_mp_model, 3> {
    Ring *q;
    void before() { q = new Ring(2, 1); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        if (idx < 2) {
            publish(*q, 10 + idx);
        } else {
            int64_t seen[2];
            loop_consume(*q, 2, seen);
            RL_ASSERT(seen[0] + seen[1] == 21);
        }
    }
};

// A loop producer filling a ring of 2 with 4 events: it must be woken for room each time the
// consumer (a thread that parks) frees a slot.
struct room_model : rl::test_suite<room_model, 2> {
    Ring *q;
    void before() { q = new Ring(2, 0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            for (int64_t i = 0; i < 4; i++)
                loop_publish(*q, i);
        } else {
            rb_ring *r = &q->ring;
            rb_consumer *c = &q->consumer;
            int64_t next = 0;
            while (next < 4) {
                int64_t avail = rb_wait_for(r, 0, 0, next, RB_WAIT_BLOCK, &c->alert, 0);
                for (int64_t s = next; s <= avail; s++) {
                    int64_t type;
                    RL_ASSERT(rb_slot_read(r, s, &type, 1) == payload_of(s));
                    RL_ASSERT(type == s);
                }
                rb_sequence_set(&c->sequence, avail);
                rb_wake(r);
                if (rb_signal_take(&q->room))
                    q->room_fd.post();
                next = avail + 1;
            }
        }
    }
};

}  // namespace

int main(int argc, char **argv)
{
    static const rb_models::model_entry models[] = {
        {"loop_wake", rb_models::run<loop_wake_model>},
        {"loop_wake_mp", rb_models::run<loop_wake_mp_model>},
        {"room", rb_models::run<room_model>},
    };
    return rb_models::model_main(argc, argv, models);
}
