// Relacy models of the ring algorithms in src/ringbus/_ringbuffer.h, compiled from that very
// file: RINGBUS_RELACY switches its _atomic.h layer to rl::atomic / rl::var / Relacy's
// pthreads, so every memory order and every slot access of the production code is checked.
// Slots are rl::var: a read not ordered after the write by the atomics is a reported data
// race; a lost wake-up leaves a thread blocked forever, a reported deadlock.
//
//   g++ -O1 -std=c++11 -w -I<src/ringbus> ring_models.cpp -o ring_models
//   ./ring_models MODEL [iterations] [random|bound]
// Models: spsc, mpsc, batch, diamond, wake, stop, stop_target, lanes. Exit status 0 when the model passes.
#define RINGBUS_RELACY 1
#include "_ringbuffer.h"
#include "model_main.hpp"
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

// Payload pointers are never dereferenced: they encode the sequence they were published with.
void *payload_of(int64_t seq) { return reinterpret_cast<void *>(static_cast<intptr_t>(seq + 1)); }

struct Ring {
    rb_ring ring;
    rb_slot *slots;
    rb_atomic_i32 *available;
    rb_consumer consumers[3];

    Ring(int64_t capacity, int multi)
    {
        slots = new rb_slot[capacity];
        available = new rb_atomic_i32[capacity];
        rb_ring_init(&ring, capacity, multi, slots, multi ? available : 0);
        for (int i = 0; i < 3; i++)
            rb_consumer_init(&consumers[i], -1);
    }
    ~Ring()
    {
        rb_ring_destroy(&ring);
        delete[] slots;
        delete[] available;
    }
    void gate_on(int consumer)
    {
        ring.n_gating = 1;
        ring.gating[0] = &consumers[consumer].sequence;
    }
};

// A producer that blocks on a full ring, as RingBuffer._claim_blocking does (untimed: a lost
// wake-up must deadlock in the model rather than time out).
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
    RL_ASSERT(rb_slot_write(r, hi, type, payload_of(hi)) == 0);   // the last stage cleared it
    rb_publish(r, hi, hi);
    rb_wake(r);
}

// A consumer as RingBuffer._run_stage runs one: wait (parking), read the batch, release.
// Returns how many events it processed; `seen` gets their types in order.
int consume(Ring &q, int which, rb_sequence **deps, int32_t ndeps, int take, int64_t total,
            int64_t *seen)
{
    rb_ring *r = &q.ring;
    rb_consumer *c = &q.consumers[which];
    int64_t next = 0;
    int n = 0;
    while (next < total) {
        int64_t avail = rb_wait_for(r, deps, ndeps, next, RB_WAIT_BLOCK, &c->alert, 0);
        if (avail < next)
            break;                                       // alerted
        for (int64_t s = next; s <= avail; s++) {
            int64_t type;
            void *p = rb_slot_read(r, s, &type, take);
            RL_ASSERT(p == payload_of(s));               // each event once, intact
            seen[n++] = type;
        }
        rb_sequence_set(&c->sequence, avail);
        rb_wake(r);
        next = avail + 1;
    }
    return n;
}

// One producer, one consumer, capacity 2, 4 events: wrap-around, gating and park/wake on
// both sides (the consumer parks for events, the producer for room).
struct spsc_model : rl::test_suite<spsc_model, 2> {
    Ring *q;
    void before() { q = new Ring(2, 0); q->gate_on(0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            for (int64_t i = 0; i < 4; i++)
                publish(*q, i);
        } else {
            int64_t seen[4];
            RL_ASSERT(consume(*q, 0, 0, 0, 1, 4, seen) == 4);
            for (int i = 0; i < 4; i++)
                RL_ASSERT(seen[i] == i);                 // FIFO, no loss, no duplicate
        }
    }
};

// Two producers x 2 events on the multi-producer sequencer (CAS claims, availability flags),
// capacity 2: per-producer FIFO, nothing lost or repeated.
struct mpsc_model : rl::test_suite<mpsc_model, 3> {
    Ring *q;
    void before() { q = new Ring(2, 1); q->gate_on(0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        if (idx < 2) {
            for (int64_t i = 0; i < 2; i++)
                publish(*q, idx * 10 + i);
        } else {
            int64_t seen[4];
            RL_ASSERT(consume(*q, 0, 0, 0, 1, 4, seen) == 4);
            int64_t next[2] = {0, 0};
            for (int i = 0; i < 4; i++) {
                int64_t pid = seen[i] / 10, seq = seen[i] % 10;
                RL_ASSERT(pid == 0 || pid == 1);
                RL_ASSERT(seq == next[pid]);
                next[pid]++;
            }
        }
    }
};

// publish_many: claims of several slots at once, cut short by the room there is (capacity
// 2), racing a single-slot producer; the availability scan must stop at the first gap.
struct batch_model : rl::test_suite<batch_model, 3> {
    Ring *q;
    void before() { q = new Ring(2, 1); q->gate_on(0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        rb_ring *r = &q->ring;
        if (idx == 0) {
            int64_t done = 0;
            while (done < 3) {
                int64_t hi, got = rb_claim_upto(r, 3 - done, &hi);
                if (got == 0) {
                    int64_t wrap_point = rb_claimed(r) + 1 - r->capacity;
                    rb_park_begin(r);
                    if (!rb_room_for(r, wrap_point))
                        rb_park_wait(r, 0);
                    rb_park_end(r);
                    continue;
                }
                for (int64_t s = hi - got + 1; s <= hi; s++)
                    rb_slot_write(r, s, done++, payload_of(s));
                rb_publish(r, hi - got + 1, hi);
                rb_wake(r);
            }
        } else if (idx == 1) {
            publish(*q, 10);
        } else {
            int64_t seen[4];
            RL_ASSERT(consume(*q, 0, 0, 0, 1, 4, seen) == 4);
            int64_t next0 = 0, n1 = 0;
            for (int i = 0; i < 4; i++) {
                if (seen[i] == 10)
                    n1++;
                else
                    RL_ASSERT(seen[i] == next0++);
            }
            RL_ASSERT(next0 == 3 && n1 == 1);
        }
    }
};

// The diamond: consumers 1 and 2 in parallel (they borrow payloads), consumer 0 after both
// (it takes them, writing the slot); the producer gates on consumer 0 only. A stage running
// ahead of its dependencies would race with their slot reads.
struct diamond_model : rl::test_suite<diamond_model, 4> {
    Ring *q;
    void before() { q = new Ring(2, 1); q->gate_on(0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        int64_t seen[3];
        if (idx == 0) {
            for (int64_t i = 0; i < 3; i++)
                publish(*q, i);
        } else if (idx == 1) {
            rb_sequence *deps[2] = {&q->consumers[1].sequence, &q->consumers[2].sequence};
            RL_ASSERT(consume(*q, 0, deps, 2, 1, 3, seen) == 3);
            for (int i = 0; i < 3; i++)
                RL_ASSERT(seen[i] == i);
        } else {
            RL_ASSERT(consume(*q, idx - 1, 0, 0, 0, 3, seen) == 3);
            for (int i = 0; i < 3; i++)
                RL_ASSERT(seen[i] == i);
        }
    }
};

// The last event of a burst: nothing published later would make up for a lost wake-up, so
// the consumer parked for it must be woken by this very publish.
struct wake_model : rl::test_suite<wake_model, 2> {
    Ring *q;
    void before() { q = new Ring(2, 0); q->gate_on(0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            publish(*q, 7);
        } else {
            int64_t seen[1];
            RL_ASSERT(consume(*q, 0, 0, 0, 1, 1, seen) == 1);
            RL_ASSERT(seen[0] == 7);
        }
    }
};

// stop(): a consumer parked with nothing to do must wake up for the alert.
struct stop_model : rl::test_suite<stop_model, 2> {
    Ring *q;
    void before() { q = new Ring(2, 0); q->gate_on(0); }
    void after() { delete q; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            rb_store_release_i32(&q->consumers[0].alert, RB_STOP_NOW);
            rb_wake(&q->ring);
        } else {
            int64_t seen[1];
            RL_ASSERT(consume(*q, 0, 0, 0, 1, 1, seen) == 0);
        }
    }
};

// stop(drain=True)'s hard stop target, as ringbus._driver runs it. The stopping thread reads
// the cursor once, stores it as the target, then raises the consumer's alert (release both),
// all while it holds the GIL, and wakes the consumer. The consumer waits without the GIL and
// takes it for each batch: it caps the batch at the target once it acquires the alert. A
// producer without the GIL (the record ring's C API) keeps publishing throughout. The
// consumer must process exactly the events up to the target (everything published before
// the stop call), nothing past it, and then stop. The GIL is a mutex here: it is what makes
// "read the cursor, raise the alert" one step for the consumer's batch decision.
struct stop_target_model : rl::test_suite<stop_target_model, 3> {
    Ring *q;
    rb_mutex_t gil;
    int64_t target;              // written by the stopper, read after the threads joined
    int64_t last;                // the consumer's last processed sequence, likewise
    void before()
    {
        q = new Ring(4, 0);
        q->gate_on(0);
        RB_MUTEX_INIT(&gil);
        target = -2;
        last = -2;
    }
    void after()
    {
        RL_ASSERT(target >= -1);
        RL_ASSERT(last == target);
        RB_MUTEX_DESTROY(&gil);
        delete q;
    }
    void thread(unsigned idx)
    {
        rb_ring *r = &q->ring;
        rb_consumer *c = &q->consumers[0];
        if (idx == 0) {
            for (int64_t i = 0; i < 3; i++)
                publish(*q, i);
        } else if (idx == 1) {
            RB_MUTEX_LOCK(&gil);
            target = rb_sequence_get(&r->cursor);
            rb_stop_set_target(&r->stop_target, target);
            rb_store_release_i32(&c->alert, RB_STOP_WHEN_DONE);
            RB_MUTEX_UNLOCK(&gil);
            rb_wake(r);
        } else {
            int64_t next = 0;
            for (;;) {
                int64_t avail = rb_wait_for(r, 0, 0, next, RB_WAIT_BLOCK, &c->alert, 0);
                RB_MUTEX_LOCK(&gil);
                avail = rb_stop_limit(&r->stop_target, &c->alert, avail);
                if (avail >= next) {
                    for (int64_t s = next; s <= avail; s++) {
                        int64_t type;
                        RL_ASSERT(rb_slot_read(r, s, &type, 1) == payload_of(s));
                    }
                    rb_sequence_set(&c->sequence, avail);
                    rb_wake(r);
                    next = avail + 1;
                    RB_MUTEX_UNLOCK(&gil);
                    continue;
                }
                bool done = rb_load_acquire_i32(&c->alert) == RB_STOP_WHEN_DONE
                            && rb_stop_reached(&r->stop_target, next);
                RB_MUTEX_UNLOCK(&gil);
                if (done)
                    break;
                RB_YIELD();      // events up to the target are still being published
            }
            last = next - 1;
        }
    }
};

// Priority lanes (ringbus._lanes): one consumer waits for two rings at once through
// rb_lanes_wait. The lower lane's ring parks on, and wakes, the higher lane's parker (its
// `park`, as RingBuffer._share_parker sets it), so a publish into either lane wakes the one
// waiter, and the consumer's release of a lane wakes a producer parked for room in it
// (capacity 2, three events). Each lane's events arrive once, in order; a lost wake-up
// deadlocks.
struct lanes_model : rl::test_suite<lanes_model, 3> {
    Ring *hi, *lo;
    void before()
    {
        hi = new Ring(2, 0);
        hi->gate_on(0);
        lo = new Ring(2, 0);
        lo->gate_on(0);
        lo->ring.park = &hi->ring.parker;
    }
    void after() { delete hi; delete lo; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            for (int64_t i = 0; i < 3; i++)
                publish(*lo, 10 + i);
        } else if (idx == 1) {
            publish(*hi, 20);
        } else {
            rb_sequencer sh = rb_ring_sequencer(&hi->ring), sl = rb_ring_sequencer(&lo->ring);
            const rb_sequencer *qs[2] = {&sh, &sl};
            rb_atomic_i32 *alerts[2] = {&hi->consumers[0].alert, &lo->consumers[0].alert};
            Ring *rings[2] = {hi, lo};
            int64_t next[2] = {0, 0}, want[2] = {20, 10};
            int got = 0;
            while (got < 4) {
                int32_t i = rb_lanes_wait(qs, next, alerts, 2, RB_WAIT_BLOCK, 0, 0);
                RL_ASSERT(i == 0 || i == 1);
                rb_ring *r = &rings[i]->ring;
                int64_t avail = rb_sequencer_barrier_available(qs[i], 0, 0, next[i]);
                RL_ASSERT(avail >= next[i]);
                for (int64_t s = next[i]; s <= avail; s++) {
                    int64_t type;
                    RL_ASSERT(rb_slot_read(r, s, &type, 1) == payload_of(s));
                    RL_ASSERT(type == want[i]++);        // per lane: FIFO, once each
                    got++;
                }
                rb_sequence_set(&rings[i]->consumers[0].sequence, avail);
                rb_wake(r);
                next[i] = avail + 1;
            }
            RL_ASSERT(want[0] == 21 && want[1] == 13);
        }
    }
};

}  // namespace

int main(int argc, char **argv)
{
    static const rb_models::model_entry models[] = {
        {"spsc", rb_models::run<spsc_model>},
        {"mpsc", rb_models::run<mpsc_model>},
        {"diamond", rb_models::run<diamond_model>},
        {"batch", rb_models::run<batch_model>},
        {"wake", rb_models::run<wake_model>},
        {"stop", rb_models::run<stop_model>},
        {"stop_target", rb_models::run<stop_target_model>},
        {"lanes", rb_models::run<lanes_model>},
    };
    return rb_models::model_main(argc, argv, models);
}
