"""Priority lanes: one consumer for several rings of one bus, the highest lane first.

A bus with lanes has one ring per lane (the bus's own ring is the lane "default"); each has
its own capacity, overflow policy and producers, and one consumer: this one. It runs as a
thread (``Bus.start``), on the calling thread (``Bus.drain``) or on an event loop
(``Bus.attach``), and takes one *turn* at a time: one batch, of at most the lane's
``batch`` events, from the lane whose turn it is.

The rule. The turn goes to the highest-priority lane with events, unless a lower lane with
events has been passed over ``patience`` turns in a row (its own setting): then that lane
takes this turn (the highest such lane, if several are due). So a lane never waits for more
than ``patience`` turns of the lanes above it, and an event of a higher lane waits at most
for the batch in hand (at most ``batch`` events of one lower lane) before its lane is looked
at again. Within a lane, events are taken in the ring's order: FIFO per producer.

Waiting. Every lane's ring parks on, and wakes, the parker of the bus's own ring
(``RingBuffer._share_parker``), so the consumer waits once for all of them
(``rb_lanes_wait`` in ``_ringbuffer.h``) and a publish into any lane wakes it.

Everything else is the rings' own: the slot codec, follow-ups, metrics, the stop target
(one per lane, set by one ``stop(drain=True)``), the consumer-gone word (set on every lane
when the consumer ends).
"""
cimport cython
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t

from ringbus._atomic cimport (
    rb_atomic_i32, rb_load_acquire_i32, rb_store_release_i32, rb_store_relaxed_i32,
    rb_sequence_get, rb_sequence_get_own, rb_no_deadline, rb_deadline_t, rb_sleep_ns,
)
from ringbus._ringbuffer cimport (
    RB_RUN, RB_STOP_WHEN_DONE, RB_STOP_NOW, rb_sequencer, rb_consuming,
    rb_consuming_push, rb_consuming_pop, rb_consuming_bind, rb_sequencer_barrier_available, rb_lanes_ready,
    rb_lanes_wait, rb_parker_wake, rb_stop_set_target, rb_stop_limit, rb_stop_reached,
)
from ringbus._dispatch cimport DispatchTable
from ringbus._driver cimport consuming_head
from ringbus._driver import close_by_stopping
from ringbus._ring cimport RingBuffer, Stage
from ringbus._signal cimport rb_signal_arm

cdef extern from "<pthread.h>" nogil:
    unsigned long pthread_self()

import logging
import threading

_log = logging.getLogger("ringbus")

# The header's consuming-thread registry is per module unless bound to _driver's, the one
# every ring module reads (a handler's publish into a full lane finds this consumer there).
rb_consuming_bind(consuming_head)

cdef enum:
    _MAX = 8

#: The most lanes a bus may have (its own ring included).
MAX_LANES = _MAX


@cython.final
cdef class LaneConsumer:
    """LaneConsumer(rings, batches, patiences)
--

Not API: the one consumer of a bus's lanes (see the module docstring). ``rings``: the lanes'
RingBuffers, highest priority first, each with only the "dispatch" stage; the first one's
parker is the one they all park on."""

    cdef list _rings                    # RingBuffer, highest priority first
    cdef PyObject *_r[_MAX]             # the same, borrowed (the list keeps them)
    cdef const rb_sequencer *_qs[_MAX]  # each ring's sequencer (the Driver's _q)
    cdef rb_atomic_i32 *_alerts[_MAX]   # each ring's "dispatch" consumer's alert
    cdef int64_t _batch[_MAX]           # at most this many events of lane i per turn
    cdef int32_t _patience[_MAX]        # lane i takes the turn after this many passed over
    cdef int32_t _skipped[_MAX]         # turns lane i had events and another lane had the turn
    cdef int32_t _n
    cdef int _wait                      # RB_WAIT_*: the first ring's strategy
    cdef double _poll                   # wait="block": poll before parking
    cdef bint _started
    cdef object _thread
    cdef object _exception

    def __init__(self, rings, batches, patiences):
        cdef RingBuffer r
        cdef int32_t i
        rings = list(rings)
        if not 1 <= len(rings) <= _MAX:
            raise ValueError(f"a bus has 1 to {_MAX} lanes, got {len(rings)}")
        self._rings = rings
        self._n = len(rings)
        for i in range(self._n):
            r = rings[i]
            if len(r._consumers) != 1:
                raise ValueError("a lane's ring has only the 'dispatch' stage")
            self._r[i] = <PyObject *>r
            self._qs[i] = &r._q
            self._alerts[i] = &r._main._c.alert
            self._batch[i] = batches[i]
            self._patience[i] = patiences[i]
            self._skipped[i] = 0
        r = rings[0]
        self._wait = r._wait
        self._poll = r._poll_before_park

    # -- one turn ---------------------------------------------------------------------------

    cdef Py_ssize_t _turn(self, Py_ssize_t max_n) except -1:
        """Take one batch from the lane whose turn it is (GIL held); returns how many events
        its ring handled (0: no lane has any). ``max_n`` >= 0 caps the batch."""
        cdef int32_t i, best = -1, due = -1
        cdef int64_t nxt[_MAX]
        cdef int64_t avail[_MAX]
        cdef int64_t hi, lim
        cdef RingBuffer r
        cdef Stage st
        for i in range(self._n):
            r = <RingBuffer>self._r[i]
            st = r._main
            nxt[i] = rb_sequence_get_own(&st._c.sequence) + 1
            # stop(drain=True): never past the lane's stop target.
            avail[i] = rb_stop_limit(r._stop_target, &st._c.alert,
                                     rb_sequencer_barrier_available(&r._q, NULL, 0, nxt[i]))
            if avail[i] < nxt[i]:
                self._skipped[i] = 0        # nothing waiting: nothing passed over
            elif best < 0:
                best = i
            elif due < 0 and self._skipped[i] >= self._patience[i]:
                due = i                     # the highest lane passed over long enough
        if best < 0:
            return 0
        if due >= 0:
            best = due
        for i in range(best + 1, self._n):
            if avail[i] >= nxt[i]:
                self._skipped[i] += 1
        self._skipped[best] = 0
        r = <RingBuffer>self._r[best]
        st = r._main
        lim = self._batch[best]
        if 0 <= max_n < lim:
            lim = max_n
        hi = avail[best]
        if hi - nxt[best] + 1 > st._high_water:
            st._high_water = hi - nxt[best] + 1
        if hi - nxt[best] + 1 > lim:
            hi = nxt[best] + lim - 1
        return r._handle(st, nxt[best], hi)

    cdef bint _alerted(self, int32_t alert) noexcept:
        cdef int32_t i
        for i in range(self._n):
            if rb_load_acquire_i32(self._alerts[i]) == alert:
                return True
        return False

    cdef bint _done(self) noexcept:
        """Nothing to take (GIL held): whether the consumer thread ends here."""
        cdef int32_t i
        cdef RingBuffer r
        if self._alerted(RB_STOP_NOW):
            return True
        for i in range(self._n):
            r = <RingBuffer>self._r[i]
            if rb_load_acquire_i32(r._gone):
                return True
            if rb_load_acquire_i32(self._alerts[i]) != RB_STOP_WHEN_DONE:
                return False
            if not rb_stop_reached(r._stop_target,
                                   rb_sequence_get_own(&r._main._c.sequence) + 1):
                return False
        return True

    cdef int _push(self, rb_consuming *nodes) except -1:
        # This thread consumes every lane: a handler publishing into a full lane gets that
        # lane's follow-up backlog instead of waiting for itself.
        cdef int32_t i
        cdef RingBuffer r
        for i in range(self._n):
            r = <RingBuffer>self._r[i]
            rb_consuming_push(&nodes[i], r._key, r._main._c)
        return 0

    cdef void _pop(self, rb_consuming *nodes) noexcept:
        cdef int32_t i
        for i in range(self._n - 1, -1, -1):
            rb_consuming_pop(&nodes[i])

    # -- the consumer thread ----------------------------------------------------------------

    cdef int _run(self) except -1:
        cdef rb_consuming nodes[_MAX]
        cdef int64_t nxt[_MAX]
        cdef rb_deadline_t forever = rb_no_deadline()
        cdef int32_t i, n = self._n
        cdef int strategy = self._wait
        cdef double poll = self._poll
        cdef RingBuffer r
        self._push(nodes)
        try:
            while True:
                if self._turn(-1):
                    if self._alerted(RB_STOP_NOW):
                        break
                    continue
                if self._done():
                    break
                if self._alerted(RB_STOP_WHEN_DONE):
                    # stop(drain=True) with sequences up to a target still ahead: their
                    # producers are about to publish them. Let them run.
                    with nogil:
                        rb_sleep_ns(20000)
                    continue
                for i in range(n):
                    r = <RingBuffer>self._r[i]
                    nxt[i] = rb_sequence_get_own(&r._main._c.sequence) + 1
                with nogil:
                    rb_lanes_wait(self._qs, nxt, self._alerts, n, strategy, poll, forever)
            if self._alerted(RB_STOP_WHEN_DONE) and not self._alerted(RB_STOP_NOW):
                for i in range(n):
                    r = <RingBuffer>self._r[i]
                    if not rb_load_acquire_i32(r._gone):
                        r._drained(r._main)
        finally:
            self._pop(nodes)
        return 0

    def _thread_main(self):
        cdef RingBuffer r
        try:
            self._run()
        except BaseException as exc:
            self._exception = exc
            # Producers waiting for room in any lane must not wait for a consumer that is
            # gone: each lane's word is set, then their one parker is woken.
            for r in self._rings:
                r._main._exception = exc
                rb_store_release_i32(r._gone, 1)
            rb_parker_wake(self._qs[0].parker)
            for r in self._rings:
                try:
                    r._consumer_ended()
                except Exception as hook_exc:
                    _log.error("ringbus: waking the waiters of a lane whose consumer ended "
                               "failed", exc_info=hook_exc)
            _log.error("ringbus: the lanes' consumer stopped by %s; their events stay "
                       "queued", type(exc).__name__, exc_info=exc)

    cdef int _check_free(self, str what) except -1:
        cdef RingBuffer r
        for r in self._rings:
            r._ready()
            if r._started:
                raise RuntimeError(f"{what}: the lanes' consumer is already started")
            if r._signal_fd >= 0:
                raise RuntimeError(f"{what} while an event-loop consumer (Bus.run_async) runs")
            if r._draining:
                raise RuntimeError(f"{what} while drain() runs")
        return 0

    def start(self, DispatchTable table not None):
        """One thread consumes every lane, dispatching through ``table``."""
        cdef RingBuffer r
        self._check_free("start()")
        for r in self._rings:
            r._main._table = table
            r._main._exception = None
            r._starting()
            rb_store_release_i32(&r._main._c.alert, RB_RUN)
            rb_store_release_i32(r._gone, 0)
        self._exception = None
        self._thread = threading.Thread(target=self._thread_main, name="ringbus-lanes",
                                        daemon=True)
        for r in self._rings:
            r._main._thread = self._thread
            r._started = True
        self._started = True
        try:
            self._thread.start()
        except BaseException:
            self._reset()
            raise

    cdef int _reset(self) except -1:
        cdef RingBuffer r
        for r in self._rings:
            r._main._thread = None
            r._main._exception = None
            rb_store_relaxed_i32(&r._main._c.alert, RB_RUN)
            r._started = False
            rb_store_release_i32(r._gone, 0)
            r._stopped()
        self._thread = None
        self._started = False
        return 0

    def stop(self, bint drain, double timeout):
        """Stop the consumer thread: ``drain`` first dispatches, in every lane, everything
        published before the call. ``timeout`` < 0: no bound (else TimeoutError). Re-raises
        what ended the thread."""
        cdef RingBuffer r
        if not self._started:
            return
        if self._thread is threading.current_thread():
            raise RuntimeError("stop() called from the lanes' consumer thread would wait "
                               "for itself")
        # Every lane's hard target first, then the alerts (release both), as the driver
        # does for one ring: the consumer that sees an alert sees every target.
        for r in self._rings:
            rb_stop_set_target(r._stop_target,
                               rb_sequence_get(r._q.cursor) if drain else -1)
            r._stopping(drain)
        for r in self._rings:
            rb_store_release_i32(&r._main._c.alert,
                                 RB_STOP_WHEN_DONE if drain else RB_STOP_NOW)
        rb_parker_wake(self._qs[0].parker)
        self._thread.join(timeout if timeout >= 0 else None)
        if self._thread.is_alive():
            raise TimeoutError(f"the lanes' consumer did not stop within {timeout}s")
        exc, self._exception = self._exception, None
        self._reset()
        if exc is not None:
            raise exc

    def close(self, double timeout, list errors):
        """Bus.close's step 1 for lanes (Driver.close_consumers for one ring): stop with
        drain=True within ``timeout``, else at the next event boundary. Returns why events
        may still be queued, or None."""
        if not self._started:
            return None
        return close_by_stopping(self.stop, timeout, errors, "the lanes' consumer thread")

    @property
    def started(self):
        return self._started

    def _is_consumer_gone(self):
        cdef RingBuffer r = <RingBuffer>self._r[0]
        return self._started and rb_load_acquire_i32(r._gone) != 0

    def _consumer_threads(self):
        return [self._thread] if self._thread is not None else []

    # -- drain on the calling thread ------------------------------------------------------

    cdef Py_ssize_t drain_c(self, DispatchTable table, Py_ssize_t max_n) except -1:
        """Dispatch, turn by turn, what every lane holds, until none has any (events handlers
        publish meanwhile included) or ``max_n`` (>= 0) were dispatched."""
        cdef rb_consuming nodes[_MAX]
        cdef RingBuffer r
        cdef Py_ssize_t total = 0, n
        cdef list before = []
        for r in self._rings:
            r._ready()
            if r._draining:
                raise RuntimeError("drain() called from a handler while the lanes are being "
                                   "drained; publish instead: it is processed next")
            if r._started:
                raise RuntimeError("drain() while consumer threads run: stop() them first")
            if r._signal_fd >= 0 and not r._loop_draining:
                raise RuntimeError("drain() while an event-loop consumer (Bus.run_async) "
                                   "runs: it dispatches the events; cancel it first")
        for r in self._rings:
            before.append(r._main._table)
            r._main._table = table
            r._draining = True
            r._drainer = pthread_self()
        self._push(nodes)
        try:
            while max_n < 0 or total < max_n:
                n = self._turn(max_n - total if max_n >= 0 else -1)
                if n == 0:
                    # Every lane empty: their follow-ups are all due (their handlers may
                    # publish more, so look again).
                    for r in self._rings:
                        n += r._idle(r._main)
                    if n == 0:
                        break
                total += n
        finally:
            self._pop(nodes)
            for r, t in zip(self._rings, before):
                r._main._table = t
                r._draining = False
        return total

    def drain(self, DispatchTable table not None, Py_ssize_t max_n):
        return self.drain_c(table, max_n)

    # -- the event-loop consumer (ringbus.aio): the rings' own hooks, for every lane --------

    def _attach_loop(self, int fd, thread_id):
        cdef RingBuffer r
        cdef list done = []
        try:
            for r in self._rings:
                r._attach_loop(fd, thread_id)
                done.append(r)
        except BaseException:
            for r in done:
                r._detach_loop()
            raise

    def _detach_loop(self):
        cdef RingBuffer r
        for r in self._rings:
            r._detach_loop()

    def _drain_loop(self, DispatchTable table not None, Py_ssize_t max_events):
        cdef RingBuffer r
        for r in self._rings:
            if r._signal_fd < 0:
                raise RuntimeError("no event-loop consumer is attached")
        for r in self._rings:
            r._loop_draining = True
        try:
            return self.drain_c(table, max_events)
        finally:
            for r in self._rings:
                r._loop_draining = False

    def _arm_events(self):
        """Arm every lane's events signal and look again: True if no lane has events (wait
        for the fd), False if some arrived meanwhile."""
        cdef int64_t nxt[_MAX]
        cdef int32_t i
        cdef RingBuffer r
        for i in range(self._n):
            r = <RingBuffer>self._r[i]
            rb_signal_arm(r._events)
            nxt[i] = rb_sequence_get_own(&r._main._c.sequence) + 1
        return rb_lanes_ready(self._qs, nxt, self._n) < 0
