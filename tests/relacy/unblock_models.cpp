// Relacy models of the unblock protocol (src/ringbus/_claimants.h, rb_sequencer_unblock_gap
// in _ringbuffer.h), compiled from those very files: a shared record ring with several
// producers and claims tracked, producer A killed at one step of its publish (model
// parameter: after recording ATTEMPT, after its CAS won, after recording WON, after writing
// its record, or never: a producer that is only slow), producer B publishing two records,
// and a consumer that delivers what is published and, whenever it is stuck, asks
// rb_sequencer_unblock_gap what it may skip (the model's scheduler stands in for
// unblock_timeout: any wait may have been long enough).
//
// Checked: a skip happens only once A is dead (never a slow producer's claim); nothing B
// publishes is skipped or lost; every delivered record was written (records are rl::var
// words: reading a slot not ordered after its write is a data race); the consumer always
// finishes (a dead claim never stalls the ring: Relacy reports a livelock otherwise).
//
//   g++ -O1 -std=c++11 -w -I<src/ringbus> unblock_models.cpp -o unblock_models
//   ./unblock_models unb_die1|unb_die2|unb_die3|unb_die4|unb_slow [iterations] [random|bound]
#define RINGBUS_RELACY 1

struct rb_claimants;
struct rb_claimant;
rb_claimant *model_claimant(rb_claimants *t);
void model_point(int point);
#define RB_MODEL_CLAIMANT(t) model_claimant(t)
#define RB_MODEL_POINT(point) model_point(point)

#include "_recordring.h"
#include "model_main.hpp"
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

struct Died {};                  // thrown where the model kills producer A

int g_die_at;                    // the step A dies at (0: never)
rl::atomic<int> *g_dead;         // A's death, as rb_pid_gone would tell it
rb_claimants *g_table;

int model_gone(int64_t pid)
{
    return pid == 1 && g_dead->load(rl::mo_relaxed, $) != 0;
}

struct Region {
    char *mem;
    rb_record_ring rr;

    Region()
    {
        int64_t available_offset, records_offset, capacity = 4;
        int64_t size = rb_record_layout(capacity, 8, 1, &available_offset, &records_offset);
        mem = new char[size];
        new (mem) rb_record_header;
        for (int64_t i = 0; i < capacity; i++) {
            new (mem + available_offset + i * sizeof(rb_atomic_i32)) rb_atomic_i32;
            new (mem + records_offset + i * sizeof(rb_record_cell)) rb_record_cell;
        }
        rb_record_region_init(mem, capacity, 8, 1, 0);
        RL_ASSERT(rb_record_ring_attach(&rr, mem, RB_OVERFLOW_BLOCK, RB_WAIT_SPIN) == 0);
        rr.seq.claimants = &rr.header->claimants;
        g_table = rr.seq.claimants;
        // Each producer's entry, as rb_claimant_register would take it: A is pid 1, B pid 2.
        for (int i = 0; i < 2; i++)
            rb_store_relaxed_i64(&g_table->entry[i].pid, i + 1);
    }
    ~Region()
    {
        rb_record_header *h = reinterpret_cast<rb_record_header *>(mem);
        rb_record_region_destroy(mem);
        for (int64_t i = 0; i < 4; i++) {
            rr.seq.available[i].~rb_atomic_i32();
            rr.records[i].~rb_record_cell();
        }
        h->~rb_record_header();
        delete[] mem;
    }
};

template <int DieAt>
struct unblock_model : rl::test_suite<unblock_model<DieAt>, 3> {
    Region *g;
    rl::atomic<int> dead;
    void before()
    {
        g_die_at = DieAt;
        dead.store(0, rl::mo_relaxed, $);
        g_dead = &dead;
        g = new Region();
    }
    void after() { delete g; }
    void thread(unsigned idx)
    {
        if (idx == 0) {                      // A: one record, killed at step DieAt
            int64_t v = 100;
            try {
                RL_ASSERT(rb_record_publish(&g->rr, &v, -1.0) == RB_RECORD_PUBLISHED);
            } catch (Died &) {
                dead.store(1, rl::mo_relaxed, $);
            }
        } else if (idx == 1) {               // B: two records
            for (int64_t v = 200; v < 202; v++)
                RL_ASSERT(rb_record_publish(&g->rr, &v, -1.0) == RB_RECORD_PUBLISHED);
        } else {
            consume();
        }
    }
    void consume()
    {
        int64_t next = 0, b_next = 200;
        bool got_a = false;
        // Done when B's two records and A's (unless A died before publishing it) are in.
        while (b_next < 202 || !(got_a || dead.load(rl::mo_relaxed, $))) {
            int64_t avail = rb_record_available(&g->rr, next);
            if (avail >= next) {
                for (; next <= avail; next++) {
                    int64_t v;
                    RB_RECORD_COPY_OUT(&v, rb_record_slot(&g->rr, next), 8);
                    if (v == 100) {
                        RL_ASSERT(!got_a);
                        got_a = true;
                    } else {
                        RL_ASSERT(v == b_next);          // B's, once, in order
                        b_next++;
                    }
                }
                rb_record_release(&g->rr, avail);
                continue;
            }
            int64_t end = rb_sequencer_unblock_gap(&g->rr.seq, next, model_gone);
            if (end >= next) {
                RL_ASSERT(dead.load(rl::mo_relaxed, $));   // only a dead claim
                RL_ASSERT(!got_a);
                RL_ASSERT(end == next);                  // A's one slot, nothing of B's
                rb_record_release(&g->rr, end);
                next = end + 1;
                continue;
            }
            rl::yield(1, $);
        }
        RL_ASSERT(!got_a || DieAt == 0);
    }
};

}  // namespace

rb_claimant *model_claimant(rb_claimants *t)
{
    // Thread 0 is A (entry 0), thread 1 is B (entry 1); the consumer never claims.
    return &t->entry[rl::thread_index() == 0 ? 0 : 1];
}

void model_point(int point)
{
    if (rl::thread_index() == 0 && point == g_die_at)
        throw Died();
}

int main(int argc, char **argv)
{
    static const rb_models::model_entry models[] = {
        {"unb_die1", rb_models::run<unblock_model<1> >},
        {"unb_die2", rb_models::run<unblock_model<2> >},
        {"unb_die3", rb_models::run<unblock_model<3> >},
        {"unb_die4", rb_models::run<unblock_model<4> >},
        {"unb_slow", rb_models::run<unblock_model<0> >},
    };
    return rb_models::model_main(argc, argv, models);
}
