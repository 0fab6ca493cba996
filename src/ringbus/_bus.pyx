"""The public Bus: the compiled dispatch table plus a plain-Python registration facade."""
from cpython.long cimport PyLong_CheckExact
from cpython.pyport cimport PY_SSIZE_T_MAX

from ringbus._capi cimport ringbus_index_or_neg

import atexit
import logging
import warnings
import weakref
from contextlib import contextmanager

from ringbus._driver cimport deadline_after, time_left
from ringbus._ring cimport RingBuffer, timeout_arg
from ringbus._conflation cimport Conflator
from ringbus import _batch
from ringbus._ring import RingFull  # noqa: F401  (re-exported by the package)
from ringbus import aio as _aio
from ringbus import lanes as _lanes_py
from ringbus._lanes import LaneConsumer
from ringbus._checks import int_arg
from ringbus.registry import Registry



cdef int _not_initialised() except -1:
    raise RuntimeError("Bus was not initialised: a Bus subclass's __init__ must call "
                       "super().__init__(...)")


_log = logging.getLogger("ringbus")

#: Bus.close()'s default timeout: "the bus's close_timeout" (an explicit None means no
#: bound). A string, so that the signature inspect shows says what it means.
_BUS_TIMEOUT = "close_timeout"

# The buses of this process that are not closed yet, in creation order, held weakly (a bus
# nobody references is not kept alive for the exit hook). Keys: id(bus) of live buses.
cdef dict _live = {}
cdef bint _exiting = False      # inside _close_at_exit: the report says so


def _forget(key):
    _live.pop(key, None)


def _close_at_exit():
    """atexit: close every bus still open, in creation order (see Bus.close).

    atexit runs after the interpreter joined the non-daemon threads and before it stops the
    daemon ones: consumer threads (daemon) are still running here, so their queued events
    can still be dispatched. An error is logged and the next bus is closed regardless."""
    global _exiting
    _exiting = True
    for ref in list(_live.values()):
        bus = ref()
        if bus is None:
            continue
        try:
            bus.close()
        except BaseException as exc:
            _log.error("ringbus: closing %r at interpreter exit failed", bus, exc_info=exc)


# Registered once, at import: atexit runs the last registered first, so this runs after the
# user's own exit hooks (which may still publish) and before logging's (imported earlier).
atexit.register(_close_at_exit)


cdef int _unusable(Bus bus) except -1:
    if bus._registry is None:
        _not_initialised()
    raise RuntimeError("this Bus is closed: nothing more can be published or consumed in "
                       "the background (emit() and drain() still work on the calling thread)")


cdef class Bus(DispatchTable):
    # The first line is the constructor's text signature (the "--" ends it): CPython gives
    # it to inspect.signature(Bus), help() and IDEs; keep it in step with __init__
    # (tests/test_signatures.py checks that it is).
    """Bus(*, on_error='log', max_depth=64, capacity=65536, producers='multi', overflow='block', wait='block', backlog=None, close_timeout=5.0, metrics=False)
--

An in-process event bus.

    >>> bus = Bus()
    >>> TICK = bus.event_type("md.tick")
    >>> sub = bus.subscribe(TICK, print)
    >>> bus.emit(TICK, 101.5)
    101.5
    1

    Keyword-only options, all with defaults:

    on_error : "log" (default), "raise" or a callable
        What happens to an ``Exception`` raised by a handler; the event's other handlers
        run regardless. "log" logs it with its traceback on the ``ringbus`` logger; "raise"
        re-raises the first one from ``emit`` once the event's handlers ran (any others are
        attached as ``other_errors``); a callable is called as
        ``on_error(event_type, payload, subscription, exception)``. All count it in
        ``stats()["handler_errors"]``. ``BaseException`` is never caught.
    max_depth : int (64)
        How deeply handlers may nest ``emit`` calls; past it ``EmitDepthError``.
    capacity : int, a power of two >= 2 (65536)
        Slots of the bus's ring (``publish`` and its consumers), allocated once.
    producers : "multi" (default) or "single"
        "single" claims slots without a CAS: only when one thread publishes at a time.
    overflow : "block" (default), "raise" or "drop"
        What a publish into the full ring does once its wait for room (``timeout=`` of
        the call; without one: forever under "block", none otherwise) ends: raise
        :class:`ringbus.RingFull` ("block", "raise"), or drop the event and count it in
        ``stats()["dropped"]`` ("drop").
    wait : "block" (default), "spin", "yield" or "sleep"
        How a consumer thread waits for events, always without the GIL: park (producers
        wake it), busy-spin, spin then ``sched_yield``, or spin, yield, then sleep.
    backlog : int >= 0 or None (None: ``capacity``)
        Bound of the follow-ups: events a consumer's handlers publish into the full ring
        it drains, held by that consumer and dispatched in claim order.
    close_timeout : float >= 0 or None (5.0)
        How long ``close()`` (and leaving ``with bus:``) waits for the consumers to drain
        what is queued by default; None: no bound.
    metrics : bool (False)
        Meter every subscription (calls, errors, call times): see :meth:`metrics`;
        ``enable_metrics()`` turns it on later.
    """

    def __init__(self, *, on_error="log", max_depth=64, capacity=65536, producers="multi",
                 overflow="block", wait="block", backlog=None, close_timeout=5.0,
                 metrics=False):
        cdef double bound
        try:
            bound = timeout_arg(close_timeout)
        except TypeError:
            raise TypeError(f"close_timeout must be None or a number of seconds, got "
                            f"{type(close_timeout).__name__} {close_timeout!r}") from None
        except ValueError:
            raise ValueError(f"close_timeout must be None or a number >= 0, got "
                             f"{close_timeout!r}") from None
        self._ring = RingBuffer(capacity, producers=producers, overflow=overflow, wait=wait,
                                backlog=backlog)
        self._ring._owned = True            # closed and reported by close(), not by the ring
        self._batch_type = -1
        self._registry = Registry(self, on_error=on_error, max_depth=max_depth)
        if not isinstance(metrics, bool):
            raise TypeError(f"metrics must be True or False, got {metrics!r}")
        if metrics:
            self._set_metrics(True)
        self._close_timeout = bound
        self._closers = []
        self._closed = False
        self._open = True
        key = id(self)
        _live[key] = weakref.ref(self, lambda _r, key=key: _forget(key))

    cdef inline int _need_open(self) except -1:
        # publish*, start and the event-loop consumer: initialised and not closed. One
        # predictable branch per call: _open is set last by __init__ and cleared by close().
        if not self._open:
            _unusable(self)
        return 0

    # -- closing -----------------------------------------------------------------------
    # The close order, one step after the other, each bounded by what is left of the one
    # timeout:
    #   1. the bus's consumer threads (start(), every stage): stop(drain=True), so that
    #      everything published before close() is dispatched; past the timeout they are
    #      stopped at the next event boundary instead;
    #   2. the closers attached with _add_closer(), in the order they were attached (later
    #      issues: worker groups, then bridges), each called as closer(seconds_left or None);
    #   3. the bus is marked closed: publish, start and attach raise from now on;
    #   4. whatever is still queued is reported: a RuntimeWarning and a warning on the
    #      `ringbus` logger, naming the count. Never silent.
    # An event-loop consumer (attach / run_async) is not stopped here: it belongs to its
    # loop, which may not run any more; detach it (or let it drain) before closing.

    def _add_closer(self, closer):
        """Attach ``closer(seconds_left)`` to step 2 of :meth:`close` (for later layers that
        hang off a bus: worker groups, bridges). Called once, in attach order, after the
        consumer threads stopped and before the bus is marked closed; ``seconds_left`` is
        None when close has no bound. What it raises is re-raised by ``close``."""
        self._need_open()
        if not callable(closer):
            raise TypeError(f"closer must be callable, got {closer!r}")
        self._closers.append(closer)

    def close(self, timeout="close_timeout"):     # the literal _BUS_TIMEOUT, for inspect
        """Stop the bus: dispatch what is queued for its consumers, then refuse new events.

        In order: (1) running consumer threads are stopped with ``drain=True``: everything
        published before the call is dispatched; if that takes longer than ``timeout``
        seconds (default: the bus's ``close_timeout``, 5 s; None: no bound), they are
        stopped at the next event boundary instead (waiting at most 1 s more for the
        handler in hand; a handler stuck longer is left running on its daemon thread); (2) anything attached to the bus (worker
        groups, bridges) is closed, in attach order, within what is left of the timeout;
        (3) the bus is marked :attr:`closed`: ``publish``, ``try_publish``,
        ``publish_many``, ``publish_batch``, ``publish_async``, ``start``, ``running`` and
        ``attach`` raise RuntimeError; ``emit`` and ``drain`` still work on the calling
        thread; (4) events still queued (none was consuming, or the timeout cut the drain
        short) are reported by a ``RuntimeWarning`` and on the ``ringbus`` logger, with
        their count. Returns that count.

        An exception that ended a consumer thread, or that a step raised, is re-raised once
        every step ran. Closing a closed bus does nothing and returns 0. ``with Bus() as
        bus:`` closes on leaving the block, and every bus still open is closed this way at
        interpreter exit (atexit, in creation order).
        """
        self._need()
        if self._closed:
            return 0
        cdef double bound = (self._close_timeout
                             if isinstance(timeout, str) and timeout == _BUS_TIMEOUT
                             else timeout_arg(timeout))
        cdef double deadline = deadline_after(bound)
        cdef RingBuffer ring = self._ring
        errors = []
        why = None
        # 1. consumer threads (the ring's driver: the same step closes a plain ring at exit;
        # with lanes, their one consumer)
        started = ring._started
        if self._lanes is None:
            why = ring.close_consumers(time_left(deadline), errors)
        else:
            why = self._lanes.close(time_left(deadline), errors)
        if started:
            if why is None:
                why = "published after the drain's stop target"
        elif ring._signal_fd >= 0:
            why = "an event-loop consumer (attach/run_async) is still attached"
        else:
            why = "no consumer was running"
        # 2. what later layers attached
        for closer in self._closers:
            try:
                closer(None if deadline < 0 else time_left(deadline))
            except BaseException as exc:
                errors.append(exc)
        self._closers = []
        # 3. closed
        self._open = False
        self._closed = True
        _live.pop(id(self), None)
        # 4. report
        cdef Py_ssize_t left = self.pending
        if left:
            message = (f"ringbus: Bus closed{' at interpreter exit' if _exiting else ''} "
                       f"with {left} event(s) still queued, not dispatched ({why})")
            _log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        if errors:
            raise errors[0]
        return left

    @property
    def closed(self):
        """Whether :meth:`close` ran (by a ``with`` block, at interpreter exit, or called)."""
        self._need()
        return self._closed

    def __enter__(self):
        """``with ringbus.Bus() as bus:`` closes the bus on leaving the block (see close)."""
        self._need()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    cdef inline int _need(self) except -1:
        # Every Python-visible method but emit() starts here (emit() gets the same check on
        # its slow path, in _checked): a subclass whose __init__ skipped Bus.__init__ has no
        # ring and no registry, and a C call into the missing ring would crash.
        if self._registry is None:
            _not_initialised()
        return 0

    cdef inline Py_ssize_t _checked(self, object event_type) except -1:
        # The common case in two C comparisons; check_id() owns the error messages.
        cdef Py_ssize_t t
        if PyLong_CheckExact(event_type):
            t = ringbus_index_or_neg(event_type)
            # count -1: an id of the process this bus never registered (same cache line
            # as the dispatch reads next).
            if <size_t>t < <size_t>self._size and self._slots[t].count >= 0:
                return t
        if self._registry is None:     # an uninitialised Bus has no ids: always lands here
            _not_initialised()
        return self.check_id(event_type)

    # Defined here, not on DispatchTable: CPython's specialised call of a method
    # descriptor requires the instance's exact type, so an inherited emit() was ~15 ns slower.
    def emit(self, event_type, payload=None):
        """Run the handlers of ``event_type`` now, on this thread; return how many ran.

        ``event_type`` must be an int id (see :meth:`event_type`).

        Handlers run in the order the ordering graph fixed at registration. An Exception in
        one goes to the bus's error policy and the others still run.
        """
        cdef Py_ssize_t t = self._checked(event_type)
        self._emitted += 1          # emit() only: ring deliveries count as "dispatched"
        return self.dispatch(t, payload)

    # -- batches -------------------------------------------------------------------------

    def subscribe_batch(self, event_type, handler, *, priority=0, after=(), before=(),
                        name=None, weak=None, with_type=False):
        """Call ``handler(rows)`` once per ``emit_batch`` / ``publish_batch`` with the rows of
        ``event_type``, in their original order, in the kind the batch came as: a contiguous
        numpy array, a pandas or polars DataFrame, an Arrow RecordBatch or Table.

        ``with_type=True``: called as ``handler(event_type, rows)``, so that one handler
        subscribed to several types knows whose rows it got. It takes its place in the same
        ordering graph as per-event subscribers. ``emit`` and ``publish`` of single events
        do not call it.
        """
        self._need()
        return self._registry.subscribe(event_type, handler, priority=priority, after=after,
                                        before=before, name=name, weak=weak, batch=True,
                                        with_type=with_type)

    def emit_batch(self, types, rows):
        """Dispatch a batch now, on this thread; return the number of rows.

        ``rows``: a 1-D numpy array (records, scalars or objects), a pandas or polars
        DataFrame, or a pyarrow RecordBatch or Table. ``types``: one event type per row,
        as ids (any integer column) or as event *names* (a numpy str/object array or list
        of str, a pandas string or Categorical column, an Arrow string or dictionary array,
        a polars String/Categorical/Enum Series), mapped in one compiled pass
        (:meth:`event_types_of`); or a ``str``, the name of that column in ``rows`` (a
        structured array's field).

        Rows are grouped by type in one compiled counting pass; types are dispatched in
        ascending id order. Per type, batch subscribers get that type's rows in their
        original order, in the kind given (a numpy array, a DataFrame or Arrow slice:
        one gather for the batch, none when its rows are already grouped by type);
        per-event subscribers get each row: the array's scalar or record, or, from a frame,
        a dict (column -> value). Bad input (lengths, a missing column, nulls, floats or
        unknown names in ``types``) raises before any handler runs.
        """
        self._need()
        ids, rows = _batch.prepare(self, types, rows, False, self._registry)
        return _batch.route(self, ids, rows)

    def publish_batch(self, types, rows, timeout=None, lane=None):
        """Queue a batch (checked, its names mapped and copied now) as one ring event; the
        consumer dispatches it like :meth:`emit_batch`, in order with this producer's other
        events of its lane (``lane=``: as for :meth:`publish`; else ``"default"``). Returns
        True if queued (False if dropped under ``overflow="drop"``)."""
        self._need_open()
        batch = _batch.prepare(self, types, rows, True, self._registry)
        if self._batch_type < 0:
            self._batch_type = self._registry.batch_event_type(self)
        cdef RingBuffer ring = self._ring if lane is None else self._lane_ring(-1, lane)
        return ring.publish_c(self._batch_type, batch, timeout_arg(timeout)) == 1

    def event_types_of(self, names, register=False):
        """The event type ids of a column of names, as an int64 numpy array.

        ``names``: a list or numpy array of str, a pandas string or Categorical column, an
        Arrow string or dictionary array, a polars String, Categorical or Enum Series;
        mapped in one compiled pass that looks each distinct name up once (a Categorical or
        dictionary column: its categories once, then its codes). An unknown name raises
        ValueError naming it, unless ``register=True`` registers it (as
        :meth:`event_type`, in the order met). A null raises ValueError.

        >>> tick, trade = bus.event_type("md.tick"), bus.event_type("md.trade")
        >>> (bus.event_types_of(["md.tick", "md.trade", "md.tick"])
        ...  == [tick, trade, tick]).all()
        True
        """
        self._need()
        if not isinstance(register, bool):
            raise TypeError(f"register must be True or False, got {register!r}")
        from ringbus import columns
        import numpy as np
        ids = columns.event_ids(self._registry, names, register=register, arg="names")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self._size):
            bad = int(np.flatnonzero((ids < 0) | (ids >= self._size))[0])
            raise ValueError(f"names[{bad}] = {ids[bad]} is not a registered event type id: "
                             f"expected 0 <= id < {self._size}")
        return ids

    # -- the ring: queued delivery ------------------------------------------------------

    cdef inline RingBuffer _ring_for(self, Py_ssize_t t, object lane):
        # Without lanes, one branch; with them, the type's lane is one list index.
        if self._type_ring is None and lane is None:
            return self._ring
        return self._lane_ring(t, lane)

    cdef RingBuffer _lane_ring(self, Py_ssize_t t, object lane):
        cdef object r
        if lane is None:
            if t < len(self._type_ring):
                r = self._type_ring[t]
                if r is not None:
                    return <RingBuffer>r
            return self._ring
        r = self._lane_map.get(lane) if self._lane_map is not None else None
        if r is None:
            if lane == _lanes_py.DEFAULT_LANE or (isinstance(lane, _lanes_py.Lane)
                                                   and lane.ring is self._ring):
                return self._ring
            _lanes_py.refuse_lane(self._lane_list, lane)       # raises, naming the problem
        return <RingBuffer>r

    def publish(self, event_type, payload=None, timeout=None, lane=None):
        """Put an event into the ring for a consumer; True if queued, False if dropped.

        A full ring waits for room up to ``timeout`` seconds, then the bus's ``overflow``
        policy acts: "drop" drops this event (counted in ``stats()["dropped"]``, returns
        False), "block" and "raise" raise :class:`RingFull`. ``timeout=None`` is the
        policy's own wait: forever under "block", none under "raise" and "drop".

        A handler that publishes into the full ring it is draining cannot wait (only it
        makes room): its event goes into the consumer's follow-up backlog, dispatched right
        after the ring events claimed before it (past ``backlog=``, the policy acts at once:
        "drop" drops, "block" and "raise" raise RingFull).

        ``lane=`` (a :class:`ringbus.Lane` or a lane's name): the lane to queue it in,
        instead of the type's lane (:meth:`set_lane`) or ``"default"``; see
        :meth:`add_lane`. Its capacity and overflow policy apply.
        """
        self._need_open()
        cdef Py_ssize_t t = self._checked(event_type)
        if self._type_ring is None and lane is None:    # no lanes: the ring, borrowed
            return self._ring.publish_c(t, payload, timeout_arg(timeout)) == 1
        return self._lane_ring(t, lane).publish_c(t, payload, timeout_arg(timeout)) == 1

    def publish_conflated(self, event_type, key, payload=None, timeout=None):
        """Publish an event that conflates per ``(event_type, key)``: while one of the same
        type and key is queued and not yet dispatched, its payload is replaced by this one
        (counted in ``stats()["conflated"]``) instead of queuing another. Keys are dispatched
        in first-arrival order. Returns True (queued or conflated), or False when the ring's
        ``overflow="drop"`` dropped it. For market data: when the consumer lags, only the
        latest payload of a key matters. See ringbus.conflation."""
        self._need_open()
        cdef Py_ssize_t t = self._checked(event_type)
        cdef Conflator conflator = self._conflator
        if conflator is None:
            conflator = self._conflator = self._registry.conflator(self)
        return conflator.publish_c(self, t, key, payload, timeout) == 1

    def try_publish(self, event_type, payload=None, lane=None):
        """Queue an event only if there is room now; returns False when full (never blocks,
        counts nothing as dropped). ``lane=`` as for :meth:`publish`."""
        self._need_open()
        cdef Py_ssize_t t = self._checked(event_type)
        if self._type_ring is None and lane is None:
            return self._ring.try_publish_c(t, payload) == 1
        return self._lane_ring(t, lane).try_publish_c(t, payload) == 1

    def publish_many(self, event_type, payloads, timeout=None, lane=None):
        """Queue one event of ``event_type`` per payload, claiming runs of slots at once;
        returns how many were queued. The overflow policy applies as for :meth:`publish`;
        ``lane=`` too."""
        self._need_open()
        cdef Py_ssize_t t = self._checked(event_type)
        return self._ring_for(t, lane).publish_many_c(t, payloads, timeout_arg(timeout))

    def drain(self, max_events=None):
        """Dispatch queued events on this thread, in order; return how many.

        Runs until the ring is empty (including events handlers publish meanwhile) or
        ``max_events`` were dispatched. A BaseException from a handler stops at an event
        boundary; the events after it stay queued and a later drain delivers them once.
        """
        self._need()
        try:
            return self._drain(max_events)
        except RuntimeError:
            # Refused (before dispatching anything) because a loop consumer is registered
            # whose event loop was closed: undo it and drain. Cold path only.
            if not _aio.reap_closed_loop(self):
                raise
        return self._drain(max_events)

    cdef object _drain(self, object max_events):
        if self._lanes is None:
            return self._ring.drain(self, max_events)
        n = -1 if max_events is None else int_arg("max_events", max_events, low=0,
                                                  high=PY_SSIZE_T_MAX, none_ok=True)
        return self._lanes.drain(self, n)

    def start(self):
        """Start the consumer thread(s): they wait for events with the GIL released (the
        ``wait`` strategy) and take the GIL once per batch."""
        self._need_open()
        try:
            self._start()
        except RuntimeError:
            if not _aio.reap_closed_loop(self):     # as in drain()
                raise
            self._start()

    cdef int _start(self) except -1:
        if self._lanes is None:
            self._ring.start_c(self)
        else:
            self._lanes.start(self)
        return 0

    def stop(self, drain=True, timeout=None):
        """Stop the consumer thread(s). ``drain=True`` first dispatches everything published
        before the call; ``drain=False`` stops at the next event boundary (the rest stays
        queued). Re-raises what ended a consumer thread, if anything did."""
        self._need()
        if self._lanes is None:
            self._ring.stop(drain, timeout)
        else:
            if not isinstance(drain, bool):
                raise TypeError(f"drain must be True or False, got {drain!r}")
            self._lanes.stop(drain, timeout_arg(timeout))

    @contextmanager
    def running(self):
        """``with bus.running(): ...`` — start() on entry, stop(drain=True) on exit."""
        self.start()
        try:
            yield self
        finally:
            self.stop(True, None)

    @property
    def pending(self):
        """Events published and not yet dispatched (in every lane)."""
        self._need()
        if self._lanes is None:
            return self._ring.pending
        return sum(lane.ring.pending for lane in self._lane_list)

    @property
    def ring(self):
        """The bus's RingBuffer (capacity, policies, stages, counters)."""
        self._need()
        return self._ring

    def stage(self, name, handler, *, after=(), before=(), batch=False, on_error="log"):
        """Add a pipeline stage: a consumer with its own thread and sequence that sees each
        event only after the stages in ``after=`` processed it (names or Stage objects;
        ``"dispatch"`` is the stage that runs the bus's handlers). The producer is gated by
        the last stages only. ``handler(event_type, payload)``, or with ``batch=True``
        ``handler(list_of_(event_type, payload))`` once per batch."""
        self._need()
        if self._lanes is not None:
            raise ValueError("stage(): this bus has priority lanes, whose one consumer runs "
                             "only the 'dispatch' stage; a pipeline needs a bus without lanes")
        return self._ring.stage(name, handler, after=after, before=before, batch=batch,
                                on_error=on_error)

    def event_type(self, name_or_id):
        """Register an event type; return its dense int id.

        The same name always gives the same id. An int is accepted as an id (and
        registered, unnamed, if it was not yet).
        """
        self._need()
        return self._registry.event_type(name_or_id)

    def event_name(self, event_type):
        """The name of ``event_type`` (None for an id registered as a bare int)."""
        self._need()
        return self._registry.event_name(event_type)

    @property
    def event_types(self):
        """The named event types as a dict name -> id (a copy)."""
        self._need()
        return self._registry.event_types

    def subscribe(self, event_type, handler, *, priority=0, after=(), before=(), name=None,
                  weak=None, once=False, concurrent=False, with_type=False):
        """Call ``handler(payload)`` for every event of ``event_type``; return a Subscription.

        Order for one event: ``after=`` / ``before=`` edges first (Subscriptions or
        subscription names of the same event type), then higher ``priority`` first, then
        registration order. A cycle raises ValueError naming it and leaves the bus
        unchanged. Bound methods are held weakly unless ``weak=False``, other callables
        strongly unless ``weak=True``. The change applies from the next event.

        ``once=True``: called for the first event only, then unsubscribed. A coroutine
        function is an async handler: awaited in order by the loop consumer
        (:meth:`run_async`), or with ``concurrent=True`` (or a number, the most in flight)
        run as tasks; see ``ringbus.aio``.

        ``with_type=True``: called as ``handler(event_type, payload)``, one handler for
        several types told which one it got (a plain function only: not async, not once).
        """
        self._need()
        return self._registry.subscribe(event_type, handler, priority=priority, after=after,
                                        before=before, name=name, weak=weak, once=once,
                                        concurrent=concurrent, with_type=with_type)

    def on(self, event_type, *, priority=0, after=(), before=(), name=None, weak=None,
           once=False, concurrent=False, with_type=False):
        """Decorator form of :meth:`subscribe`; returns the function unchanged.

        >>> @bus.on(TICK, priority=5)
        ... def on_tick(payload): ...
        """
        self._need()
        return self._registry.on(event_type, priority=priority, after=after, before=before,
                                 name=name, weak=weak, once=once, concurrent=concurrent,
                                 with_type=with_type)

    # -- priority lanes ---------------------------------------------------------------------

    def add_lane(self, name, priority, *, capacity=4096, overflow="block", producers="multi",
                 batch=256, patience=8, backlog=None, types=()):
        """Add a priority lane: a ring of its own (``capacity``, ``overflow``, ``producers``
        and ``backlog`` as for :class:`Bus`), consumed by the bus's one consumer (thread,
        event loop or drain) before the lanes of lower ``priority`` (an int; the bus's own
        ring is the lane ``"default"``, priority 0; each lane has its own). Returns the
        :class:`ringbus.Lane`.

        Events go to the lane given to the publish call (``lane=``), else to their type's
        lane (``types=`` here, or :meth:`set_lane`), else to ``"default"``.

        The consumer takes one batch at a time, of at most the lane's ``batch`` events,
        from the highest lane with events, unless a lower lane with events has been passed
        over ``patience`` turns in a row: then that lane takes the turn. So an event of a
        higher lane waits at most for the batch in hand, and no lane starves. FIFO holds
        per producer per lane. Only while nothing consumes the bus; a bus with lanes has no
        pipeline stages, and at most 8 lanes.
        """
        self._need_open()
        self._check_lanes_idle("add_lane()")
        if len(self._ring._consumers) != 1:
            raise ValueError("add_lane(): this bus has pipeline stages; a bus with lanes has "
                             "one consumer, which runs only the 'dispatch' stage")
        lanes = list(self._lane_objects())
        lane = _lanes_py.new_lane(self, lanes, name, priority, capacity, overflow, producers,
                                  batch, patience, backlog, self._ring.wait)
        cdef RingBuffer ring = lane.ring
        ring._owned = True                  # closed and reported by Bus.close
        ring._share_parker(self._ring)      # the one consumer parks once for every lane
        if self._ring._stamping:
            ring._set_stamping(True)
        lanes.append(lane)
        lanes.sort(key=lambda x: -x.priority)
        self._lane_list = lanes
        self._lane_map = {}
        for x in lanes:
            self._lane_map[x] = x.ring
            self._lane_map[x.name] = x.ring
            self._lane_map[x.ring] = x.ring     # _lane_arg_of's answer
        if self._type_ring is None:
            self._type_ring = []
        self._lanes_changed()
        for t in types:
            self.set_lane(t, lane)
        return lane

    def set_lane(self, event_type, lane):
        """Route ``event_type``'s events to ``lane`` (a Lane or a lane's name; ``"default"``
        undoes it) from the next publish on. Set it before the type's producers start:
        events already queued in its old lane are not moved."""
        self._need()
        cdef Py_ssize_t t = self._checked(event_type)
        cdef RingBuffer ring = self._lane_ring(t, lane)
        if self._type_ring is None:
            if ring is self._ring:
                return
            raise ValueError(f"lane: this bus has no lane {lane!r} (add_lane first)")
        while len(self._type_ring) <= t:
            self._type_ring.append(None)
        self._type_ring[t] = None if ring is self._ring else ring

    def lane_of(self, event_type):
        """The :class:`ringbus.Lane` that ``event_type``'s events go to by default."""
        self._need()
        cdef Py_ssize_t t = self._checked(event_type)
        cdef RingBuffer ring = self._lane_ring(t, None) if self._type_ring is not None else self._ring
        for lane in self._lane_objects():
            if lane.ring is ring:
                return lane

    def _lane_arg_of(self, Py_ssize_t t):
        """Not API (conflation, request): a ``lane=`` that routes as ``t``'s own events do;
        None for the default lane (or a bus without lanes)."""
        self._need()
        if self._type_ring is None or t >= len(self._type_ring):
            return None
        return self._type_ring[t]

    @property
    def lanes(self):
        """The bus's lanes, highest priority first (just ``"default"`` until
        :meth:`add_lane`)."""
        self._need()
        return tuple(self._lane_objects())

    def _lane_objects(self):
        self._need()
        if self._lane_list is None:
            self._lane_list = [_lanes_py.default_lane(self, self._ring)]
        return self._lane_list

    def _rings(self):
        """Not API: every lane's ring, highest priority first."""
        self._need()
        if self._lanes is None:
            return [self._ring]
        return [lane.ring for lane in self._lane_list]

    @property
    def _consumed(self):
        """Not API (ringbus.aio): what a consumer consumes, the ring or the lanes."""
        self._need()
        return self._ring if self._lanes is None else self._lanes

    def _check_lanes_idle(self, what):
        cdef RingBuffer ring
        self._need()
        for ring in self._rings():
            if ring._started or ring._draining or ring._signal_fd >= 0:
                raise RuntimeError(f"{what} while the bus is consumed (a consumer thread, "
                                   f"an event loop or a drain): stop() or detach() first")

    def _lanes_changed(self):
        self._need()
        if self._type_ring is None:         # no lane added: the ring's own consumer
            return
        lanes = self._lane_list
        self._lanes = LaneConsumer([x.ring for x in lanes], [x.batch for x in lanes],
                                   [x.patience for x in lanes])

    def subscriptions(self, event_type):
        """The live subscriptions of ``event_type``, in dispatch order."""
        self._need()
        return self._registry.subscriptions(event_type)

    def stats(self):
        """Counters as a dict: emitted, handler_calls, handler_errors, stopped (events a
        guard's STOP ended early), conflated (publish_conflated calls that replaced a queued
        payload), subscriptions, event_types (registered on this bus), and from the ring: published, dispatched, dropped, pending, backlog
        (follow-ups a consumer's handlers published into its full ring, waiting)."""
        self._need()
        counters = self._registry.stats()
        ring = self._ring.stats()
        for key in ("published", "dispatched", "dropped", "pending", "backlog"):
            counters[key] = ring[key]
        if self._lanes is not None:
            lanes = {lane.name: lane.stats() for lane in self._lane_list}
            for key in ("published", "dispatched", "dropped", "pending", "backlog"):
                counters[key] = sum(lane[key] for lane in lanes.values())
            counters["lanes"] = lanes
        return counters

    # -- metrics ---------------------------------------------------------------------------

    def enable_metrics(self):
        """Meter every subscription from the next event on: calls, errors and the time of
        each call in a log-linear histogram (see :meth:`metrics`). Off by default: a
        subscription that is not metered pays one predictable branch per call."""
        self._need()
        self._set_metrics(True)

    def disable_metrics(self):
        """Stop metering (what was counted stays readable until reset_metrics)."""
        self._need()
        self._set_metrics(False)

    def _set_metrics(self, bint on):
        # The ring stamps publish times first: a subscription metered from the next event
        # on then sees its queueing delay too.
        for ring in self._rings():
            ring._set_stamping(on)
        self._registry.set_metrics(on)

    def metrics(self):
        """Plain data, a snapshot::

            {"enabled": bool, "clock": "tsc" | "monotonic",
             "handlers": [{"subscription", "event_type", "event_name", "batch", "is_async",
                           "calls", "errors", "time_ns": H, "wall_ns": H | None}, ...],
             "publish_to_handle": [{"event_type", "event_name", "events",
                                    "delay_ns": H}, ...],
             "ring": {"capacity", "fill", "fill_ratio", "published", "dispatched",
                      "dropped", "backlog", "high_water", "stages_high_water",
                      "blocked_waits", "blocked_seconds", "lag_events", "lag_seconds",
                      "stages_lag": {stage: {"events", "age_seconds"}}},
             "counters": stats()}

        where H is a histogram's summary ``{"count", "min", "max", "mean", "p50", "p90",
        "p99", "p99_9", "overflow"}`` in nanoseconds, within 1/64 (see ringbus.Histogram).

        ``handlers`` lists the metered subscriptions (those subscribed while metrics were
        on, or when they were enabled), in event type then dispatch-registration order.
        ``time_ns``: each call's time on the thread that dispatched it. ``wall_ns`` (async
        handlers): each coroutine's time from its start to its end, awaits included.
        ``publish_to_handle``: per event type, the delay from ``publish`` to the moment
        the ring's consumer took the event to dispatch it (queueing, apart from handler
        time), for events published while metrics were on.
        ``high_water``: the most events a consumer found queued for it when it took a
        batch (per stage in ``stages_high_water``); ``blocked_*``: how often and how long
        this process's producers waited for room in the full ring; ``lag_events`` /
        ``lag_seconds``: events the dispatch stage has not taken yet and how long ago the
        oldest of them was published (None: none, or it was published with metrics off),
        per stage in ``stages_lag``.
        """
        self._need()
        from ringbus import metrics as _metrics
        return _metrics.snapshot(self)

    def reset_metrics(self):
        """Zero every subscription's calls, errors and time histograms, the
        publish-to-handle delays, the ring's high-water mark and its producers' waits."""
        self._need()
        self._meter_reset()
        self._registry.reset_walls()
        for ring in self._rings():
            ring._flow_reset()

    def enable_watchdog(self, threshold=0.1):
        """Warn (the ``ringbus`` logger) about a handler call that runs longer than
        ``threshold`` seconds on one of this bus's consumer threads: once per call, naming
        its subscription and event and showing the thread's stack. It never interrupts the
        handler. A thread looks every threshold/4; closing the bus ends it. Returns the
        watchdog (``.reported``: how many calls it reported; ``.stop()``)."""
        self._need()
        from ringbus.metrics.watchdog import Watchdog
        if self._watchdog is not None:
            self._watchdog.stop()
        self._watchdog = Watchdog(self, threshold)
        if not self._watchdog_closer:
            self._add_closer(lambda left: self.disable_watchdog())
            self._watchdog_closer = True
        return self._watchdog

    def disable_watchdog(self):
        """Stop the slow-handler watchdog (if one runs)."""
        self._need()
        dog, self._watchdog = self._watchdog, None
        if dog is not None:
            dog.stop()

    def metrics_report(self):
        """:meth:`metrics` as a compact table (a str): one row per subscription with its
        calls, errors and p50/p99/p99.9/max call time in µs, then the ring's fill."""
        self._need()
        from ringbus import metrics as _metrics
        return _metrics.report(self)

    def __repr__(self):
        if self._registry is None:
            return f"<{type(self).__module__}.{type(self).__qualname__} (not initialised)>"
        s = self.stats()
        return (f"<ringbus.Bus event_types={s['event_types']} "
                f"subscriptions={s['subscriptions']} emitted={s['emitted']}>")

    # -- asyncio -------------------------------------------------------------------------
    # Thin entry points; the glue is plain Python in ringbus.aio.

    def run_async(self, *, batch=1024):
        """Coroutine: consume the ring on the running event loop until cancelled.

        ``await bus.run_async()`` (or ``asyncio.create_task(bus.run_async())``). Events
        published from any thread or task wake the loop (one eventfd write when the consumer
        is idle, none per event); they are dispatched in batches of at most ``batch``, with a
        yield to the loop after each. Async handlers are awaited in order here. Cancelling
        the task stops it at an event boundary: the events not yet dispatched stay queued.
        """
        self._need_open()
        return _aio.run_async(self, batch)

    def attach(self, loop=None, *, batch=1024):
        """Start :meth:`run_async` as a task on ``loop`` (default: the running loop) and
        return it (a ``concurrent.futures.Future`` when called from another thread)."""
        self._need_open()
        return _aio.attach(self, loop, batch)

    def detach(self):
        """Cancel the loop consumer, if one runs; events not dispatched stay queued."""
        self._need()
        _aio.detach(self)

    def publish_async(self, event_type, payload=None, timeout=None, lane=None):
        """Awaitable publish: ``await bus.publish_async(T, payload)``.

        The overflow rule of :meth:`publish`, with the waits made without blocking the
        loop's thread: a full ring waits for room up to ``timeout`` seconds (``None``:
        forever under "block", not at all under "raise" and "drop"), then the policy acts
        (RingFull, or False and counted under "drop"). With room, the awaitable is a
        finished future: nothing suspends, nothing is allocated. ``lane=`` as for
        :meth:`publish`.
        """
        self._need_open()
        cdef Py_ssize_t t = self._checked(event_type)
        if self._type_ring is None and lane is None:
            if self._aio_ready is not None and self._ring.try_publish_c(t, payload) == 1:
                return self._aio_ready
            return _aio.publish_wait(self, t, payload, timeout, self._ring)
        cdef RingBuffer ring = self._lane_ring(t, lane)
        if self._aio_ready is not None and ring.try_publish_c(t, payload) == 1:
            return self._aio_ready
        return _aio.publish_wait(self, t, payload, timeout, ring)

    def request(self, event_type, payload=None, timeout=None):
        """Publish a request; return a future of its reply.

        The handlers of ``event_type`` run (in order, async ones awaited) with ``payload``;
        the first to return something other than None, or to call
        ``ringbus.aio.current_request().reply(value)``, answers. An ``asyncio.Future`` when
        called in a running loop, else a ``ringbus.aio.ReplyFuture`` (a
        ``concurrent.futures.Future`` that can be awaited too). A handler's exception,
        or ``timeout`` seconds without a reply (TimeoutError), resolves it with that
        exception; NoHandlerError at once when nothing handles ``event_type``. A consumer
        serves it (attach/run_async, start, or a drain after the call); with
        ``timeout=None`` and no consumer running, a RuntimeWarning after
        ``ringbus.aio.UNSERVED_REQUEST_GRACE`` seconds says nothing is dispatching it.
        """
        self._need_open()
        return _aio.request(self, event_type, payload, timeout)

    def expect(self, event_type, predicate=None, timeout=None):
        """``await bus.expect(T, predicate, timeout)``: the first payload of ``event_type``
        dispatched from this call on for which ``predicate(payload)`` is true (any, without
        a predicate).

        Subscribes at once and returns a future (an ``asyncio.Future`` in a running loop,
        else a ``ringbus.aio.ReplyFuture``, a ``concurrent.futures.Future`` that can be
        awaited too); it unsubscribes when the future is resolved,
        times out (TimeoutError after ``timeout`` seconds) or is cancelled. An exception
        from ``predicate`` resolves the future with it.
        """
        self._need()
        return _aio.expect(self, event_type, predicate, timeout)

    def _handler_error(self, Py_ssize_t t, payload, subscription, exc):
        # An async handler failed after its dispatch returned: count it and apply the policy
        # as _handler_failed does inline. Returns the exception under on_error="raise".
        self._handler_errors += 1
        if self._raise_errors:
            return exc
        if self._error_sink is not None:
            self._error_sink(t, payload, subscription, exc)
        return None

    def _handler_calls_add(self, Py_ssize_t n):
        # Handlers that ringbus.aio called itself (those after an awaited one).
        self._handler_calls += n
