"""A handler's registration on one event type, and how the dispatch table calls it."""
from __future__ import annotations

import types
import weakref
from typing import Any, Callable, Optional

from ringbus._dispatch import STRONG as CALL_STRONG, TYPED as CALL_TYPED, WEAK as CALL_WEAK, \
    WEAK_METHOD as CALL_WEAK_METHOD


class Subscription:
    """Returned by ``Bus.subscribe``. ``unsubscribe()`` is idempotent; also a context manager.

    >>> with bus.subscribe(TICK, print) as sub:
    ...     bus.emit(TICK, 1)
    """

    __slots__ = ("event_type", "priority", "name", "after", "before", "seq", "batch",
                 "with_type", "once", "is_async", "concurrent",
                 "_bus", "_target", "_ref", "_kind", "_htarget", "_href", "_hkind",
                 "_fired", "_active", "_meter", "_wall", "_parent", "__weakref__")

    def __init__(self, bus, event_type: int, handler: Callable[[Any], Any], *,
                 priority: int, name: Optional[str], seq: int, weak: Optional[bool],
                 batch: bool = False, once: bool = False, is_async: bool = False,
                 concurrent: int = 0, with_type: bool = False):
        self.event_type = event_type
        #: True for ``subscribe_batch``: called once per group of rows with an array view.
        self.batch = batch
        #: True for ``with_type=True``: called as ``handler(event_type, payload)`` (a batch
        #: handler: ``handler(event_type, rows)``).
        self.with_type = with_type
        #: True for ``subscribe(..., once=True)``: unsubscribed when it is first called.
        self.once = once
        #: True for a coroutine function (an async handler).
        self.is_async = is_async
        #: Async handlers: 0 awaited in order; N > 0 run as tasks, at most N in flight.
        self.concurrent = concurrent
        self.priority = priority
        self.name = name
        self.seq = seq
        self.after: tuple[Subscription, ...] = ()
        self.before: tuple[Subscription, ...] = ()
        # once=True: an itertools.count whose first next() is the one call (ringbus.aio).
        self._fired: Optional[Any] = None
        # A weak reference back: the bus owns its subscriptions, never the other way round,
        # so dropping a bus frees its handlers without waiting for the cycle collector.
        self._bus = weakref.ref(bus)
        self._active = True
        # Its meter in the bus's table (1-based), once metrics were enabled; 0: none.
        self._meter = 0
        self._wall: Optional[Any] = None    # an async handler's wall times (a Histogram), metered
        # A pattern's member (ringbus.patterns): the PatternSubscription it belongs to.
        self._parent: Optional[Any] = None
        self._bind(handler, weak)

    def _bind(self, handler, weak: Optional[bool]) -> None:
        # _htarget/_href/_hkind: how to reach the user's handler. _target/_ref/_kind: what the
        # dispatch table calls, the same unless ringbus.aio wraps it (async, once=True).
        self._htarget: Any
        self._href: Any
        if weak is None:
            weak = isinstance(handler, types.MethodType)
        if not weak:
            self._htarget, self._href, self._hkind = handler, None, CALL_STRONG
        else:
            # The callback holds the subscription weakly too: no cycle through the referent.
            on_death = _make_on_death(weakref.ref(self))
            try:
                if isinstance(handler, types.MethodType):
                    self._htarget = handler.__func__
                    self._href = weakref.ref(handler.__self__, on_death)
                    self._hkind = CALL_WEAK_METHOD
                else:
                    self._htarget = None
                    self._href = weakref.ref(handler, on_death)
                    self._hkind = CALL_WEAK
            except TypeError:
                raise TypeError(
                    f"handler {handler!r} cannot be held weakly (weak=True); "
                    f"pass weak=False") from None
        self._target, self._ref, self._kind = self._htarget, self._href, self._hkind
        if self.with_type:
            # The table passes the event type first; _hkind (how to reach the handler) stays.
            self._kind |= CALL_TYPED

    @property
    def handler(self) -> Optional[Callable[[Any], Any]]:
        """The subscribed callable, or None once a weakly held one has died."""
        if self._hkind == CALL_STRONG:
            return self._htarget
        obj = self._href()
        if obj is None:
            return None
        if self._hkind == CALL_WEAK_METHOD:
            return types.MethodType(self._htarget, obj)
        return obj

    @property
    def active(self) -> bool:
        """True until ``unsubscribe()`` (or the death of a weakly held handler)."""
        return self._active

    def unsubscribe(self) -> None:
        """Remove this handler from the bus, from the next event on. Idempotent."""
        if not self._active:
            return
        bus = self._bus()
        if bus is None:
            self._active = False
            return
        bus._remove(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        label = self.name if self.name is not None else _describe(self.handler)
        state = "" if self._active else ", inactive"
        return (f"<Subscription {label!s} on event {self.event_type}, "
                f"priority={self.priority}{state}>")

    def __str__(self) -> str:
        return self.name if self.name is not None else f"#{self.seq}:{_describe(self.handler)}"


def _make_on_death(sub_ref):
    def on_death(_referent_ref):
        sub = sub_ref()
        if sub is not None:
            sub.unsubscribe()
    return on_death


def _describe(handler) -> str:
    if handler is None:
        return "<dead handler>"
    return getattr(handler, "__qualname__", None) or repr(handler)
