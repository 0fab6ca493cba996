"""A small pure-Python reference model of ``ringbus.Bus`` for parity tests.

It implements the contract in the plainest way that could work, with no attention to speed:
names -> dense ids (process-wide: the ids come from ringbus.identity, as the compiled bus's
do, and each bus refuses ids it never registered), topic patterns (a member per matching
type, now and later), order (``after=`` / ``before=`` edges, then higher priority, then
registration order, a pattern's members at the pattern's place), copy-on-write snapshots,
guards (``STOP``), ``with_type=True``, error isolation and policies, depth-limited
re-entrancy and weakly held bound methods. The behaviour suite runs against it as well as
against the compiled bus, and ``test_parity`` drives both with random programs.

The model is single-threaded: it takes no locks.
"""
from __future__ import annotations

import heapq
import logging
import operator
import types
import weakref
from typing import Optional

from ringbus import STOP, EmitDepthError   # the public objects, so one test suite fits both
from ringbus import identity

__all__ = ["Bus", "Subscription", "EmitDepthError"]

log = logging.getLogger("ringbus")

#: The table is dense, indexed by id; this bounds it (as the compiled bus does).
MAX_EVENT_TYPES = 1 << 24


class Subscription:
    """One handler on one event type of a reference :class:`Bus`."""

    def __init__(self, bus: "Bus", event_type: int, handler, *, priority: int,
                 name: Optional[str], seq: int, weak: Optional[bool], with_type: bool = False):
        self.event_type = event_type
        self.with_type = with_type
        self.parent: Optional[Pattern] = None
        self.priority = priority
        self.name = name
        self.seq = seq
        self.after: tuple[Subscription, ...] = ()
        self.before: tuple[Subscription, ...] = ()
        self._bus = weakref.ref(bus)
        self._active = True
        if weak is None:
            weak = isinstance(handler, types.MethodType)
        if not weak:
            self._get = lambda h=handler: h
        else:
            me = weakref.ref(self)

            def on_death(_ref):
                sub = me()
                if sub is not None:
                    sub.unsubscribe()

            ref = (weakref.WeakMethod(handler, on_death)
                   if isinstance(handler, types.MethodType)
                   else weakref.ref(handler, on_death))
            self._get = ref

    @property
    def handler(self):
        return self._get()

    @property
    def active(self) -> bool:
        return self._active

    def unsubscribe(self) -> None:
        if not self._active:
            return
        self._active = False
        bus = self._bus()
        if bus is not None:
            bus._remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.unsubscribe()

    def __str__(self):
        if self.name is not None:
            return self.name
        return f"#{self.seq}:{getattr(self.handler, '__qualname__', repr(self.handler))}"

    __repr__ = __str__


class Pattern:
    """A topic pattern's subscription: one member Subscription per matching type."""

    def __init__(self, bus: "Bus", pattern: str, handler, options: dict, seq: int):
        self.pattern = pattern
        self.handler = handler
        self.options = options
        self.seq = seq
        self.members: dict[int, Subscription] = {}
        self._bus = weakref.ref(bus)
        self._active = True

    @property
    def active(self) -> bool:
        return self._active

    def matches(self, name: str) -> bool:
        want, parts = self.pattern.split("."), name.split(".")
        for i, tok in enumerate(want):
            if tok == ">":
                return len(parts) > i
            if i >= len(parts) or tok not in ("*", parts[i]):
                return False
        return len(parts) == len(want)

    def unsubscribe(self) -> None:
        if self._active:
            self._active = False
            for member in list(self.members.values()):
                member.unsubscribe()
            self.members.clear()
            bus = self._bus()
            if bus is not None:
                bus._pattern_removed(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.unsubscribe()


class Bus:
    """The reference bus: same public surface as ``ringbus.Bus``."""

    def __init__(self, *, on_error="log", max_depth: int = 64):
        if isinstance(on_error, str):
            if on_error not in ("log", "raise"):
                raise ValueError(f"on_error must be 'log', 'raise' or a callable: {on_error!r}")
        elif not callable(on_error):
            raise TypeError(f"on_error must be 'log', 'raise' or a callable: {on_error!r}")
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
            raise ValueError(f"max_depth must be an int >= 1, got {max_depth!r}")
        self.on_error = on_error
        self.max_depth = max_depth
        self._names: dict[str, int] = {}               # this bus's names
        self._here: set[int] = set()                   # the ids this bus registered
        self._patterns: list[Pattern] = []
        self._id_names: list[Optional[str]] = []
        self._subs: list[list[Subscription]] = []      # per id, registration order
        self._order: list[tuple[Subscription, ...]] = []  # per id, dispatch order (snapshot)
        self._seq = 0
        self._depth = 0
        self._emitted = self._handler_calls = self._handler_errors = self._stopped = 0

    # -- event types -------------------------------------------------------------------

    def event_type(self, name_or_id) -> int:
        if isinstance(name_or_id, str):
            if "*" in name_or_id or ">" in name_or_id:
                raise ValueError(f"event type name {name_or_id!r} contains '*' or '>'")
            return self._register(identity.id_of(name_or_id))
        t = _as_int(name_or_id, "name_or_id")
        if not 0 <= t < MAX_EVENT_TYPES:
            raise ValueError(f"name_or_id must be 0 <= id < {MAX_EVENT_TYPES}, got {t!r}")
        return self._register(identity.claim(t))

    def _register(self, t: int) -> int:
        self._grow(t + 1)
        if t not in self._here:
            self._here.add(t)
            name = identity.name_of(t)
            if isinstance(name, str):
                self._id_names[t] = name
                self._names[name] = t
                for pattern in self._patterns:
                    if pattern.matches(name):
                        self._add_member(pattern, t)
        return t

    def event_name(self, event_type) -> Optional[str]:
        return self._id_names[self._known(event_type, "event_type")]

    def _grow(self, size: int) -> None:
        while len(self._id_names) < size:
            self._id_names.append(None)
            self._subs.append([])
            self._order.append(())

    def _known(self, event_type, arg: str) -> int:
        if isinstance(event_type, str):
            if event_type not in self._names:
                raise ValueError(f"{arg} {event_type!r} is not a registered event type name")
            return self._names[event_type]
        t = _as_int(event_type, arg)
        if t not in self._here:
            raise ValueError(f"{arg} {identity.describe(t)} is not registered on this bus")
        return t

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(self, event_type, handler, *, priority: int = 0, after=(), before=(),
                  name: Optional[str] = None, weak: Optional[bool] = None,
                  with_type: bool = False):
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        options = dict(priority=priority, after=after, before=before, name=name, weak=weak,
                       with_type=with_type)
        if isinstance(event_type, str) and any(tok in ("*", ">")
                                               for tok in event_type.split(".")):
            pattern = Pattern(self, event_type, handler, options, self._seq + 1)
            targets = sorted(t for n, t in self._names.items() if pattern.matches(n))
            try:
                for t in targets:
                    self._add_member(pattern, t, lenient=False)
            except BaseException:
                pattern.unsubscribe()
                raise
            self._seq += 1
            self._patterns.append(pattern)
            return pattern
        t = self._known(event_type, "event_type")       # names come from event_type() only
        sub = self._add(t, handler, options, self._seq + 1, lenient=False)
        self._seq += 1
        return sub

    def _add_member(self, pattern: Pattern, t: int, lenient: bool = True) -> None:
        pattern.members[t] = self._add(t, pattern.handler, pattern.options, pattern.seq,
                                       lenient)
        pattern.members[t].parent = pattern

    def _add(self, t: int, handler, options: dict, seq: int, lenient: bool) -> Subscription:
        current = self._subs[t]
        name = options["name"]
        # A type registered later does not refuse a pattern's name (the bus does not either).
        if name is not None and not lenient and any(s.name == name for s in current):
            raise ValueError(f"name {name!r} is already used on event type {t}")
        sub = Subscription(self, t, handler, priority=options["priority"], name=name,
                           seq=seq, weak=options["weak"], with_type=options["with_type"])
        sub.after = self._resolve(t, current, options["after"], "after", sub, lenient)
        sub.before = self._resolve(t, current, options["before"], "before", sub, lenient)
        ordered = _order(current + [sub])          # raises ValueError on a cycle
        current.append(sub)
        self._order[t] = ordered
        return sub

    def _pattern_removed(self, pattern: Pattern) -> None:
        if pattern in self._patterns:
            self._patterns.remove(pattern)

    def on(self, event_type, **options):
        def decorate(handler):
            self.subscribe(event_type, handler, **options)
            return handler
        return decorate

    def subscriptions(self, event_type) -> tuple[Subscription, ...]:
        return self._order[self._known(event_type, "event_type")]

    def stats(self) -> dict[str, int]:
        return {
            "emitted": self._emitted,
            "handler_calls": self._handler_calls,
            "handler_errors": self._handler_errors,
            "subscriptions": sum(len(s) for s in self._subs),
            "event_types": len(self._here),
            "stopped": self._stopped,
        }

    def _remove(self, sub: Subscription) -> None:
        current = self._subs[sub.event_type]
        current[:] = [s for s in current if s is not sub]
        self._order[sub.event_type] = _order(current)
        if sub.parent is not None:
            sub.parent.members.pop(sub.event_type, None)
            if sub.handler is None:                 # died: the whole pattern goes
                sub.parent.unsubscribe()

    def _resolve(self, t, current, refs, arg: str, new: Subscription, lenient: bool):
        if isinstance(refs, (str, Subscription, Pattern)):
            refs = (refs,)
        out = []
        for ref in refs:
            if isinstance(ref, Pattern):
                ref = ref.members.get(t)
                if ref is None:
                    if lenient:
                        continue
                    raise ValueError(f"{arg}: the pattern has no subscription of type {t}")
            if isinstance(ref, Subscription):
                if lenient and ref not in current:
                    continue
                if ref not in current:
                    raise ValueError(f"{arg}: {ref} is not a live subscription of this type")
                out.append(ref)
            elif isinstance(ref, str):
                if ref == new.name:
                    raise ValueError(f"{arg}: cycle {ref} -> {ref}")
                found = [s for s in current if s.name == ref]
                if not found and lenient:
                    continue
                if not found:
                    raise ValueError(f"{arg}: no subscription named {ref!r}")
                out.append(found[0])
            else:
                raise TypeError(f"{arg} entries must be Subscriptions or names: {ref!r}")
        return tuple(out)

    # -- dispatch ------------------------------------------------------------------------

    def emit(self, event_type, payload=None) -> int:
        if isinstance(event_type, (bool, str, bytes)) or not hasattr(type(event_type),
                                                                      "__index__"):
            raise TypeError(f"event_type must be an int id, got {event_type!r}")
        t = self._known(event_type, "event_type")
        snapshot = self._order[t]               # later (un)subscribes don't change it
        if self._depth >= self.max_depth:
            raise EmitDepthError(f"emit() nested deeper than max_depth={self.max_depth}")
        self._emitted += 1
        self._depth += 1
        try:
            ran = 0
            errors = []
            for sub in snapshot:
                handler = sub.handler
                if handler is None:            # a weakly held handler died
                    continue
                ran += 1
                self._handler_calls += 1
                try:
                    result = handler(t, payload) if sub.with_type else handler(payload)
                except EmitDepthError as exc:
                    if errors:
                        _attach_pending(exc, errors)
                    raise
                except Exception as exc:
                    self._handler_errors += 1
                    if self.on_error == "raise":
                        errors.append(exc)
                    elif self.on_error == "log":
                        log.error("handler %s failed on event %s", sub, t, exc_info=exc)
                    else:
                        self.on_error(t, payload, sub, exc)
                except BaseException as exc:    # never swallowed; collected errors ride on it
                    if errors:
                        _attach_pending(exc, errors)
                    raise
                else:
                    if result is STOP:          # a guard: the later handlers do not run
                        self._stopped += 1
                        break
            if errors:
                if len(errors) > 1:     # a lone error keeps what an inner emit attached
                    errors[0].other_errors = errors[1:]
                raise errors[0]
            return ran
        finally:
            self._depth -= 1


def _as_int(value, arg: str) -> int:
    if isinstance(value, (bool, str, bytes)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{arg} must be an int id, got {type(value).__name__}: {value!r}")
    return operator.index(value)


def _order(subs: list[Subscription]) -> tuple[Subscription, ...]:
    """Kahn's topological sort; among ready nodes, higher priority then older first."""
    live = set(subs)
    preds: dict[Subscription, set[Subscription]] = {s: set() for s in subs}
    for s in subs:
        preds[s].update(p for p in s.after if p in live)
        for later in s.before:
            if later in live:
                preds[later].add(s)
    placed: list[Subscription] = []
    ready = [(-s.priority, s.seq, s) for s in subs if not preds[s]]
    heapq.heapify(ready)
    waiting = {s: set(p) for s, p in preds.items() if p}
    while ready:
        _, _, s = heapq.heappop(ready)
        placed.append(s)
        for other, need in list(waiting.items()):
            need.discard(s)
            if not need:
                del waiting[other]
                heapq.heappush(ready, (-other.priority, other.seq, other))
    if waiting:
        raise ValueError("dependency cycle among: " + ", ".join(sorted(map(str, waiting))))
    return tuple(placed)


def _attach_pending(exc, errors):
    """What the compiled table does when something unwinds past collected errors: they
    ride on it as ``pending_errors`` and the first as its ``__context__`` where unset."""
    exc.pending_errors = list(errors)
    if exc.__context__ is None:
        exc.__context__ = errors[0]
    if hasattr(exc, "add_note"):            # Python 3.11+
        exc.add_note(f"ringbus: {len(errors)} earlier handler(s) of the same event failed: "
                     + ", ".join(repr(e) for e in errors))
