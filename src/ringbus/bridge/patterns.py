"""Topic patterns in a bridge's exports and imports (``ringbus.patterns``: NATS token rules,
``*`` one token, ``>`` one or more at the end), and ``{type}`` in its subjects.

``bridge.export("md.*", subject="bus.{type}.{sym}", key=...)`` carries every event type of
the bus whose name matches ``md.*``, those registered later too. ``{type}`` is the event
type's name; the subject's other placeholder, if any, is the key as for one type. The bus
resolves the pattern (one member subscription per matching type, made when the type is
registered); the bridge makes each type's :class:`~ringbus.bridge.base.Export` when it sees
the type's first event, so later events cost a dict lookup more than an exact export.

``bridge.import_("md.*", subject="bus.{type}", ...)`` is the way back: each message's
subject (NATS) or stream key (Redis) gives the name of its event type on the local bus.
"""
from __future__ import annotations

import string
from typing import Any, Dict, Optional, Tuple

from ringbus import patterns
from ringbus.bridge.base import Export, Key
from ringbus.bridge.codec import MalformedMessage

__all__ = ["PatternExport", "export_pattern", "TypeFromSubject", "type_of", "overlap",
           "TYPE"]

TYPE = "{type}"

#: ``PatternExport.specs[t]`` for a type exported on its own (export(T, ...)): that export
#: wins, the pattern leaves the type alone.
SKIP: Any = object()


def overlap(a: Tuple[str, ...], b: Tuple[str, ...]) -> bool:
    """Whether some name matches both patterns (their ``check_pattern`` tokens)."""
    for x, y in zip(a, b):
        if x == ">" or y == ">":
            return True
        if x != y and x != "*" and y != "*":
            return False
    return len(a) == len(b)


def wildcard(subject: str) -> str:
    """A NATS subject that every subject ``subject`` may become matches: each token with a
    ``*`` in it becomes ``*``, one with a ``>`` becomes the last token, ``>``."""
    out = []
    for tok in subject.split("."):
        if ">" in tok:
            out.append(">")
            break
        out.append("*" if "*" in tok else tok)
    return ".".join(out)


def fill_type(subject: str, name: Optional[str], event_type: Any) -> str:
    """``subject`` with ``{type}`` replaced by the event type's name."""
    if TYPE not in subject:
        return subject
    if not name:
        raise ValueError(f"subject {subject!r} names the event type ({TYPE}), but event type "
                         f"{event_type!r} has no name")
    return subject.replace(TYPE, name)


class PatternExport(Export):
    """The export of every event type whose name matches ``topic`` (a pattern): ``specs``
    holds each type's Export, made at its first event (or SKIP)."""

    __slots__ = ("topic", "tokens", "template", "specs")

    def __init__(self, topic: str, subject: str, key: Key) -> None:
        self.tokens = patterns.check_pattern(topic, "event_type")
        self.topic = topic
        self.template = subject
        # The checks of one type's export (placeholders, key), on a stand-in name.
        Export.__init__(self, -1, subject.replace(TYPE, "x"), key)
        self.subject = subject
        self.specs: Dict[int, Any] = {}

    def matches(self, name: Optional[str]) -> bool:
        """Whether this export carries the type ``name`` (never the bus's own types,
        ``ringbus.*``: a bridge's carrier of imported batches is one)."""
        return name is not None and not name.startswith("ringbus.") and \
            patterns.matches(self.tokens, name)

    def member(self, t: int, name: Optional[str]) -> Export:
        """Event type ``t``'s export (the bridge checks its subject and keeps it)."""
        return Export(t, fill_type(self.template, name, t), self.key)

    def pattern(self, any_token: str) -> str:
        """What every subject of this export matches (the stream's subject)."""
        filled = self.template.replace(TYPE, self.topic)
        fields = [f for _, f, _, _ in string.Formatter().parse(filled) if f is not None]
        for field in fields:
            filled = filled.replace("{" + field + "}", any_token)
        return wildcard(filled) if any_token == "*" else filled


def export_pattern(bridge: Any, spec: PatternExport) -> Export:
    """Bridge.export() of a topic pattern: one subscription of the pattern (the bus adds a
    member for each matching type, those registered later too); each type's Export is made
    at its first event, by the thread that dispatches it."""
    bus = bridge._bus
    for other in bridge._exports.values():
        if isinstance(other, PatternExport) and overlap(other.tokens, spec.tokens):
            raise ValueError(f"event types {spec.topic!r} overlap {other.topic!r}, "
                             f"exported already: an event would go out twice")
    bridge._check_subject(spec.pattern("x"), "subject")
    for t, other in bridge._exports.items():
        if not isinstance(other, PatternExport) and spec.matches(bus.event_name(t)):
            spec.specs[t] = SKIP
    specs, name_of, check = spec.specs, bus.event_name, bridge._check_subject
    outbox, ring, hand_over = bridge._outbox, bus.ring, bridge._hand_over

    def made(t: int) -> Export:
        if not spec.matches(name_of(t)):
            specs[t] = SKIP         # the bus's own types (ringbus.*): never exported
            return SKIP
        one = spec.member(t, name_of(t))
        check(one.pattern("x"), "subject")
        specs[t] = one
        return one

    def export_matching(t: int, payload: Any) -> None:
        one = specs.get(t)
        if one is None:
            one = made(t)           # the type's first event; raises to the bus's policy
        if one is SKIP:
            return
        outbox.append((one, payload))
        if not ring._in_batch():
            hand_over()             # emit's thread: no batch end will come
    export_matching.__qualname__ = f"{type(bridge).__name__}.export[{spec.topic}]"
    sub = bus.subscribe(spec.topic, export_matching, name=f"{bridge._name}:{spec.topic}",
                        weak=False, with_type=True)
    try:
        for t in list(sub.members):         # the types there now: checked at the call
            if specs.get(t) is None:
                made(t)
    except BaseException:
        sub.unsubscribe()
        raise
    bridge._exports[spec.topic] = spec
    if not bridge._batch_end_added:
        ring._add_batch_end(hand_over)
        bridge._batch_end_added = True
    bridge._add_closer()
    return spec


class TypeFromSubject:
    """An import subject (or stream key) with ``{type}`` as one or more whole tokens: which
    event type of ``bus`` a message's subject names. The name must match ``topic`` (a
    pattern); its type is registered on the bus at its first message. ``{type}`` stands
    for the tokens between the template's fixed head and tail (whose other placeholders,
    or ``*``, match one token each); a subject that does not fit gives None (malformed)."""

    __slots__ = ("bus", "topic", "tokens", "head", "tail", "types")

    def __init__(self, bus: Any, topic: str, subject: str) -> None:
        parts = subject.split(".")
        if parts.count(TYPE) != 1 or subject.count(TYPE) != 1:
            raise ValueError(f"subject {subject!r}: {TYPE} once, as whole tokens "
                             f"('orders.{TYPE}', '{TYPE}.{{sym}}')")
        if ">" in parts:
            raise ValueError(f"subject {subject!r}: no '>' beside {TYPE} (it stands for "
                             f"the tokens of the event type's name)")
        self.bus = bus
        self.topic = topic
        self.tokens = patterns.check_pattern(topic, "event_type")
        i = parts.index(TYPE)
        # None: any one token (a placeholder or '*'); else the token itself.
        self.head = [None if _any(p) else p for p in parts[:i]]
        self.tail = [None if _any(p) else p for p in parts[i + 1:]]
        self.types: Dict[str, Optional[int]] = {}

    def subject(self) -> str:
        """The subject filter (the stream key pattern): ``{type}`` as the pattern."""
        head = [p or "*" for p in self.head]
        tail = [p or "*" for p in self.tail]
        return wildcard(".".join(head + [self.topic] + tail))

    def __call__(self, subject: str) -> Optional[int]:
        t = self.types.get(subject, -1)
        if t != -1:
            return t
        t = None
        name = self._name(subject)
        if name is not None and not name.startswith("ringbus.") and \
                patterns.matches(self.tokens, name):
            t = self.bus.event_type(name)
        if len(self.types) < 100_000:       # bounded: subjects come from the network
            self.types[subject] = t
        return t

    def _name(self, subject: str) -> Optional[str]:
        parts = subject.split(".")
        head, tail = self.head, self.tail
        end = len(parts) - len(tail)
        if end <= len(head):
            return None
        for want, got in zip(head + tail, parts[:len(head)] + parts[end:]):
            if want is not None and want != got:
                return None
        return ".".join(parts[len(head):end])


def _any(token: str) -> bool:
    return token == "*" or (token.startswith("{") and token.endswith("}"))


def type_of(resolve: Any, subject: str) -> int:
    """The event type ``subject`` names, or MalformedMessage (the message goes to the error
    policy and the dead letters, like one that does not decode)."""
    t = resolve(subject)
    if t is None:
        raise MalformedMessage(f"subject {subject!r} names no event type matching "
                               f"{getattr(resolve, 'topic', '?')!r}")
    return t
