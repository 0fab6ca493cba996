"""Topic patterns: ``bus.subscribe("md.*", h)`` and ``"md.>"``, NATS token semantics.

Names are dot-separated tokens. In a pattern, ``*`` matches exactly one token and ``>``, the
last token only, one or more. A pattern is resolved at registration: the registry gives it
one member Subscription per matching event type of the bus (and adds one whenever a
matching type is registered later), each an ordinary entry of that type's table, so emit
and publish cost exactly what they cost for exact subscriptions.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ringbus.subscription import Subscription

__all__ = ["is_pattern", "check_pattern", "matches", "PatternSubscription"]


def is_pattern(name: str) -> bool:
    """A topic pattern: one of its dot-separated tokens is '*' or '>'."""
    return any(tok in ("*", ">") for tok in name.split("."))


def check_pattern(pattern: str, arg: str = "event_type") -> tuple[str, ...]:
    """The tokens of ``pattern``, or ValueError saying what is wrong with it."""
    tokens = tuple(pattern.split("."))
    for i, tok in enumerate(tokens):
        if not tok:
            raise ValueError(f"{arg} {pattern!r}: empty token (two dots, or a leading or "
                             f"trailing dot)")
        if tok == ">" and i != len(tokens) - 1:
            raise ValueError(f"{arg} {pattern!r}: '>' matches the remaining tokens and must "
                             f"be the last token")
        if tok not in ("*", ">") and ("*" in tok or ">" in tok):
            raise ValueError(f"{arg} {pattern!r}: '*' and '>' are whole tokens (as in "
                             f"'md.*' or 'md.>'), not parts of one ({tok!r})")
    return tokens


def matches(tokens: tuple[str, ...], name: str) -> bool:
    """Whether event type ``name`` matches the pattern of ``tokens`` (check_pattern)."""
    parts = name.split(".")
    for i, tok in enumerate(tokens):
        if tok == ">":
            return len(parts) > i           # one or more tokens left
        if i >= len(parts) or (tok != "*" and tok != parts[i]):
            return False
    return len(parts) == len(tokens)


class PatternSubscription(Subscription):
    """Returned by ``Bus.subscribe`` (``on``, ``subscribe_batch``) for a topic pattern.

    ``members``: the Subscription of each matching event type, id -> member, made at
    subscribe time and when a matching type is registered later. ``unsubscribe()`` removes
    them all (and stops the pattern matching later types); idempotent, a context manager.
    Members take their place in each type's order like exact subscriptions, at the
    pattern's registration time (see Bus.subscribe).
    """

    __slots__ = ("pattern", "tokens", "members", "handler_args", "edges")

    def __init__(self, bus, pattern: str, tokens: tuple[str, ...], handler: Optional[Callable], *,
                 priority: int, name: Optional[str], seq: int, batch: bool, once: bool,
                 with_type: bool, handler_args: dict[str, Any], edges: tuple[Any, Any]):
        # Not bound to a handler itself: its members are (each with its own reference).
        import weakref
        self.pattern = pattern
        self.tokens = tokens
        self.event_type = None  # type: ignore[assignment]  # not one type: see members
        self.priority = priority
        self.name = name
        self.seq = seq
        self.batch = batch
        self.once = once
        self.with_type = with_type
        self.is_async = handler_args["is_async"]
        self.concurrent = handler_args["concurrent"]
        self.after = ()
        self.before = ()
        self.members: dict[int, Subscription] = {}
        #: The handler, its weak= choice and what each member is made with (Registry).
        self.handler_args = dict(handler_args, handler=handler)
        #: after=/before= as given: resolved per matching type (names, Subscriptions).
        self.edges = edges
        self._bus = weakref.ref(bus)
        self._active = True
        self._fired = None              # once=True: one count shared by every member
        self._parent = None
        self._meter = 0
        self._wall = None
        self._htarget, self._href, self._hkind = handler, None, 0
        self._target, self._ref, self._kind = handler, None, 0

    @property
    def handler(self) -> Optional[Callable[[Any], Any]]:
        """The subscribed callable, or None once a weakly held one has died."""
        args = self.handler_args
        return args["ref"]() if "ref" in args else args["handler"]

    def unsubscribe(self) -> None:
        """Remove every member, and match no type registered later. Idempotent."""
        if not self._active:
            return
        bus = self._bus()
        if bus is None:
            self._active = False
            return
        bus._remove_pattern(self)

    def __repr__(self) -> str:
        state = "" if self._active else ", inactive"
        return (f"<PatternSubscription {self!s} on {self.pattern!r} ({len(self.members)} "
                f"event types), priority={self.priority}{state}>")
