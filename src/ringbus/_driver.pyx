"""The ring driver: one producer/consumer protocol under every ring kind.

``_ringbuffer.h`` holds the lock-free algorithms (sequencer, barriers, park/wake, the blocking
claim). This module drives them from Python: consumer threads, the stop/drain protocol,
``drain()`` on the calling thread, the blocking claim's wait slices and errors, and the
registry of threads consuming a ring. ``RingBuffer`` (object slots) and ``RecordRing`` (record
slots) subclass :class:`Driver` and add only what their slots hold and how a batch of them
reaches handlers (``_handle``).

The stop protocol. ``stop(drain=True)`` reads the cursor once (everything published before the
call), stores it as the ring's stop target, then raises each consumer's alert (both release).
A consumer that acquires the alert reads the target and never processes past it, however
fast other producers go; what they publish after it stays queued for the next start or
drain. ``stop(drain=False)`` stops each consumer at its next batch (an object ring's consumer:
its next event) boundary.
"""
cimport cython
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int32_t, int64_t, INT64_MAX
from libc.stdlib cimport free

from ringbus._atomic cimport (
    RB_CACHELINE, rb_load_acquire_i32, rb_store_release_i32, rb_store_relaxed_i32,
    rb_sequence_get, rb_sequence_get_own, rb_monotonic, rb_no_deadline, rb_sleep_ns,
    rb_deadline_t, rb_deadline_in,
)
from ringbus._ringbuffer cimport (
    RB_WAIT_BLOCK, RB_RUN, RB_STOP_WHEN_DONE, RB_STOP_NOW,
    RB_CLAIM_WOULD_DEADLOCK, RB_CLAIM_CONSUMER_GONE, RB_CLAIM_WAIT_SLICE,
    rb_consumer_init, rb_consuming_push, rb_consuming_pop,
    rb_sequencer_claim_upto, rb_sequencer_barrier_available, rb_sequencer_wait_for,
    rb_sequencer_poll, rb_sequencer_claim_wait, rb_parker_init, rb_parker_wake,
    rb_stop_set_target, rb_stop_limit, rb_stop_reached,
)

cdef extern from "_ringbuffer.h":
    # This module's own copy of the header's thread-local list: the one every module uses.
    rb_consuming **rb_consuming_local_head() noexcept nogil

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

cdef extern from "<pthread.h>" nogil:
    unsigned long pthread_self()

import atexit
import logging
import os
import threading
import warnings
import weakref

_log = logging.getLogger("ringbus")


class RingFull(Exception):
    """The ring had no room for an event.

    Raised by ``publish`` under ``overflow="raise"``, when a blocking publish times out, and
    when the publishing thread is itself the consumer the ring waits for and its follow-up
    backlog is full (or the ring has stages besides ``"dispatch"``), where blocking would
    deadlock.
    ``publish_many`` sets ``published`` on it: how many of the events went in first.
    """
    published = 0


class ConsumerGone(RuntimeError):
    """A blocking publish found the ring full and the consumer thread that was started gone
    (a handler raised ``SystemExit`` or another exception that ended it): nothing would ever
    make room, so it raises instead of waiting forever.

    The events already queued stay queued; ``stop()`` re-raises what ended the consumer, and
    a later ``start()`` or ``drain()`` delivers them. ``publish_many`` sets ``published`` on
    it, as on :class:`RingFull`. Raised by both ring kinds.
    """
    published = 0


def close_by_stopping(stop, double timeout, list errors, str who):
    """Step 1 of closing (Bus.close, interpreter exit) for a running consumer:
    ``stop(drain, timeout)`` with drain=True within ``timeout`` (< 0: no bound), else at the
    next event boundary (waiting at most 1 s more for the handler in hand). What ended it goes
    to ``errors``. Returns why events may still be queued, or None."""
    try:
        stop(True, timeout)
        return None
    except TimeoutError:
        why = f"the consumer did not finish within the close timeout ({timeout}s)"
        try:
            stop(False, 1.0)
        except TimeoutError:
            why += " and is still inside a handler"
        except BaseException as exc:
            errors.append(exc)
        return why
    except BaseException as exc:
        errors.append(exc)
        return f"{who} ended on {type(exc).__name__}"


cdef rb_consuming **consuming_head() noexcept nogil:
    """The head of this thread's consuming list: one per thread for the whole process."""
    return rb_consuming_local_head()


cdef class Consumer:
    """One consumer of a ring: a sequence, an alert flag and, once started, a thread."""

    def __cinit__(self, *args, **kwargs):
        cdef void *p = NULL
        if posix_memalign(&p, RB_CACHELINE, sizeof(rb_consumer)) != 0:
            raise MemoryError()
        self._c = <rb_consumer *>p
        self._owns_c = True
        rb_consumer_init(self._c, -1)
        self._ndeps = 0

    def __dealloc__(self):
        if self._owns_c:
            free(self._c)


# Every ring of this process: a forked child has none of the threads that were consuming,
# draining, or parked on them.
cdef object _drivers = weakref.WeakSet()


def _after_fork_in_child():
    for d in list(_drivers):
        (<Driver>d)._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# Rings that no Bus owns are closed at exit with this bound, as a Bus is by default.
EXIT_TIMEOUT = 5.0


def _close_rings_at_exit():
    """atexit: stop the running consumers of every ring no Bus owns (drain=True, bounded)
    and report what is still queued. A Bus does both for its own ring (Bus.close)."""
    for d in list(_drivers):
        if (<Driver>d)._owned:
            continue
        try:
            (<Driver>d)._close_at_exit()
        except BaseException as exc:
            _log.error("ringbus: closing %r at interpreter exit failed", d, exc_info=exc)


# Registered at import, before ringbus._bus registers its own: atexit runs the last
# registered first, so buses are closed first, then plain rings, then logging's hook.
atexit.register(_close_rings_at_exit)


cdef class Driver:
    """The protocol under every ring kind; see the module docstring. Not instantiated."""

    def __cinit__(self, *args, **kwargs):
        if type(self) is Driver:
            raise TypeError("Driver is the protocol under a ring kind (RingBuffer, "
                            "RecordRing), not a ring itself")
        self._consumers = []
        self._unit = "events"
        self._private_parker = True
        _drivers.add(self)

    # -- hooks: the face overrides what applies ---------------------------------------------

    cdef Py_ssize_t _handle(self, Consumer c, int64_t lo, int64_t hi) except -1:
        """Process lo..hi (available to c) with the GIL; advance c's sequence as slots are
        done with. Returns how many events it handled (a face may add its own, such as
        follow-ups). Leaves c's sequence on the last one processed when it raises. Every
        ring kind defines it (its slot codec); a Driver itself cannot be made."""
        raise TypeError(f"{type(self).__name__} defines no slot codec (_handle)")

    cdef Py_ssize_t _idle(self, Consumer c) except -1:
        """drain() found nothing more in the ring: process what the face keeps beside it
        (an object ring's follow-up backlog); returns how many (0: done)."""
        return 0

    cdef int _drained(self, Consumer c) except -1:
        """c's thread reached the stop target of stop(drain=True)."""
        return 0

    cdef int _may_wait(self) except -1:
        """A blocking publish found the ring full: raise if this thread must not wait."""
        return 0

    cdef int _waiting(self) except -1:
        """Between the wait slices of a blocking publish (GIL held): raise to give up (a
        shared ring whose consumer process is gone)."""
        return 0

    cdef int _stalled(self, Consumer c, int64_t next) except -1:
        """c waits for ``next`` (with _unblock_check > 0): the face may skip what can never
        come (an abandoned claim) by advancing c's sequence; returns whether it did."""
        return 0

    cdef int _starting(self) except -1:
        return 0

    cdef int _stopping(self, bint drain) except -1:
        """stop() set the stop target (GIL held), before it raises the alerts."""
        return 0

    cdef int _stopped(self) except -1:
        return 0

    cdef int _forked(self) except -1:
        return 0

    cdef int64_t _queued(self) noexcept:
        """Events (records) published and not yet processed, for the exit report."""
        return 0

    cdef int _consumer_ended(self) except -1:
        """A consumer thread ended by an exception (the gone word is set): wake whatever
        else waits for room."""
        return 0

    cdef str _thread_name(self, Consumer c):
        return f"ringbus-{c.name}"

    # -- flow metrics -----------------------------------------------------------------------

    def _flow(self):
        """Not API (bus.metrics()): ``{"high_water": {consumer: events}, "blocked_waits",
        "blocked_seconds"}``."""
        cdef Consumer c
        return {"high_water": {c.name: c._high_water for c in self._consumers},
                "blocked_waits": self._blocked_waits,
                "blocked_seconds": self._blocked_seconds}

    def _consumer_threads(self):
        """Not API (the slow-handler watchdog): the threads of the started consumers."""
        cdef Consumer c
        return [c._thread for c in self._consumers if c._thread is not None]

    def _flow_reset(self):
        """Not API (bus.reset_metrics())."""
        cdef Consumer c
        for c in self._consumers:
            c._high_water = 0
        self._blocked_waits = 0
        self._blocked_seconds = 0.0

    # -- the blocking claim -----------------------------------------------------------------

    cdef int64_t claim_blocking(self, int64_t max_n, double timeout, int64_t *hi) except -1:
        """Claim up to max_n slots, waiting for room without the GIL one slice at a time
        (signals are checked between slices); returns how many. timeout < 0: no limit.
        RingFull on timeout, or when only this thread could make room; ConsumerGone when the
        consumer thread that was started ended."""
        cdef double deadline = -1
        cdef int64_t got = rb_sequencer_claim_upto(&self._q, max_n, hi)
        if got:
            return got
        self._may_wait()
        cdef double started = rb_monotonic()
        if timeout >= 0:
            deadline = started + timeout
        try:
            return self._claim_wait(max_n, timeout, deadline, hi)
        finally:
            self._blocked_waits += 1
            self._blocked_seconds += rb_monotonic() - started

    cdef int64_t _claim_wait(self, int64_t max_n, double timeout, double deadline,
                             int64_t *hi) except -1:
        cdef double left, slice_
        cdef int64_t got
        while True:
            slice_ = RB_CLAIM_WAIT_SLICE
            if deadline >= 0:
                left = deadline - rb_monotonic()
                if left <= 0:
                    raise RingFull(f"ring full ({self._q.capacity} {self._unit}): no room "
                                   f"within timeout={timeout}s")
                if left < slice_:
                    slice_ = left
            with nogil:
                got = rb_sequencer_claim_wait(&self._q, self._key, self._gone, max_n, slice_, hi)
            if got > 0:
                return got
            if got == RB_CLAIM_WOULD_DEADLOCK:
                raise RingFull(
                    f"ring full ({self._q.capacity} {self._unit}) and this thread is "
                    f"consuming it: a handler published into the ring it is draining, and "
                    f"waiting for room would deadlock ({self._deadlock_hint()})")
            if got == RB_CLAIM_CONSUMER_GONE:
                raise ConsumerGone(
                    f"ring full ({self._q.capacity} {self._unit}) and its consumer thread is "
                    f"gone (ended by {self._gone_reason()}): nothing will make room; stop() "
                    f"re-raises what ended it, then start() or drain() delivers the queued "
                    f"{self._unit}")
            PyErr_CheckSignals()
            self._waiting()

    cdef int64_t claim_within(self, int64_t max_n, double timeout, bint drop,
                              int64_t *hi) except -1:
        """The overflow rule, in one place: a full ring waits for room up to ``timeout``
        (claim_blocking), then the policy acts. ``drop``: 0, and the caller counts the drop
        (the wait ended without room: timed out, only this thread could make room, or the
        consumer is gone); otherwise claim_blocking's RingFull or ConsumerGone."""
        try:
            return self.claim_blocking(max_n, timeout, hi)
        except (RingFull, ConsumerGone):
            if drop:
                return 0
            raise

    cdef str _deadlock_hint(self):
        if self._unit == "events":
            return ("a ring with stages besides 'dispatch' has no follow-up backlog: use a "
                    "larger capacity, try_publish, or overflow='drop'")
        return "use a larger capacity, try_publish, or overflow='drop'"

    cdef str _gone_reason(self):
        cdef Consumer c
        for c in self._consumers:
            if c._exception is not None:
                return type(c._exception).__name__
        return "an exception"

    # -- consumers --------------------------------------------------------------------------

    cdef int _run(self, Consumer c) except -1:
        """A consumer thread's loop: wait without the GIL, process each batch with it."""
        cdef rb_consuming node
        cdef rb_deadline_t forever = rb_no_deadline(), until
        cdef double every = self._unblock_check
        cdef int strategy = self._wait
        cdef double poll = self._poll_before_park
        cdef int64_t next, avail
        cdef int32_t alert
        rb_consuming_push(&node, self._key, c._c)
        try:
            next = rb_sequence_get_own(&c._c.sequence) + 1
            while True:
                # Events already there: go on with the GIL we hold. Releasing it would hand
                # it to a waiting producer, and getting it back costs a switch interval.
                avail = rb_sequencer_barrier_available(&self._q, c._deps, c._ndeps, next)
                if avail < next:
                    with nogil:
                        if strategy == RB_WAIT_BLOCK and poll > 0:
                            avail = rb_sequencer_poll(&self._q, c._deps, c._ndeps, next,
                                                      &c._c.alert, poll)
                        if avail < next:
                            until = rb_deadline_in(every) if every > 0 else forever
                            avail = rb_sequencer_wait_for(&self._q, c._deps, c._ndeps, next,
                                                          strategy, &c._c.alert, until)
                # stop(drain=True): never past the stop target.
                avail = rb_stop_limit(self._stop_target, &c._c.alert, avail)
                if avail >= next:
                    if avail - next + 1 > c._high_water:
                        c._high_water = avail - next + 1
                    self._handle(c, next, avail)
                    next = rb_sequence_get_own(&c._c.sequence) + 1
                    if rb_load_acquire_i32(&c._c.alert) != RB_STOP_NOW:
                        continue
                    break
                # Alerted (or a wait for an abandoned claim timed out), and nothing is
                # available to us right now.
                alert = rb_load_acquire_i32(&c._c.alert)
                if (alert == RB_STOP_NOW or rb_load_acquire_i32(self._gone)
                        or (alert == RB_STOP_WHEN_DONE
                            and rb_stop_reached(self._stop_target, next))):
                    break
                if every > 0:
                    if self._stalled(c, next):
                        next = rb_sequence_get_own(&c._c.sequence) + 1
                        continue
                    if alert == RB_RUN:
                        continue
                # stop(drain=True) with sequences up to the target still ahead of us: their
                # producers are about to publish them, or a consumer we depend on is
                # finishing them. Let them run.
                with nogil:
                    rb_sleep_ns(20000)
            if (rb_load_acquire_i32(&c._c.alert) == RB_STOP_WHEN_DONE
                    and not rb_load_acquire_i32(self._gone)):
                self._drained(c)
        finally:
            rb_consuming_pop(&node)
        return 0

    def _thread_main(self, Consumer c):
        try:
            self._run(c)
        except BaseException as exc:
            c._exception = exc
            # Producers waiting for room (Python or nogil C) must not wait for a consumer
            # that is gone: they re-check this word at every wait slice. In the ring's own
            # state, where a producer in another process mapping the ring would look too.
            rb_store_release_i32(self._gone, 1)
            rb_parker_wake(self._q.parker)
            try:
                self._consumer_ended()
            except Exception as hook_exc:
                _log.error("ringbus: waking the waiters of a ring whose consumer ended "
                           "failed", exc_info=hook_exc)
            _log.error("ringbus: consumer %r stopped by %s; its %s stay queued",
                       c.name, type(exc).__name__, self._unit, exc_info=exc)

    cdef Py_ssize_t drain_consumer(self, Consumer c, Py_ssize_t max_n) except -1:
        """Process what is available to c on this thread, in order, until there is nothing
        more (events published meanwhile included) or max_n (>= 0) were processed."""
        cdef rb_consuming node
        cdef int64_t next, avail, hi
        cdef Py_ssize_t total = 0, n
        if self._draining:
            raise RuntimeError(f"drain() called from a handler while this ring is being "
                               f"drained; publish instead: it is processed next")
        if self._started:
            raise RuntimeError("drain() while consumer threads run: stop() them first")
        self._draining = True
        self._drainer = pthread_self()
        # A producer on this thread that finds the ring full must fail, not wait for us.
        rb_consuming_push(&node, self._key, c._c)
        try:
            next = rb_sequence_get_own(&c._c.sequence) + 1
            while max_n < 0 or total < max_n:
                # Disruptor batching: read the cursor (or dependencies) once per batch.
                avail = rb_sequencer_barrier_available(&self._q, c._deps, c._ndeps, next)
                if avail < next:
                    if self._unblock_check > 0 and self._stalled(c, next):
                        next = rb_sequence_get_own(&c._c.sequence) + 1
                        continue
                    n = self._idle(c)
                    if n == 0:
                        break
                    total += n
                    continue
                hi = avail
                if avail - next + 1 > c._high_water:
                    c._high_water = avail - next + 1
                if max_n >= 0 and hi - next >= max_n - total:
                    hi = next + (max_n - total) - 1
                total += self._handle(c, next, hi)
                next = rb_sequence_get_own(&c._c.sequence) + 1
        finally:
            rb_consuming_pop(&node)
            self._draining = False
        return total

    cdef int start_consumers(self) except -1:
        cdef Consumer c
        if self._started:
            raise RuntimeError("the ring's consumers are already started")
        if self._draining:
            raise RuntimeError("start() while drain() runs")
        self._starting()
        threads = []
        for c in self._consumers:
            c._exception = None
            rb_store_release_i32(&c._c.alert, RB_RUN)
            c._thread = threading.Thread(target=self._thread_main, args=(c,),
                                         name=self._thread_name(c), daemon=True)
            threads.append(c._thread)
        rb_store_release_i32(self._gone, 0)
        self._started = True
        for th in threads:
            th.start()
        return 0

    cdef int stop_consumers(self, bint drain, double timeout) except -1:
        cdef Consumer c
        cdef double deadline = -1, left
        if not self._started:
            return 0
        me = threading.current_thread()
        for c in self._consumers:
            if c._thread is me:
                raise RuntimeError("stop() called from a consumer thread would wait for itself")
        # Acquire: every claim before this call is in the cursor (a Python producer publishes
        # its claim before it lets the GIL go; nogil producers joined before this call are
        # ordered by the join). The hard target first, then the alerts (release both).
        rb_stop_set_target(self._stop_target, rb_sequence_get(self._q.cursor) if drain else -1)
        self._stopping(drain)
        for c in self._consumers:
            rb_store_release_i32(&c._c.alert, RB_STOP_WHEN_DONE if drain else RB_STOP_NOW)
        rb_parker_wake(self._q.parker)      # parked consumers re-check their alert
        if timeout >= 0:
            deadline = rb_monotonic() + timeout
        for c in self._consumers:
            if deadline >= 0:
                left = deadline - rb_monotonic()
                c._thread.join(left if left > 0 else 0)
            else:
                c._thread.join()
            if c._thread.is_alive():
                raise TimeoutError(f"consumer {c.name!r} did not stop within {timeout}s")
        first = None
        for c in self._consumers:
            c._thread = None
            rb_store_relaxed_i32(&c._c.alert, RB_RUN)      # drain() reads it too
            if first is None and c._exception is not None:
                first = c._exception
            c._exception = None
        self._started = False
        # Stopped: no consumer is started any more, so waiting for room is the caller's
        # choice again (a later start() or drain() makes it).
        rb_store_release_i32(self._gone, 0)
        self._stopped()
        if first is not None:
            raise first
        return 0

    def _is_consumer_gone(self):
        """Not API (ringbus.aio): whether a consumer thread that was started has ended, so
        that nothing will make room."""
        return self._started and self._gone != NULL and rb_load_acquire_i32(self._gone) != 0

    cdef str close_consumers(self, double timeout, list errors):
        """Step 1 of closing (Bus.close, interpreter exit): stop running consumer threads
        with drain=True within `timeout` (< 0: no bound), else at the next event boundary
        (waiting at most 1 s more for the handler in hand). What ended a thread goes to
        `errors`. Returns why events may still be queued, or None."""
        if not self._started:
            return None
        return close_by_stopping(self._stop_for_close, timeout, errors, "a consumer thread")

    def _stop_for_close(self, bint drain, double timeout):
        self.stop_consumers(drain, timeout)

    cdef int _close_at_exit(self) except -1:
        if self._gone == NULL:              # a face whose __init__ never ran
            return 0
        cdef list errors = []
        started = self._started
        why = self.close_consumers(EXIT_TIMEOUT, errors)
        for exc in errors:
            _log.error("ringbus: a consumer thread of %r ended on %s", self,
                       type(exc).__name__, exc_info=exc)
        cdef int64_t left = self._queued()
        if left:
            if why is None:
                why = ("published after the drain's stop target" if started
                       else "no consumer was running")
            message = (f"ringbus: {type(self).__name__} at interpreter exit with {left} "
                       f"{self._unit} still queued, not dispatched ({why})")
            _log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=1)
        return 0

    cdef int _after_fork_in_child(self) except -1:
        """In a forked child: only the forking thread came along. The ring's consumers are
        not running (start() or drain() here delivers what is queued in this copy), a drain
        by another thread is not in progress, and the wait state is made fresh: the parker's
        mutex and condition variable may have been held, or waited on, by threads the child
        does not have."""
        cdef Consumer c
        if self._gone == NULL:              # a face whose __init__ never ran
            return 0
        if self._draining and self._drainer != pthread_self():
            self._draining = False
        for c in self._consumers:
            c._thread = None
            c._exception = None
            rb_store_relaxed_i32(&c._c.alert, RB_RUN)
        rb_store_relaxed_i32(self._gone, 0)
        self._started = False
        if self._private_parker:
            rb_parker_init(self._q.parker, 0)
        self._forked()
        return 0
