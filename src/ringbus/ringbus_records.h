/* ringbus's C API for compiled producers: publish fixed-size records into a
 * ringbus.RecordRing from C, C++ or Cython, without the GIL.
 *
 * Build against the installed package: add ringbus.get_include() to the include path. From
 * Cython, `from ringbus.records cimport ...` (records.pxd declares this header).
 *
 *     ringbus_record_ring *ring = ringbus_record_ring_of(ring_object);   // with the GIL
 *     if (ring == NULL) ...error set...
 *     ...release the GIL...
 *     rc = ringbus_record_publish(ring, &record, -1.0);                  // no GIL needed
 *
 * The functions are ringbus's own, reached through a table of function pointers that the
 * first ringbus_record_ring_of() (or ringbus_records_import()) fetches from the capsule
 * ringbus._records._C_API: nothing of ringbus is compiled into the caller, so the caller needs
 * neither C11 atomics nor the same compiler, and the ring's code is the one RecordRing's
 * Python methods run.
 *
 * A handle is valid while its RecordRing object is alive: keep a reference to the object for
 * as long as any thread may use the handle. `record` points at record_size bytes laid out as
 * the ring's dtype (a C struct that matches it, e.g. numpy's `align=True` dtypes for C
 * structs, or a packed struct for packed dtypes).
 */
#ifndef RINGBUS_RECORDS_H
#define RINGBUS_RECORDS_H

#include <Python.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a function's meaning or the table's layout changes; new functions are added at
 * the table's end without a bump. */
#define RINGBUS_RECORDS_ABI_VERSION 1
#define RINGBUS_RECORDS_CAPSULE "ringbus._records._C_API"

/* What the publish functions return. */
enum {
    RINGBUS_PUBLISHED = 1,
    RINGBUS_FULL = 0,              /* no room now: try_publish, or overflow="raise" */
    RINGBUS_DROPPED = -1,          /* no room: dropped and counted (overflow="drop") */
    RINGBUS_TIMEOUT = -2,          /* no room within the timeout */
    RINGBUS_WOULD_DEADLOCK = -3,   /* called from a handler of this ring's consumer, ring full */
    RINGBUS_CONSUMER_GONE = -4     /* ring full and its consumer thread ended (an exception) */
};

/* A RecordRing's C handle (opaque). */
typedef struct rb_record_ring ringbus_record_ring;

typedef struct ringbus_records_api {
    int abi_version;
    int n_functions;               /* how many function pointers follow */
    /* With the GIL. NULL with TypeError set if `obj` is not a RecordRing. */
    ringbus_record_ring *(*ring_of)(PyObject *obj);
    /* Without the GIL (either is fine). */
    int (*try_publish)(ringbus_record_ring *ring, const void *record);
    int (*publish)(ringbus_record_ring *ring, const void *record, double timeout);
    int64_t (*publish_many)(ringbus_record_ring *ring, const void *records, int64_t n,
                            double timeout, int *status);
    int64_t (*record_size)(const ringbus_record_ring *ring);
    int64_t (*capacity)(const ringbus_record_ring *ring);
} ringbus_records_api;

/* Per translation unit, set once by ringbus_records_import (with the GIL): a C extension
 * made of several .c files calls ringbus_records_import() (or ringbus_record_ring_of) in each
 * file that publishes, before its nogil code runs. */
static const ringbus_records_api *ringbus_records_api_table = NULL;

/* Fetch the function table. With the GIL; 0, or -1 with an exception set. */
static inline int ringbus_records_import(void)
{
    const ringbus_records_api *api;
    if (ringbus_records_api_table != NULL)
        return 0;
    api = (const ringbus_records_api *)PyCapsule_Import(RINGBUS_RECORDS_CAPSULE, 0);
    if (api == NULL)
        return -1;
    if (api->abi_version != RINGBUS_RECORDS_ABI_VERSION) {
        PyErr_Format(PyExc_ImportError,
                     "ringbus record C API version %d, but this module was built against "
                     "version %d: rebuild it against the installed ringbus",
                     api->abi_version, RINGBUS_RECORDS_ABI_VERSION);
        return -1;
    }
    ringbus_records_api_table = api;
    return 0;
}

/* The handle of RecordRing `ring`. With the GIL; NULL with an exception set on error. */
static inline ringbus_record_ring *ringbus_record_ring_of(PyObject *ring)
{
    if (ringbus_records_import() < 0)
        return NULL;
    return ringbus_records_api_table->ring_of(ring);
}

/* One record if there is room now: RINGBUS_PUBLISHED or RINGBUS_FULL. Never waits. */
static inline int ringbus_record_try_publish(ringbus_record_ring *ring, const void *record)
{
    return ringbus_records_api_table->try_publish(ring, record);
}

/* One record. A full ring waits for room up to `timeout` seconds, then the ring's overflow
 * policy acts: RINGBUS_DROPPED (counted) under "drop", else RINGBUS_TIMEOUT. timeout < 0 is
 * the policy's own wait: forever under "block", none under "raise" (RINGBUS_FULL) and "drop"
 * (RINGBUS_DROPPED). Waiting spins briefly, then sleeps until the consumer makes room; if the
 * consumer thread that was started has ended (a handler raised), RINGBUS_CONSUMER_GONE
 * (RINGBUS_DROPPED under "drop"). */
static inline int ringbus_record_publish(ringbus_record_ring *ring, const void *record,
                                         double timeout)
{
    return ringbus_records_api_table->publish(ring, record, timeout);
}

/* `n` records, packed record_size bytes apart, claiming runs of slots at once. Returns how
 * many were published (in order); *status is RINGBUS_PUBLISHED if all were, else why not. */
static inline int64_t ringbus_record_publish_many(ringbus_record_ring *ring, const void *records,
                                                  int64_t n, double timeout, int *status)
{
    return ringbus_records_api_table->publish_many(ring, records, n, timeout, status);
}

static inline int64_t ringbus_record_size(const ringbus_record_ring *ring)
{
    return ringbus_records_api_table->record_size(ring);
}

static inline int64_t ringbus_record_capacity(const ringbus_record_ring *ring)
{
    return ringbus_records_api_table->capacity(ring);
}

#ifdef __cplusplus
}
#endif

#endif /* RINGBUS_RECORDS_H */
