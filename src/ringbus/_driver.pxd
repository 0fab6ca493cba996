# The ring driver: the producer/consumer protocol every ring kind runs over the sequencer of
# _ringbuffer.h, written once. A ring kind (RingBuffer, RecordRing) is a face over it that
# adds its slot codec (what a slot holds and how it reaches handlers) and its region (where
# its memory lives); the driver owns the rest:
#   - the consumer thread loop (wait without the GIL, stop target, alerts),
#   - the stop/drain protocol (stop target, joins, timeouts, re-raising what ended a thread),
#   - the blocking claim (deadline, wait slices, self-deadlock check, consumer gone),
#   - drain() on the calling thread,
#   - the process-wide registry of threads consuming a ring,
#   - what a fork leaves behind (consumers not running in the child, fresh wait state).
#
# A face sets the C pointers below to its ring's state and implements the hooks; every
# pointer it sets points into memory the face owns for as long as the driver lives.
from libc.stdint cimport int32_t, int64_t
from ringbus._atomic cimport rb_atomic_i32, rb_sequence, rb_monotonic
from ringbus._ringbuffer cimport rb_sequencer, rb_consumer, rb_consuming, RB_MAX_GATING


cdef rb_consuming **consuming_head() noexcept nogil


cdef inline double deadline_after(double timeout) noexcept nogil:
    """The deadline, on rb_monotonic's clock, of a wait of ``timeout`` seconds (< 0: none,
    -1); time_left gives what is left of it."""
    return rb_monotonic() + timeout if timeout >= 0 else -1


cdef inline double time_left(double deadline) noexcept nogil:
    """What is left until a deadline on rb_monotonic's clock, never below 0 (a call whose
    timeout ran out still makes its last claim); a deadline < 0 (none) stays -1."""
    if deadline < 0:
        return -1
    cdef double left = deadline - rb_monotonic()
    return left if left > 0 else 0


cdef class Consumer:
    # One consumer of a ring: its sequence and alert (rb_consumer, cache-line aligned: other
    # threads poll it), the sequences it waits behind, its thread once started.
    cdef readonly str name
    cdef rb_consumer *_c            # in the ring's header, or owned (_owns_c)
    cdef bint _owns_c
    cdef rb_sequence *_deps[RB_MAX_GATING]   # borrowed: the sequences this one runs after
    cdef int32_t _ndeps
    cdef object _thread             # threading.Thread while started
    cdef object _exception          # what ended its thread, re-raised by stop()
    # The most events it found waiting for it when it took a batch (the ring's fill as this
    # consumer saw it); metrics, reset by Driver._flow_reset.
    cdef int64_t _high_water
    cdef object __weakref__


cdef class Driver:
    # Set by the face before any other call (C pointers into the ring's state):
    cdef rb_sequencer _q            # the ring's sequencer (refresh after relinking consumers)
    cdef const void *_key           # the ring's identity in the consuming-thread registry
    cdef rb_sequence *_stop_target  # stop(drain=True)'s hard target, in the ring's state
    cdef rb_atomic_i32 *_gone       # "a started consumer thread ended", in the ring's state
    cdef int _wait                  # RB_WAIT_*: how consumer threads wait
    cdef double _poll_before_park   # wait="block": poll this long before parking (seconds)
    cdef bint _private_parker       # the parker is this process's alone (re-made after fork)
    cdef double _unblock_check      # > 0: a waiting consumer calls _stalled this often (s)
    cdef str _unit                  # "events" or "records", for messages
    cdef list _consumers            # Consumer objects; the first is the one drain() runs

    cdef bint _owned                # a Bus closes (and reports) it; else the exit hook here
    # Producers of this process that waited for room (the blocking claim's slow path): how
    # many waits, and their time; metrics, written with the GIL held.
    cdef int64_t _blocked_waits
    cdef double _blocked_seconds
    cdef bint _started
    cdef bint _draining             # drain() runs on some thread (re-entry guard)
    cdef unsigned long _drainer     # pthread_self() of that thread (a fork keeps only one)
    cdef object __weakref__

    # -- hooks: what the face adds --------------------------------------------------------
    cdef Py_ssize_t _handle(self, Consumer c, int64_t lo, int64_t hi) except -1
    cdef Py_ssize_t _idle(self, Consumer c) except -1
    cdef int _drained(self, Consumer c) except -1
    cdef int _may_wait(self) except -1
    cdef int _waiting(self) except -1
    cdef int _stalled(self, Consumer c, int64_t next) except -1
    cdef int _starting(self) except -1
    cdef int _stopping(self, bint drain) except -1
    cdef int _stopped(self) except -1
    cdef int _forked(self) except -1
    cdef int _consumer_ended(self) except -1
    cdef int64_t _queued(self) noexcept
    cdef str _thread_name(self, Consumer c)
    cdef str _deadlock_hint(self)
    cdef str _gone_reason(self)

    # -- the driver -----------------------------------------------------------------------
    cdef int64_t claim_blocking(self, int64_t max_n, double timeout, int64_t *hi) except -1
    cdef int64_t _claim_wait(self, int64_t max_n, double timeout, double deadline,
                             int64_t *hi) except -1
    cdef int64_t claim_within(self, int64_t max_n, double timeout, bint drop,
                              int64_t *hi) except -1
    cdef Py_ssize_t drain_consumer(self, Consumer c, Py_ssize_t max_n) except -1
    cdef int start_consumers(self) except -1
    cdef int stop_consumers(self, bint drain, double timeout) except -1
    cdef str close_consumers(self, double timeout, list errors)
    cdef int _close_at_exit(self) except -1
    cdef int _run(self, Consumer c) except -1
    cdef int _after_fork_in_child(self) except -1
