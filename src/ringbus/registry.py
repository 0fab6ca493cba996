"""Registration for a Bus, in plain Python: names, subscriptions, order, error policies.

Every change ends in one call into the compiled table (``_swap``) with a freshly built,
immutable HandlerArray; nothing here runs on the path of an event.
"""
from __future__ import annotations

import difflib
import inspect
import itertools
import logging
import threading
import types
import weakref
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Union

from ringbus import aio, identity, patterns
from ringbus._checks import int_arg
from ringbus._dispatch import HandlerArray
from ringbus._histogram import Histogram
from ringbus.ordering import OrderCycleError, order
from ringbus.subscription import Subscription

if TYPE_CHECKING:
    from ringbus.conflation import Conflator

__all__ = ["Registry"]

log = logging.getLogger("ringbus")

EventType = Union[int, str]
Handler = Callable[[Any], Any]
ErrorPolicy = Union[str, Callable[[int, Any, Subscription, BaseException], Any]]

#: The name of the internal event type that carries queued batches.
BATCH_EVENT_TYPE = "ringbus.batch"

#: The name of the internal event type that carries requests (Bus.request).
REQUEST_EVENT_TYPE = "ringbus.request"

#: ``subscribe(..., concurrent=True)``: this many tasks of the handler in flight at most.
DEFAULT_CONCURRENCY = 64

MAX_EVENT_TYPES = identity.MAX_EVENT_TYPES


class Registry:
    """The registration state of one Bus; the Bus's methods delegate here.

    It holds its table weakly: the Bus owns the Registry, never the other way round.
    """

    __slots__ = ("_table", "_lock", "_names", "_ids", "_here", "_patterns", "_conflator",
                 "_subs", "_ranked", "_seq", "_on_error",
                 "_aio", "_metered", "__weakref__")

    def __init__(self, table, *, on_error: ErrorPolicy = "log", max_depth: int = 64):
        max_depth = int_arg("max_depth", max_depth, low=1, high=2**31 - 1)
        self._table = weakref.ref(table)
        self._lock = threading.RLock()
        self._names: dict[str, int] = {}
        self._ids: list[Optional[str]] = []      # per id: its name on this bus
        self._here = bytearray()                    # per id: 1 if registered on this bus
        self._patterns: list[patterns.PatternSubscription] = []    # active, in seq order
        self._conflator: Optional[Conflator] = None     # ringbus.conflation, on first use
        self._subs: list[list[Subscription]] = []   # per id, registration order
        self._ranked: list[tuple[Subscription, ...]] = []   # per id, dispatch order
        self._seq = 0
        self._aio: Optional[aio.AioState] = None
        self._metered = False                       # per-subscription metrics on
        self._set_error_policy(on_error, max_depth)

    def _set_error_policy(self, on_error: ErrorPolicy, max_depth: int) -> None:
        if isinstance(on_error, str):
            if on_error == "log":
                sink = self._log_error
            elif on_error == "raise":
                sink = None
            else:
                raise ValueError(
                    f"on_error must be 'log', 'raise' or a callable, got {on_error!r}")
        elif callable(on_error):
            sink = self._callback_error(on_error)
        else:
            raise TypeError(
                f"on_error must be 'log', 'raise' or a callable, got {type(on_error).__name__}")
        self._on_error = on_error
        self.table._configure(max_depth=max_depth, raise_errors=on_error == "raise",
                              error_sink=sink)

    @property
    def aio(self) -> "aio.AioState":
        """The bus's asyncio state (ringbus.aio), made on first use."""
        state = self._aio
        if state is None:
            with self._lock:
                if self._aio is None:
                    self._aio = aio.AioState(self.table)
                state = self._aio
        return state

    @property
    def table(self):
        table = self._table()
        if table is None:
            raise ReferenceError("the Bus of this registration has been garbage collected")
        return table

    # -- event types -------------------------------------------------------------------------

    def event_type(self, name_or_id: EventType) -> int:
        """Register an event type on this bus and return its dense integer id.

        Ids are process-wide (ringbus.identity): a name has the same id on every bus. An
        int is accepted as an id and registered (allocated unnamed in the process if
        nothing has it yet).
        """
        with self._lock:
            if isinstance(name_or_id, str):
                if not name_or_id:
                    raise ValueError("event type name must be a non-empty str")
                if "*" in name_or_id or ">" in name_or_id:
                    raise ValueError(f"event type name {name_or_id!r} contains '*' or '>': "
                                     f"those make topic patterns, which are not names")
                t = self._names.get(name_or_id)
                if t is None:
                    t = self._register(identity.id_of(name_or_id))
                return t
            t = self._as_id(name_or_id, "name_or_id")
            if not 0 <= t < MAX_EVENT_TYPES:
                raise ValueError(
                    f"name_or_id must be 0 <= id < {MAX_EVENT_TYPES}, got {name_or_id!r}")
            return self._register(identity.claim(t))

    def event_name(self, event_type: int) -> Optional[str]:
        """The name registered for ``event_type`` (None for an id registered as an int)."""
        return self._ids[self._known(event_type, "event_type")]

    @property
    def event_types(self) -> Mapping[str, int]:
        """The named event types of this bus, name -> id (a copy)."""
        with self._lock:
            return dict(self._names)

    def _register(self, t: int) -> int:
        """Make process-wide id ``t`` one of this bus's types (its table grows to it)."""
        while len(self._ids) <= t:
            self._ids.append(None)
            self._here.append(0)
            self._subs.append([])
            self._ranked.append(())
        if not self._here[t]:
            name = identity.name_of(t)
            self._ids[t] = name if isinstance(name, str) else None
            self.table._register(t)
            self._here[t] = 1
            if isinstance(name, str):
                self._names[name] = t
                self._matched(t, name)
        return t

    @staticmethod
    def _as_id(value, arg: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            index = getattr(type(value), "__index__", None)
            if index is None or isinstance(value, bool):
                raise TypeError(
                    f"{arg} must be an int id or a str name, got {type(value).__name__}: "
                    f"{value!r}")
            value = index(value)
        if value < 0:
            raise ValueError(f"{arg} must be a non-negative id, got {value!r}")
        return value

    def _known(self, event_type: EventType, arg: str) -> int:
        """An id already in the table (a registered name resolves to its id)."""
        if isinstance(event_type, str):
            t = self._names.get(event_type)
            if t is None:
                raise ValueError(_unknown_name(event_type, arg, self._names))
            return t
        t = self._as_id(event_type, arg)
        if t >= len(self._ids) or not self._here[t]:
            raise ValueError(unregistered(t, arg))
        return t

    # -- subscriptions -------------------------------------------------------------------------

    def subscribe(self, event_type: EventType, handler: Handler, *, priority: int = 0,
                  after: Any = (), before: Any = (), name: Optional[str] = None,
                  weak: Optional[bool] = None, batch: bool = False, once: bool = False,
                  concurrent: Union[bool, int] = False,
                  with_type: bool = False) -> Subscription:
        """Call ``handler(payload)`` for every event of ``event_type``.

        Order for one event: ``after=`` / ``before=`` edges first (Subscriptions or
        subscription names of the same event type), then higher ``priority`` first, then
        registration order. An edge set with a cycle raises ValueError naming it and leaves
        the bus unchanged. Bound methods are held weakly unless ``weak=False``; other
        callables strongly unless ``weak=True``. The change applies from the next event.

        ``once=True``: unsubscribed as it is called for the first time. A coroutine function
        is an async handler, wrapped here into the plain callable the table calls (see
        ringbus.aio); ``concurrent=True`` (at most DEFAULT_CONCURRENCY tasks in flight) or
        ``concurrent=N`` runs it as tasks instead of awaiting it in order.

        ``with_type=True``: called as ``handler(event_type, payload)`` (a batch handler:
        ``handler(event_type, rows)``), the id passed by the compiled dispatch itself.

        A handler with a ``_ringbus_router(bus, event_type)`` method (ringbus.Workers) is
        subscribed as the router it returns for that type.

        ``event_type`` may be a topic pattern (``"md.*"``, ``"md.>"``: ringbus.patterns):
        a member subscription is made for each matching type of this bus, now and when one
        is registered later, ordered like an exact subscription made at the pattern's
        subscribe time. Returns a PatternSubscription.
        """
        group: Any = None
        pattern = isinstance(event_type, str) and patterns.is_pattern(event_type)
        router = getattr(handler, "_ringbus_router", None)
        if router is not None and pattern:
            raise TypeError(f"a worker group routes exact event types: subscribe it to each "
                            f"type, not to the pattern {event_type!r}")
        if router is not None and not isinstance(handler, type):
            group = handler
            handler = router(self.table, self._known(event_type, "event_type"), batch=batch)
        if not isinstance(with_type, bool):
            raise TypeError(f"with_type must be True or False, got {with_type!r}")
        _check_handler(handler, with_type)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {type(priority).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        if weak is not None and not isinstance(weak, bool):
            raise TypeError(f"weak must be True, False or None, got {weak!r}")
        if not isinstance(once, bool):
            raise TypeError(f"once must be True or False, got {once!r}")
        is_async = _is_coroutine_function(handler)
        limit = _concurrency(concurrent)
        if limit and not is_async:
            raise ValueError(f"concurrent= applies to async handlers (coroutine functions); "
                             f"{handler!r} is not one")
        if batch and (is_async or once):
            raise TypeError("subscribe_batch takes a plain function: batch handlers cannot be "
                            "async or once=True")
        if with_type and (is_async or group is not None):
            raise TypeError("with_type=True takes a plain function: not an async handler "
                            "or a worker group (they are called with the payload alone)")
        with self._lock:
            if pattern:
                return self._subscribe_pattern(
                    str(event_type), handler, priority=priority, name=name, batch=batch,
                    once=once, with_type=with_type, edges=(after, before),
                    handler_args={"weak": weak, "is_async": is_async, "concurrent": limit})
            # Names are registered only by event_type(): a typo here must not make a type.
            t = self._known(event_type, "event_type")
            current = self._subs[t]
            if name is not None and any(s.name == name for s in current):
                raise ValueError(f"name {name!r} is already used by a subscription of "
                                 f"event type {t}")
            self._seq += 1
            sub = Subscription(self, t, handler, priority=priority, name=name,
                               seq=self._seq, weak=weak, batch=batch, once=once,
                               is_async=is_async, concurrent=limit, with_type=with_type)
            if self._metered:
                self._meter(sub)
            if is_async or once:
                aio.wrap(self.aio, sub, timed=self._metered)
            sub.after = self._resolve(t, current, after, "after", sub)
            sub.before = self._resolve(t, current, before, "before", sub)
            self._install(t, current + [sub])      # raises, unchanged, on a cycle
            current.append(sub)
            if group is not None:
                group._routed(t, sub)
            return sub

    def _subscribe_pattern(self, pattern: str, handler: Handler, *, priority: int,
                           name: Optional[str], batch: bool, once: bool, with_type: bool,
                           edges: tuple[Any, Any],
                           handler_args: dict[str, Any]) -> "patterns.PatternSubscription":
        tokens = patterns.check_pattern(pattern)
        targets = sorted(t for n, t in self._names.items() if patterns.matches(tokens, n))
        if name is not None:
            for t in targets:
                if any(s.name == name for s in self._subs[t]):
                    raise ValueError(f"name {name!r} is already used by a subscription of "
                                     f"event type {identity.describe(t)}, which "
                                     f"{pattern!r} matches")
        weak = handler_args["weak"]
        if weak if weak is not None else isinstance(handler, types.MethodType):
            # Held weakly like an exact subscription: members are made from the reference.
            try:
                ref = (weakref.WeakMethod(handler) if isinstance(handler, types.MethodType)
                       else weakref.ref(handler))
            except TypeError:
                raise TypeError(f"handler {handler!r} cannot be held weakly (weak=True); "
                                f"pass weak=False") from None
            handler_args = dict(handler_args, ref=ref)
        self._seq += 1
        sub = patterns.PatternSubscription(
            self, pattern, tokens, None if "ref" in handler_args else handler, priority=priority, name=name, seq=self._seq,
            batch=batch, once=once, with_type=with_type, handler_args=handler_args,
            edges=edges)
        if once:
            sub._fired = itertools.count()      # once in all: one count for every member
        try:
            for t in targets:
                self._add_member(sub, t, lenient=False)
        except BaseException:
            for member in list(sub.members.values()):
                self._remove(member)
            raise
        self._patterns.append(sub)
        return sub

    def _add_member(self, parent: "patterns.PatternSubscription", t: int,
                    lenient: bool = True) -> None:
        """Subscribe ``parent``'s handler to type ``t`` (it matches), in its order."""
        args = parent.handler_args
        handler = args["handler"] if "ref" not in args else args["ref"]()
        if handler is None:
            return                              # died; its members' deaths remove it
        current = self._subs[t]
        sub = Subscription(self, t, handler, priority=parent.priority, name=parent.name,
                           seq=parent.seq, weak=args["weak"], batch=parent.batch,
                           once=parent.once, is_async=args["is_async"],
                           concurrent=args["concurrent"], with_type=parent.with_type)
        sub._parent = parent
        sub._fired = parent._fired
        if self._metered:
            self._meter(sub)
        if sub.is_async or sub.once:
            aio.wrap(self.aio, sub, timed=self._metered)
        after, before = parent.edges
        sub.after = self._resolve(t, current, after, "after", sub, lenient)
        sub.before = self._resolve(t, current, before, "before", sub, lenient)
        self._install(t, current + [sub])      # raises, unchanged, on a cycle
        current.append(sub)
        parent.members[t] = sub

    def _matched(self, t: int, name: str) -> None:
        """Type ``t`` (``name``) was just registered: the patterns matching it join it."""
        for parent in self._patterns:
            if patterns.matches(parent.tokens, name):
                self._add_member(parent, t)

    def _remove_pattern(self, parent: "patterns.PatternSubscription") -> None:
        with self._lock:
            if not parent._active:
                return
            parent._active = False
            self._patterns.remove(parent)
            for member in list(parent.members.values()):
                self._remove(member)

    def batch_event_type(self, bus) -> int:
        """The internal event type whose payloads are queued batches (publish_batch).

        Its one handler routes the batch when the consumer reaches it; it holds the bus
        weakly, so the bus is not kept alive by its own table.
        """
        from ringbus import _batch
        bus_ref = weakref.ref(bus)

        def route_queued_batch(batch):
            owner = bus_ref()
            if owner is not None:
                _batch.route(owner, *batch)

        with self._lock:
            t = self.event_type(BATCH_EVENT_TYPE)
            if not self._subs[t]:
                self.subscribe(t, route_queued_batch, name="ringbus.route_batch")
            return t

    def conflator(self, bus) -> "Conflator":
        """The bus's conflation state (ringbus.conflation), made on first use with its
        internal carrier event type and that type's one handler."""
        conflator = self._conflator
        if conflator is None:
            with self._lock:
                if self._conflator is None:
                    from ringbus.conflation import CONFLATED_EVENT_TYPE, Conflator
                    t = self.event_type(CONFLATED_EVENT_TYPE)
                    made = Conflator(bus, t)
                    self.subscribe(t, made.deliver, name="ringbus.deliver_conflated")
                    self._conflator = made
                conflator = self._conflator
        return conflator

    def request_event_type(self, bus) -> int:
        """The internal event type whose payloads are requests (Bus.request).

        Its one handler, a coroutine, runs the handlers of the requested type; like the
        batch router it holds the bus weakly.
        """
        with self._lock:
            t = self.event_type(REQUEST_EVENT_TYPE)
            if not self._subs[t]:
                self.subscribe(t, aio.request_server(bus), name="ringbus.serve_request")
            return t

    def on(self, event_type: EventType, *, priority: int = 0, after: Any = (),
           before: Any = (), name: Optional[str] = None, weak: Optional[bool] = None,
           once: bool = False, concurrent: Union[bool, int] = False,
           with_type: bool = False) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`subscribe`; returns the function unchanged."""
        if callable(event_type) and not isinstance(event_type, (int, str)):
            # `@bus.on` without the event type would replace the function by `decorate`.
            raise TypeError(f"bus.on() takes the event type first: write @bus.on(TYPE), not "
                            f"@bus.on (got {event_type!r})")
        def decorate(handler: Handler) -> Handler:
            self.subscribe(event_type, handler, priority=priority, after=after,
                           before=before, name=name, weak=weak, once=once,
                           concurrent=concurrent, with_type=with_type)
            return handler
        return decorate

    def subscriptions(self, event_type: EventType) -> tuple[Subscription, ...]:
        """The live subscriptions of ``event_type``, in dispatch order."""
        t = self._known(event_type, "event_type")
        return self._ranked[t]

    def stats(self) -> dict[str, int]:
        """Counters: emitted, handler_calls, handler_errors, subscriptions, event_types."""
        counters = self.table._counters()
        with self._lock:
            counters["subscriptions"] = sum(len(s) for s in self._subs)
            counters["event_types"] = sum(self._here)
            counters["conflated"] = self._conflator.conflated if self._conflator else 0
        return counters

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if not sub._active:
                return
            sub._active = False
            remaining = [s for s in self._subs[sub.event_type] if s is not sub]
            self._subs[sub.event_type][:] = remaining
            self._install(sub.event_type, remaining)
            parent = sub._parent
            if parent is not None:
                parent.members.pop(sub.event_type, None)
                if sub.handler is None:         # a weakly held handler died: all of it
                    self._remove_pattern(parent)

    def _resolve(self, t: int, current: list, refs: Any, arg: str,
                 new: Subscription, lenient: bool = False) -> tuple[Subscription, ...]:
        """``after=`` / ``before=`` as subscriptions of type ``t``. ``lenient`` (a pattern's
        member): a name or subscription the type lacks is no edge here, not an error."""
        if refs is None:
            return ()
        if isinstance(refs, (str, Subscription)):
            refs = (refs,)
        try:
            refs = tuple(refs)
        except TypeError:
            raise TypeError(f"{arg} must be a Subscription, a subscription name or an "
                            f"iterable of them, got {type(refs).__name__}") from None
        out = []
        for ref in refs:
            if isinstance(ref, patterns.PatternSubscription):
                member = ref.members.get(t) if ref._bus() is self else None
                if member is None:
                    if lenient:
                        continue
                    raise ValueError(f"{arg}: {ref!r} has no subscription of event type "
                                     f"{identity.describe(t)} on this bus")
                ref = member
            if isinstance(ref, Subscription):
                if lenient and ref.event_type != t:
                    continue
                if ref.event_type != t or ref._bus() is not self:
                    raise ValueError(f"{arg}: {ref!r} is not a subscription of event "
                                     f"type {t} on this bus")
                if not ref._active:
                    raise ValueError(f"{arg}: {ref!r} has been unsubscribed")
                out.append(ref)
            elif isinstance(ref, str):
                if ref == new.name:
                    raise OrderCycleError(
                        f"dependency cycle: {ref} -> {ref} ({arg}= names the subscription "
                        f"itself)", (new, new))
                found = [s for s in current if s.name == ref]
                if not found and lenient:
                    continue
                if not found:
                    raise ValueError(f"{arg}: no subscription named {ref!r} on event type {t}")
                out.append(found[0])
            else:
                raise TypeError(f"{arg} entries must be Subscriptions or names, got "
                                f"{type(ref).__name__}: {ref!r}")
        return tuple(out)

    def _install(self, t: int, subs: list[Subscription]) -> None:
        """Order ``subs`` and swap their HandlerArray into the table (copy-on-write)."""
        preds: dict[Subscription, list[Subscription]] = {s: list(s.after) for s in subs}
        for s in subs:
            for later in s.before:
                if later in preds:
                    preds[later].append(s)
        ranked = tuple(order(subs, preds, key=lambda s: (-s.priority, s.seq)))
        self._ranked[t] = ranked
        per_event = [s for s in ranked if not s.batch]
        metered = self._metered
        group = HandlerArray(ranked, metered) if len(per_event) < len(ranked) else None
        self.table._swap(t, HandlerArray(per_event, metered) if per_event else None, group)

    # -- metrics -------------------------------------------------------------------------------

    def set_metrics(self, on: bool) -> None:
        """Meter every subscription (from the next event), or stop metering (the meters
        keep what they counted)."""
        with self._lock:
            if on == self._metered:
                return
            self._metered = on
            for t, subs in enumerate(self._subs):
                for sub in subs:
                    if on:
                        self._meter(sub)
                    if sub.is_async:
                        aio.wrap(self.aio, sub, timed=on)     # wall time: only when on
                if subs:
                    self._install(t, subs)

    def _meter(self, sub: Subscription) -> None:
        """Give ``sub`` its meter (and an async handler its wall-time histogram)."""
        if not sub._meter:
            sub._meter = self.table._new_meter()
        if sub.is_async and sub._wall is None:
            sub._wall = Histogram()

    def reset_walls(self) -> None:
        """Zero the async handlers' wall-time histograms (bus.reset_metrics)."""
        with self._lock:
            for subs in self._subs:
                for sub in subs:
                    if sub._wall is not None:
                        sub._wall.reset()

    @property
    def metered(self) -> bool:
        return self._metered

    def meters(self) -> list[tuple[Subscription, int, Optional[str]]]:
        """(subscription, event type, its name) of every metered subscription."""
        with self._lock:
            return [(sub, t, self._ids[t]) for t, subs in enumerate(self._subs)
                    for sub in subs if sub._meter]

    # -- error policies ------------------------------------------------------------------------

    def _log_error(self, t: int, payload: Any, sub: Subscription, exc: BaseException) -> None:
        # The arguments are rendered here, each through _safe_repr: logging formats lazily,
        # and a payload whose repr raises would make it drop the whole record, handler
        # error and traceback included (it prints "--- Logging error ---" instead).
        name = self._ids[t] if t < len(self._ids) else None
        log.error("handler %s failed on event %s (%s) with payload %s", _safe_str(sub),
                  t, name if name is not None else "?", _safe_repr(payload),
                  exc_info=(type(exc), exc, exc.__traceback__),
                  extra=log_fields(t, name, sub))

    def _callback_error(self, callback):
        def sink(t, payload, sub, exc):
            try:
                callback(t, payload, sub, exc)
            except Exception:
                # The policy itself failed: the original error must still be seen.
                log.exception("on_error callback %r failed; the handler error was:", callback)
                self._log_error(t, payload, sub, exc)
        return sink


def log_fields(event_type: Optional[int], event_name: Optional[str],
               subscription: Any = None) -> dict[str, Any]:
    """The structured fields of a ``ringbus`` log record (``extra=``), so that handlers and
    filters can route by them: ``ringbus_event_type`` (the id), ``ringbus_event_name`` and
    ``ringbus_subscription`` (its name, or ``#seq:handler``; None when none applies)."""
    return {"ringbus_event_type": event_type, "ringbus_event_name": event_name,
            "ringbus_subscription": None if subscription is None else _safe_str(subscription)}


def _safe_repr(obj: Any) -> str:
    """``repr(obj)``, or ``<unrepresentable T object>`` when that raises: an error report
    must never fail on the object it reports about."""
    try:
        return repr(obj)
    except Exception:
        return f"<unrepresentable {type(obj).__name__} object>"


def _safe_str(obj: Any) -> str:
    """``str(obj)`` with the same fallback as :func:`_safe_repr`."""
    try:
        return str(obj)
    except Exception:
        return f"<unrepresentable {type(obj).__name__} object>"


def _is_coroutine_function(handler: Any) -> bool:
    """A coroutine function, a bound method or partial of one, or an object whose
    ``__call__`` is one."""
    if inspect.iscoroutinefunction(handler):
        return True
    if isinstance(handler, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        return False
    return inspect.iscoroutinefunction(getattr(handler, "__call__", None))


def _concurrency(concurrent: Any) -> int:
    if concurrent is False:
        return 0
    if concurrent is True:
        return DEFAULT_CONCURRENCY
    if not isinstance(concurrent, int) or concurrent < 1:
        raise ValueError(f"concurrent must be True, False or an int >= 1 (the most tasks in "
                         f"flight), got {concurrent!r}")
    return concurrent


def unregistered(t: int, arg: str = "event_type") -> str:
    """The error for id ``t`` given to a bus that never registered it, naming the event."""
    if identity.name_of(t) is identity.FREE:
        return (f"{arg} {t} is not a registered id: no event type in this process has it "
                f"(register one with bus.event_type(name), which returns its id)")
    name = identity.name_of(t)
    how = f"bus.event_type({name!r})" if name is not None else f"bus.event_type({t})"
    return (f"{arg} {identity.describe(t)} is not registered on this bus (ids are "
            f"process-wide: another bus registered it; register it here with {how})")


def _unknown_name(name: str, arg: str, names: Mapping[str, int]) -> str:
    if name in identity._names:
        return (f"{arg} {name!r} (id {identity._names[name]}) is not registered on this bus "
                f"(register it with bus.event_type({name!r}))")
    close = difflib.get_close_matches(name, list(names), n=3)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return (f"{arg} {name!r} is not a registered event type name (register it with "
            f"bus.event_type({name!r})){hint}")


def _never_runs(handler: Any) -> Optional[str]:
    """Why calling ``handler`` would not run its body, or None: a generator function's call
    only makes a generator (and an async generator function's an async generator), which the
    dispatch would count as run and drop."""
    if inspect.isasyncgenfunction(handler):
        return "an async generator function"
    if inspect.isgeneratorfunction(handler):
        return "a generator function"
    return None


def _check_handler(handler: Any, with_type: bool = False) -> None:
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {type(handler).__name__}: {handler!r}")
    never = _never_runs(handler)
    if never is not None:
        raise TypeError(f"handler {handler!r} is {never}: calling it only creates a "
                        f"generator, its body would never run (make it a plain or an async "
                        f"def function)")
    try:
        sig = inspect.signature(handler)
    except (TypeError, ValueError):
        return                              # builtins without a signature: trust them
    try:
        sig.bind(None, None) if with_type else sig.bind(None)
    except TypeError:
        what = ("two positional arguments (the event type, then the payload: with_type=True)"
                if with_type else "one positional argument (the payload)")
        raise TypeError(f"handler {handler!r} must accept {what}; its signature is "
                        f"{sig}") from None
