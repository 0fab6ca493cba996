"""The public Bus: the compiled dispatch table plus a plain-Python registration facade."""
from cpython.long cimport PyLong_CheckExact

from ringbus._capi cimport ringbus_index_or_neg

from ringbus.registry import Registry


cdef class Bus(DispatchTable):
    """An in-process event bus.

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
    """

    def __init__(self, *, on_error="log", max_depth=64):
        self._registry = Registry(self, on_error=on_error, max_depth=max_depth)

    # Defined here, not on DispatchTable: CPython's specialised call of a method
    # descriptor requires the instance's exact type, so an inherited emit() was ~15 ns slower.
    def emit(self, event_type, payload=None):
        """Run the handlers of ``event_type`` now, on this thread; return how many ran.

        ``event_type`` must be an int id (see :meth:`event_type`).

        Handlers run in the order the ordering graph fixed at registration. An Exception in
        one goes to the bus's error policy and the others still run.
        """
        cdef Py_ssize_t t
        # The common case in two C comparisons; check_id() owns the error messages.
        if PyLong_CheckExact(event_type):
            t = ringbus_index_or_neg(event_type)
            if <size_t>t >= <size_t>self._size:
                t = self.check_id(event_type)
        else:
            t = self.check_id(event_type)
        return self.dispatch(t, payload)

    def event_type(self, name_or_id):
        """Register an event type; return its dense int id.

        The same name always gives the same id. An int is accepted as an id (and
        registered, unnamed, if it was not yet).
        """
        return self._registry.event_type(name_or_id)

    def event_name(self, event_type):
        """The name of ``event_type`` (None for an id registered as a bare int)."""
        return self._registry.event_name(event_type)

    @property
    def event_types(self):
        """The named event types as a dict name -> id (a copy)."""
        return self._registry.event_types

    def subscribe(self, event_type, handler, *, priority=0, after=(), before=(), name=None,
                  weak=None):
        """Call ``handler(payload)`` for every event of ``event_type``; return a Subscription.

        Order for one event: ``after=`` / ``before=`` edges first (Subscriptions or
        subscription names of the same event type), then higher ``priority`` first, then
        registration order. A cycle raises ValueError naming it and leaves the bus
        unchanged. Bound methods are held weakly unless ``weak=False``, other callables
        strongly unless ``weak=True``. The change applies from the next event.
        """
        return self._registry.subscribe(event_type, handler, priority=priority, after=after,
                                        before=before, name=name, weak=weak)

    def on(self, event_type, *, priority=0, after=(), before=(), name=None, weak=None):
        """Decorator form of :meth:`subscribe`; returns the function unchanged.

        >>> @bus.on(TICK, priority=5)
        ... def on_tick(payload): ...
        """
        return self._registry.on(event_type, priority=priority, after=after, before=before,
                                 name=name, weak=weak)

    def subscriptions(self, event_type):
        """The live subscriptions of ``event_type``, in dispatch order."""
        return self._registry.subscriptions(event_type)

    def stats(self):
        """Counters as a dict: emitted, handler_calls, handler_errors, subscriptions,
        event_types."""
        return self._registry.stats()

    def __repr__(self):
        s = self.stats()
        return (f"<ringbus.Bus event_types={s['event_types']} "
                f"subscriptions={s['subscriptions']} emitted={s['emitted']}>")
