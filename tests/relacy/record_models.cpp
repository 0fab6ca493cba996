// Relacy models of the record ring (src/ringbus/_recordring.h over _ringbuffer.h), compiled
// from those very files: the region is laid out by rb_record_layout and initialized by
// rb_record_region_init, producers run rb_record_publish / rb_record_publish_many as written
// (untimed: a lost wake-up is a reported deadlock), and the consumer does what RecordRing's
// consumer does: wait, read each contiguous run in place, release it. A record is one
// rl::var word, so a read of a slot that is not ordered after its write, or a producer's
// write over a slot the consumer still reads, is a reported data race.
//
//   g++ -O1 -std=c++11 -w -I<src/ringbus> record_models.cpp -o record_models
//   ./record_models MODEL [iterations] [random|bound]
// Models: rec_spsc, rec_mpsc, rec_many, rec_wake. Exit status 0 when the model passes.
#define RINGBUS_RELACY 1
#include "_recordring.h"
#include "model_main.hpp"
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

// One region, as RecordRing allocates it, with the C++ objects the model needs (Relacy's
// atomics and vars register themselves) constructed in place at the offsets the production
// layout gives them; production memory needs no construction.
struct Region {
    char *mem;
    int64_t capacity;
    int multi;
    rb_record_ring rr;

    Region(int64_t capacity_, int multi_) : capacity(capacity_), multi(multi_)
    {
        int64_t available_offset, records_offset;
        int64_t size = rb_record_layout(capacity, 8, multi, &available_offset, &records_offset);
        mem = new char[size];
        new (mem) rb_record_header;
        for (int64_t i = 0; i < capacity; i++) {
            if (multi)
                new (mem + available_offset + i * sizeof(rb_atomic_i32)) rb_atomic_i32;
            new (mem + records_offset + i * sizeof(rb_record_cell)) rb_record_cell;
        }
        rb_record_region_init(mem, capacity, 8, multi, 0);
        RL_ASSERT(rb_record_ring_attach(&rr, mem, RB_OVERFLOW_BLOCK, RB_WAIT_BLOCK) == 0);
    }
    ~Region()
    {
        rb_record_header *h = reinterpret_cast<rb_record_header *>(mem);
        rb_record_region_destroy(mem);
        for (int64_t i = 0; i < capacity; i++) {
            if (multi)
                rr.seq.available[i].~rb_atomic_i32();
            rr.records[i].~rb_record_cell();
        }
        h->~rb_record_header();
        delete[] mem;
    }
};

void publish(Region &g, int64_t value)
{
    RL_ASSERT(rb_record_publish(&g.rr, &value, -1.0) == RB_RECORD_PUBLISHED);
}

// RecordRing's consumer: wait (parking), then per contiguous run: the handlers read the
// records in place, then the run is released. Returns how many records it read.
int consume(Region &g, int64_t total, int64_t *seen)
{
    rb_record_ring *rr = &g.rr;
    int64_t next = 0;
    int n = 0;
    while (next < total) {
        int64_t avail = rb_record_wait_for(rr, next, RB_WAIT_BLOCK, 0);
        if (avail < next)
            break;                                   // alerted
        for (int64_t a = next; a <= avail;) {
            int64_t end = rb_record_run_end(rr, a, avail);
            RL_ASSERT(end >= a && (end & rr->seq.mask) >= (a & rr->seq.mask));   // contiguous
            for (int64_t s = a; s <= end; s++) {
                int64_t v;
                RB_RECORD_COPY_OUT(&v, rb_record_slot(rr, s), 8);
                seen[n++] = v;
            }
            rb_record_release(rr, end);
            a = end + 1;
        }
        next = avail + 1;
    }
    return n;
}

// Per-producer FIFO, nothing lost or repeated: values are producer * 10 + index.
void check_per_producer(const int64_t *seen, int n, const int64_t *per_producer, int producers)
{
    int64_t next[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        int64_t pid = seen[i] / 10, idx = seen[i] % 10;
        RL_ASSERT(pid >= 0 && pid < producers);
        RL_ASSERT(idx == next[pid]);
        next[pid]++;
    }
    for (int p = 0; p < producers; p++)
        RL_ASSERT(next[p] == per_producer[p]);
}

// Single producer, capacity 2, 4 records: wrap-around, runs split at the end of the storage,
// the producer parking for room and the consumer parking for records.
struct rec_spsc_model : rl::test_suite<rec_spsc_model, 2> {
    Region *g;
    void before() { g = new Region(2, 0); }
    void after() { delete g; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            for (int64_t i = 0; i < 4; i++)
                publish(*g, i);
        } else {
            int64_t seen[4], counts[1] = {4};
            RL_ASSERT(consume(*g, 4, seen) == 4);
            check_per_producer(seen, 4, counts, 1);
        }
    }
};

// Two producers x 2 records on the multi-producer sequencer (CAS claims, lap flags).
struct rec_mpsc_model : rl::test_suite<rec_mpsc_model, 3> {
    Region *g;
    void before() { g = new Region(2, 1); }
    void after() { delete g; }
    void thread(unsigned idx)
    {
        if (idx < 2) {
            for (int64_t i = 0; i < 2; i++)
                publish(*g, idx * 10 + i);
        } else {
            int64_t seen[4], counts[2] = {2, 2};
            RL_ASSERT(consume(*g, 4, seen) == 4);
            check_per_producer(seen, 4, counts, 2);
        }
    }
};

// publish_many of 3 records (claims cut short by the room there is, one copy per run) racing
// a single-record producer, capacity 2.
struct rec_many_model : rl::test_suite<rec_many_model, 3> {
    Region *g;
    void before() { g = new Region(2, 1); }
    void after() { delete g; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            int64_t batch[3] = {0, 1, 2};
            int status;
            RL_ASSERT(rb_record_publish_many(&g->rr, batch, 3, -1.0, &status) == 3);
            RL_ASSERT(status == RB_RECORD_PUBLISHED);
        } else if (idx == 1) {
            publish(*g, 10);
        } else {
            int64_t seen[4], counts[2] = {3, 1};
            RL_ASSERT(consume(*g, 4, seen) == 4);
            check_per_producer(seen, 4, counts, 2);
        }
    }
};

// The last record of a burst must wake the consumer parked for it by itself.
struct rec_wake_model : rl::test_suite<rec_wake_model, 2> {
    Region *g;
    void before() { g = new Region(2, 1); }
    void after() { delete g; }
    void thread(unsigned idx)
    {
        if (idx == 0) {
            publish(*g, 7);
        } else {
            int64_t seen[1];
            RL_ASSERT(consume(*g, 1, seen) == 1);
            RL_ASSERT(seen[0] == 7);
        }
    }
};

}  // namespace

int main(int argc, char **argv)
{
    static const rb_models::model_entry models[] = {
        {"rec_spsc", rb_models::run<rec_spsc_model>},
        {"rec_mpsc", rb_models::run<rec_mpsc_model>},
        {"rec_many", rb_models::run<rec_many_model>},
        {"rec_wake", rb_models::run<rec_wake_model>},
    };
    return rb_models::model_main(argc, argv, models);
}
