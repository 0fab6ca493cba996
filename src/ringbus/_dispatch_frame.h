/* The dispatch frames of a thread and the hazard slots that free a swapped-out handler array
 * as soon as no dispatch that loaded it is still running.
 *
 * Included by _dispatch.pyx alone: a `static` variable exists once per compiled module that
 * includes it, and only the dispatch table may own these (ringbus._dispatch.emit_depth() and
 * current_event() read them for everyone else).
 *
 * Frames. Every dispatch pushes an rb_frame on the C stack and links it from a C
 * thread-local: what current_event() needs (the table, the type id, the borrowed payload,
 * the ring sequence). Only the owning thread ever reads its frames, so they are plain
 * memory.
 *
 * Hazards (hazard pointers, Michael 2004). A dispatch announces the HandlerArray it loaded
 * from its slot in this thread's hazard slot for its depth before using it; the table's
 * registration side, after swapping an array out, frees it only when no thread's hazard slot
 * holds it. Per array: one long handler pins the one array it loaded, never the arrays
 * swapped after it (an epoch or a table-wide in-flight count would pin them all). The
 * hazard slots live in heap records, one per thread that ever dispatched, linked into a
 * process-wide registry: other threads read them while the owner runs, which they could
 * not do with frames on the owner's stack (a frame may be popped and its stack reused under
 * the reader).
 *
 * The TLS model is initial-exec: the default model for a dlopen'ed module calls
 * __tls_get_addr on every access (seen in perf). Three words fit the static TLS surplus
 * glibc keeps for modules.
 */
#ifndef RINGBUS_DISPATCH_FRAME_H
#define RINGBUS_DISPATCH_FRAME_H

#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "_atomic.h"

#if defined(__GNUC__)
#define RINGBUS_TLS_MODEL __attribute__((tls_model("initial-exec")))
#define RB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define RINGBUS_TLS_MODEL
#define RB_UNLIKELY(x) (x)
#endif

/* rb_frame.sequence of an event that did not come through a ring slot. */
#define RB_NO_SEQUENCE INT64_MIN

typedef struct rb_frame {
    struct rb_frame *outer;     /* the dispatch this one is nested in; NULL: outermost */
    PyObject *table;            /* borrowed: the DispatchTable dispatching */
    PyObject *payload;          /* borrowed: the caller holds it for the whole dispatch */
    PyObject *event;            /* borrowed: a finished current_event() object (the resumed
                                   step of a suspended async handler), else NULL */
    int64_t sequence;           /* the event's ring sequence, or RB_NO_SEQUENCE */
    Py_ssize_t type_id;
} rb_frame;

static _Thread_local rb_frame *ringbus_frame_top RINGBUS_TLS_MODEL = NULL;

/* Nesting depth of dispatch on this thread, kept apart from the frames (not read through
 * them): a C stack switched under a dispatch (greenlet) leaves a frame pointer that must not
 * be followed, and this count still bounds what each stack holds. It counts across buses,
 * which is what bounds the C stack. */
static _Thread_local int ringbus_emit_depth RINGBUS_TLS_MODEL = 0;

/* ------------------------------------------------------------------------------ hazards */

/* Hazard slots per chunk: one per nesting depth. The default max_depth (64) needs one
 * chunk; deeper nesting links more, made on first use and kept until the thread exits. */
#define RB_HAZARDS_PER_CHUNK 64

typedef struct rb_hazard_chunk {
    /* (intptr_t) the HandlerArray the dispatch at this depth uses; 0: none. */
    rb_atomic_i64 slot[RB_HAZARDS_PER_CHUNK];
    /* (intptr_t) the chunk of the next RB_HAZARDS_PER_CHUNK depths, 0: none yet. */
    rb_atomic_i64 next;
} rb_hazard_chunk;

typedef struct rb_thread_hazards {
    rb_hazard_chunk chunk;
    struct rb_thread_hazards *prev, *next;     /* the registry list, under rb_registry_lock */
} rb_thread_hazards;

static _Thread_local rb_thread_hazards *ringbus_hazards RINGBUS_TLS_MODEL = NULL;

/* The registry: every thread's record. Registration (a thread's first dispatch), a thread's
 * exit and the scans take this lock; the dispatch itself never does. Nobody holding it
 * waits for the GIL, so a thread holding the GIL may wait for it. */
static pthread_mutex_t rb_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static rb_thread_hazards *rb_registry = NULL;
static pthread_key_t rb_registry_key;
static pthread_once_t rb_registry_once = PTHREAD_ONCE_INIT;
static int rb_registry_ready = 0;

static void rb_hazards_free(rb_thread_hazards *h)
{
    rb_hazard_chunk *c = (rb_hazard_chunk *)(intptr_t)rb_load_relaxed_i64(&h->chunk.next);
    while (c != NULL) {
        rb_hazard_chunk *next = (rb_hazard_chunk *)(intptr_t)rb_load_relaxed_i64(&c->next);
        free(c);
        c = next;
    }
    free(h);
}

static void rb_registry_unlink(rb_thread_hazards *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        rb_registry = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
}

/* pthread key destructor: the thread is exiting, after its last dispatch returned (its
 * stack is unwound, so every hazard slot of it is 0). */
static void rb_thread_exit(void *p)
{
    rb_thread_hazards *h = (rb_thread_hazards *)p;
    pthread_mutex_lock(&rb_registry_lock);
    rb_registry_unlink(h);
    pthread_mutex_unlock(&rb_registry_lock);
    if (ringbus_hazards == h)
        ringbus_hazards = NULL;
    rb_hazards_free(h);
}

/* fork(): the child has one thread. Whatever another thread held (the lock, hazards of
 * dispatches that will never finish) stays in the parent. */
static void rb_fork_prepare(void) { pthread_mutex_lock(&rb_registry_lock); }
static void rb_fork_parent(void) { pthread_mutex_unlock(&rb_registry_lock); }
static void rb_fork_child(void)
{
    rb_thread_hazards *h = rb_registry, *next;
    while (h != NULL) {
        next = h->next;
        if (h != ringbus_hazards)
            rb_hazards_free(h);
        h = next;
    }
    rb_registry = ringbus_hazards;
    if (rb_registry != NULL)
        rb_registry->prev = rb_registry->next = NULL;
    pthread_mutex_unlock(&rb_registry_lock);    /* taken by this thread in rb_fork_prepare */
}

static void rb_registry_init(void)
{
    if (pthread_key_create(&rb_registry_key, rb_thread_exit) != 0)
        return;
    pthread_atfork(rb_fork_prepare, rb_fork_parent, rb_fork_child);
    rb_registry_ready = 1;
}

/* Register this thread: its first dispatch. 0: out of memory. */
static int rb_hazards_register(void)
{
    rb_thread_hazards *h;
    pthread_once(&rb_registry_once, rb_registry_init);
    if (!rb_registry_ready)
        return 0;
    h = (rb_thread_hazards *)calloc(1, sizeof(rb_thread_hazards));
    if (h == NULL)
        return 0;
    if (pthread_setspecific(rb_registry_key, h) != 0) {
        free(h);
        return 0;
    }
    pthread_mutex_lock(&rb_registry_lock);
    h->next = rb_registry;
    if (rb_registry != NULL)
        rb_registry->prev = h;
    rb_registry = h;
    pthread_mutex_unlock(&rb_registry_lock);
    ringbus_hazards = h;
    return 1;
}

/* A free hazard slot of this thread when the common case does not apply: the thread's first
 * dispatch, a depth past the first chunk, or the slot of `depth` in use. That last one
 * takes a C stack switched under a dispatch (greenlet): another dispatch's slot is never
 * overwritten, the first free one is taken instead. NULL: out of memory. */
static rb_atomic_i64 *rb_hazard_slot_slow(int depth)
{
    if (ringbus_hazards == NULL && !rb_hazards_register())
        return NULL;
    rb_hazard_chunk *c = &ringbus_hazards->chunk;
    int i = depth - 1;
    for (;;) {
        for (; i < RB_HAZARDS_PER_CHUNK; i++) {
            /* Relaxed: only this thread writes its slots. */
            if (rb_load_relaxed_i64(&c->slot[i]) == 0)
                return &c->slot[i];
        }
        i = i - RB_HAZARDS_PER_CHUNK;
        rb_hazard_chunk *next = (rb_hazard_chunk *)(intptr_t)rb_load_relaxed_i64(&c->next);
        if (next == NULL) {
            next = (rb_hazard_chunk *)calloc(1, sizeof(rb_hazard_chunk));
            if (next == NULL)
                return NULL;
            /* Release: a scanner that acquires the link sees the chunk's zeroed slots. */
            rb_store_release_i64(&c->next, (int64_t)(intptr_t)next);
        }
        c = next;
    }
}

/* A free hazard slot of this thread for a dispatch at `depth` (>= 1): the one of its depth
 * (free unless the C stack was switched under a dispatch). NULL: out of memory. */
static inline rb_atomic_i64 *rb_hazard_slot(int depth)
{
    rb_thread_hazards *h = ringbus_hazards;
    if (RB_UNLIKELY(h == NULL || depth > RB_HAZARDS_PER_CHUNK
                    || rb_load_relaxed_i64(&h->chunk.slot[depth - 1]) != 0))
        return rb_hazard_slot_slow(depth);
    return &h->chunk.slot[depth - 1];
}

/* Between a dispatch's store of its hazard and its re-check of the slot's generation, and
 * between the registration side's swap and its scan of the hazards: each side stores, then
 * loads the other's variable, which only a full (store-load) fence on both sides orders
 * (without it, each could miss the other's store: the dispatch uses an array the scan
 * did not see announced). Free-threaded CPython: seq_cst. With the GIL the dispatch's
 * load-announce-recheck runs inside one GIL hold and the swap and scan inside another, so
 * the GIL's hand-off already orders them: a compiler barrier is enough, and emit keeps its
 * cost. The model-checking build keeps the fence. */
static inline void rb_hazard_fence(void)
{
#if defined(Py_GIL_DISABLED) || defined(RINGBUS_RELACY) || defined(RINGBUS_HAZARD_FENCE)
    rb_fence_seq_cst();
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Whether any thread's hazard slot holds `array` now. The caller swapped `array` out of
 * every slot and issued rb_fence_seq_cst() since: a dispatch that announces it after this
 * scan started re-checks the generation, sees the swap and retries, so "not held" stays
 * true and the array may be freed. */
static int rb_hazard_held(PyObject *array)
{
    int64_t want = (int64_t)(intptr_t)array;
    int held = 0;
    pthread_mutex_lock(&rb_registry_lock);
    for (rb_thread_hazards *h = rb_registry; h != NULL && !held; h = h->next) {
        rb_hazard_chunk *c = &h->chunk;
        while (c != NULL && !held) {
            for (int i = 0; i < RB_HAZARDS_PER_CHUNK; i++) {
                /* Acquire: pairs with the release that clears a hazard, so that all the
                 * dispatch's reads of the array happen before we let it be freed. */
                if (rb_load_acquire_i64(&c->slot[i]) == want) {
                    held = 1;
                    break;
                }
            }
            c = (rb_hazard_chunk *)(intptr_t)rb_load_acquire_i64(&c->next);
        }
    }
    pthread_mutex_unlock(&rb_registry_lock);
    return held;
}

#endif /* RINGBUS_DISPATCH_FRAME_H */
