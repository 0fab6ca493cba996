# The ring buffer between publishers and consumers: a preallocated power-of-two ring of
# (event type, payload) slots, a single- or multi-producer sequencer, and its consumers
# (stages), each with its own sequence. The algorithms are in _ringbuffer.h; this is the
# Python-object side: ownership of payload references, policies, threads.
#
# C-level interface for the Bus (all need the GIL):
#   publish_c(t, payload, timeout) -> 1 published, 0 dropped (overflow="drop"). The overflow
#       rule: a full ring waits for room up to `timeout` seconds (< 0: the policy's own wait,
#       forever under "block", none under "raise" and "drop"), then the policy acts: "drop"
#       drops and counts, "block" and "raise" raise RingFull (also when waiting could only
#       deadlock) or ConsumerGone.
#   try_publish_c(t, payload) -> 1 published, 0 full (never blocks, never counts a drop).
#   All three: called by a handler of the ring's own "dispatch" consumer while the ring is
#   full, the event goes into that consumer's follow-up backlog instead (see RingBuffer).
#   drain_c(table, max_events) -> events dispatched on this thread (max_events < 0: until empty).
#   start_c(table) / stop_c(drain, timeout): the consumer threads.
#   timeout_arg(timeout) -> the double publish_c/stop_c take for a Python `timeout` argument
#       (None -> -1; ValueError naming `timeout` if negative or NaN).
# `t` must be a checked id of the table that will dispatch it (DispatchTable.check_id).
# Sketch of the wiring (Bus keeps `cdef RingBuffer _ring`):
#   def publish(self, event_type, payload=None, timeout=None):
#       return self._ring.publish_c(<checked id>, payload, timeout_arg(timeout)) == 1
#   def drain(self, max_events=None): return self._ring.drain_c(self, -1 or max_events)
#   def start(self): self._ring.start_c(self)
#   def stop(self, drain=True, timeout=None): self._ring.stop_c(drain, timeout_arg(timeout))
#   def stage(self, name, handler, **kw): return self._ring.stage(name, handler, **kw)
#   pending / stats(): self._ring.pending, self._ring.stats()
cimport cython
from libc.stdint cimport int32_t, int64_t
from ringbus._dispatch cimport DispatchTable
from ringbus._driver cimport Consumer, Driver
from ringbus._ringbuffer cimport rb_ring, rb_slot, rb_consumer, RB_MAX_GATING
from ringbus._atomic cimport rb_atomic_i32, rb_sequence
from ringbus._signal cimport rb_signal


cdef double timeout_arg(object timeout) except? -2

@cython.final
cdef class Stage(Consumer):
    # One consumer of a ring: a name, what it runs per event, its dependencies. Its
    # rb_consumer (sequence + alert flag, the driver's Consumer) is allocated apart,
    # cache-line aligned, because other threads poll it.
    cdef object _handler            # callable(event_type, payload), or list -> None when batch
    cdef DispatchTable _table       # set instead of _handler: dispatch through a table
    cdef bint _batch                # _handler takes a list of (event_type, payload) per batch
    cdef object _on_error           # "log", "raise" or callable(stage, event_type, payload, exc)
    cdef tuple _after               # Stage objects this one runs after (keeps _deps valid)
    cdef bint _take                 # the one last stage: moves payloads out of the slots
    cdef readonly unsigned long long errors   # Exceptions from a callable handler

    cdef int _call(self, int64_t t, object payload) except -1
    cdef int _call_batch(self, list batch) except -1
    cdef int _failed_with(self, object t, object payload, object exc) except -1


# no_gc_clear: the slots' payloads and the stages (whose sequences the ring's gating array
# points to) must stay valid until __dealloc__, even when a cycle collection frees the ring.
@cython.final
@cython.no_gc_clear
cdef class RingBuffer(Driver):
    # The object-slot face of the driver: slots hold (type, strong reference); the region is
    # this process's heap (a pointer to a Python object means nothing elsewhere).
    cdef rb_ring *_ring             # owned (posix_memalign): sequencer state, parker
    cdef rb_slot *_slots            # owned; each non-NULL payload is a strong reference
    cdef rb_atomic_i32 *_available  # owned, multi-producer only
    cdef readonly Py_ssize_t capacity
    cdef readonly str producers     # "single" or "multi"
    cdef readonly str overflow      # "block", "raise" or "drop"
    cdef readonly str wait          # "block", "spin", "yield" or "sleep"
    cdef int _overflow
    cdef Stage _main                # the stage named "dispatch": drain()/start(table)
                                    # (the driver's _consumers: every stage, _main first)
    cdef bint _wake_on_publish      # a consumer thread may park (wait="block" and started)
    # An event-loop consumer (ringbus.aio) instead of drain() or threads. It waits for events
    # by arming _events and watching _signal_fd, which the producer that takes the signal
    # writes; coroutines wait for room by arming _room, and the consumer that takes it calls
    # _room_callback (GIL held). The signals are owned and cache-line aligned.
    cdef rb_signal *_events
    cdef rb_signal *_room
    cdef int _signal_fd             # -1: no event-loop consumer attached
    cdef object _loop_thread        # that loop's thread id: a blocking publish there would hang
    cdef bint _loop_draining        # inside the event-loop consumer's own drain
    cdef object _room_callback      # None until a coroutine waited for room
    # Follow-ups: events the "dispatch" stage's own handlers publish while the ring is full
    # (waiting for room there could only deadlock). A FIFO of (after, type, payload), touched
    # only by the consuming thread (GIL held); an entry is dispatched right after ring
    # sequence `after` (the last claimed one when it was published). Slow path only: the
    # consumer's per-event cost is one compare against _backlog_due.
    cdef object _backlog            # collections.deque
    cdef readonly Py_ssize_t backlog_limit   # its bound (constructor's backlog=)
    cdef Py_ssize_t _backlog_n      # len(_backlog), for noexcept counters
    cdef int64_t _backlog_due       # `after` of the oldest entry; INT64_MAX when empty
    cdef int64_t _backlog_in        # entries ever queued (counted in published)
    cdef int64_t _backlog_out       # entries ever taken for dispatch (counted in dispatched)
    cdef bint _backlog_ok           # the ring has no stage but "dispatch" (see _link)
    # End of batch (the Disruptor's endOfBatch flag): callables the "dispatch" stage runs on
    # its thread after each batch it dispatched, so that a handler may gather what it sends
    # on (ringbus.workers' router) and send it once per batch. None: no such callable, and
    # the cost is one compare per batch.
    cdef object _batch_end          # list or None
    cdef unsigned long _batch_thread  # the thread inside such a batch; 0: none
    cdef bint _stopping_drain       # stop(drain=True) in progress: the consumer's own
                                    # publishes go to the backlog (the ring's stop target
                                    # would leave them queued)
    # Publish stamps (metrics): a clock tick (_ticks.h) per slot, written before the slot is
    # published, read by the "dispatch" stage before it releases the slot. Allocated the
    # first time stamping is turned on, freed with the ring (a consumer mid-batch may still
    # read it after stamping is turned off). Sequences >= _stamp_from carry a stamp;
    # INT64_MAX while stamping is off, so the consumer's cost then is one compare.
    cdef unsigned long long *_stamps
    cdef bint _stamping
    cdef int _stamp_tsc             # the tick source (_ticks.h): _dispatch's choice
    cdef unsigned long long _stamp_mult   # and its ticks-to-ns multiplier
    cdef int64_t _stamp_from
    # Priority lanes: the ring whose parker this one parks on and wakes (its rb_ring's
    # `park`), kept alive as long as this ring is; None: its own parker.
    cdef object _park_owner

    cdef int publish_c(self, Py_ssize_t t, object payload, double timeout) except -1
    cdef int try_publish_c(self, Py_ssize_t t, object payload) except -1
    cdef Py_ssize_t publish_many_c(self, Py_ssize_t t, object payloads, double timeout) except -1
    cdef Py_ssize_t drain_c(self, DispatchTable table, Py_ssize_t max_events) except -1
    cdef int start_c(self, DispatchTable table) except -1
    cdef int stop_c(self, bint drain, double timeout) except -1

    cdef Stage _new_stage(self, str name, object handler, DispatchTable table, bint batch,
                          object on_error)
    cdef int _link(self) except -1
    cdef Stage _stage_arg(self, object ref, str what)
    cdef int _write_one(self, int64_t seq, Py_ssize_t t, object payload) except -1
    cdef int _write(self, int64_t lo, int64_t hi, Py_ssize_t t, tuple items,
                    Py_ssize_t offset, object payload) except -1
    cdef int _end_batch(self) except -1
    cdef Py_ssize_t _consume(self, Stage st, DispatchTable table, int64_t next,
                             int64_t hi) except -1
    cdef int64_t _cursor(self) noexcept
    cdef int64_t _pending(self) noexcept
    cdef int _ready(self) except -1
    cdef int _share_parker(self, RingBuffer owner) except -1
    cdef bint _own_followup(self) noexcept
    cdef int _followup(self, Py_ssize_t t, object payload, bint trying) except -1
    cdef Py_ssize_t _flush_backlog(self, DispatchTable table, int64_t upto) except -1
    cdef Py_ssize_t _followup_many(self, Py_ssize_t t, tuple items, Py_ssize_t done) except -1
    cdef unsigned long long _record_delay(self, DispatchTable table, Py_ssize_t t,
                                          int64_t s) noexcept
