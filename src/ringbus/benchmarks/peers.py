"""The implementations a benchmark compares, each wired the way its own users would wire it.

A topology asks every peer for the same thing: ``types`` event types, the handlers of each
type given as a list. A peer answers with one or more :class:`Wiring` objects: the callable
to time (pre-bound, the most favourable way to call it), the key that selects each type
(an int id, a signal object, an event name) and the call expression. Every loop then has the
same shape, ``for ... : f(k, x)``, whichever library is behind ``f``.

Peers are imported only when a run needs them; a missing one reports ``not installed`` and
the run goes on without it.
"""
from __future__ import annotations

import abc
import importlib
import importlib.metadata
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from ringbus import Bus
from ringbus.benchmarks.measure import compile_loop

__all__ = [
    "FLOOR", "RINGBUS", "DICT", "BLINKER", "PYEE", "PSYGNAL_EMIT", "PSYGNAL_EMIT_FAST",
    "PYPUBSUB", "PEERS", "PEER_NAMES", "Peer", "Wiring", "Unavailable", "SetupBudget",
    "DictDispatcher", "make_handler", "version_of",
]

# Row labels: stable ids that targets, --only and the pytest-benchmark ids refer to.
FLOOR = "floor"
RINGBUS = "ringbus"
DICT = "dict"
BLINKER = "blinker"
PYEE = "pyee"
PSYGNAL_EMIT = "psygnal emit"
PSYGNAL_EMIT_FAST = "psygnal emit_fast"
PYPUBSUB = "pypubsub"

Handler = Callable[[Any], Any]


def make_handler() -> Handler:
    """A new trivial handler, ``def h(x): pass``; a distinct function object per call."""
    def h(x):
        pass
    return h


class Unavailable(Exception):
    """A peer cannot run a case; the message is what the table prints instead of a time."""


class SetupBudget:
    """Caps the time one peer may spend wiring one case.

    Some peers' registration is far from linear (pypubsub re-scans a list of all its
    topics for every new one); rather than guess which, the wiring loop calls :meth:`tick`.
    It gives up once the budget is spent, or earlier once a linear projection of the time
    so far (for such peers an underestimate) exceeds twice the budget, and says how far it got.
    """

    def __init__(self, seconds: float, what: str, total: int):
        self.seconds = seconds
        self.what = what
        self.total = total
        self._start = time.monotonic()

    def tick(self, done: int) -> None:
        """Raise :class:`Unavailable` if wiring all ``total`` will not fit the budget."""
        if done == 0 or (done & 0xFF) != 0:     # a clock read per 256 types is plenty
            return
        elapsed = time.monotonic() - self._start
        projected = elapsed * self.total / done
        # Not before a second has passed: a short stall would skew the projection.
        if elapsed > self.seconds or (elapsed >= 1.0 and projected > 2 * self.seconds):
            raise Unavailable(
                f"skipped: {done:,} of {self.total:,} {self.what} wired in {elapsed:.1f} s, "
                f"at that rate all would take {projected:.0f} s "
                f"(setup budget {self.seconds:.0f} s)")


@dataclass
class Wiring:
    """One row's loop ingredients: ``f`` called as ``call`` with key ``k`` and payload ``x``."""

    label: str
    f: Callable[..., Any]
    keys: list            # keys[i] selects event type i
    call: str = "f(k, x)"
    # The wired objects (bus, emitter, publisher) and handlers; peers like blinker and
    # pypubsub hold receivers weakly, so something must.
    keep: Any = None


class DictDispatcher:
    """The plain-Python baseline: a dict of handler lists, as one would write it by hand.

    >>> d = DictDispatcher()
    >>> d.subscribe(1, print)
    >>> d.publish(1, "hi")
    hi
    """

    def __init__(self) -> None:
        self._handlers: dict[Any, list[Handler]] = {}

    def subscribe(self, event_type: Any, handler: Handler) -> None:
        """Call ``handler(payload)`` for every event of ``event_type``."""
        self._handlers.setdefault(event_type, []).append(handler)

    def publish(self, event_type: Any, payload: Any) -> None:
        """Run the handlers of ``event_type`` in subscription order."""
        for handler in self._handlers.get(event_type, ()):
            handler(payload)


def version_of(dist: str) -> Optional[str]:
    """The installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class Peer(abc.ABC):
    """A library in the comparison: how to import it and how to wire types to handlers."""

    name = ""                               # for --only
    dist: Optional[str] = None              # distribution name, for its version
    module: Optional[str] = None            # what to import; None: nothing to import
    rows: tuple[tuple[str, str], ...] = ()  # (label, shown) of each row it produces

    def load(self) -> Any:
        """Import the library, or raise :class:`Unavailable` ("not installed")."""
        if self.module is None:
            return None
        try:
            return importlib.import_module(self.module)
        except ImportError:
            raise Unavailable("not installed") from None

    def version(self) -> Optional[str]:
        """The version string shown in the report header."""
        return version_of(self.dist) if self.dist else None

    @abc.abstractmethod
    def wire(self, handlers: Sequence[Sequence[Handler]], budget: SetupBudget) -> list[Wiring]:
        """Register ``len(handlers)`` event types, type i with ``handlers[i]``."""

    def verify(self) -> None:
        """Check, with recording handlers, that the wiring delivers each event to exactly the
        handlers of its type; raise :class:`Unavailable` if not.

        Guards the timings: a peer whose API changed under us must not be timed doing nothing.
        """
        got: list[tuple[int, Any]] = []

        def recorder(tag: int) -> Handler:
            def h(x):
                got.append((tag, x))
            return h

        handlers = [[recorder(0)], [recorder(10), recorder(11)], []]
        for w in self.wire(handlers, SetupBudget(60.0, "event types", len(handlers))):
            got.clear()
            keys = [w.keys[1], w.keys[0], w.keys[2]]
            compile_loop(w.call, "k", "keys", {"f": w.f, "keys": keys, "x": "p"},
                         f"verify {w.label}")()
            want = [(10, "p"), (11, "p"), (0, "p")]
            # Order within one event is not every peer's promise; which handlers ran is.
            if sorted(got[:2]) + got[2:] != want:
                raise Unavailable(f"failed self-check: delivered {got!r}, expected {want!r}")

    @staticmethod
    def names(n: int) -> list[str]:
        """Event names for the peers that key by name: flat, no hierarchy to walk."""
        return [f"t{i}" for i in range(n)]


class RingbusPeer(Peer):
    name = RINGBUS
    dist = "ringbus"
    rows = ((RINGBUS, "ringbus Bus.emit"),)

    def wire(self, handlers, budget):
        # ringbus is the subject of the benchmark: never skipped, so no budget tick.
        bus = Bus()
        # Types first, as an application registers them at start-up: the id ints are then
        # allocated together. Interleaved with subscribe() they end up spread over ~30 MB
        # of heap, and the loop's own read of each key misses cache and TLB.
        ids = [bus.event_type(name) for name in self.names(len(handlers))]
        for t, hs in zip(ids, handlers):
            for h in hs:
                bus.subscribe(t, h)
        return [Wiring(RINGBUS, bus.emit, ids, keep=(bus, handlers))]


class DictPeer(Peer):
    name = DICT
    rows = ((DICT, "dict-of-lists publish"),)

    def wire(self, handlers, budget):
        d = DictDispatcher()
        for i, hs in enumerate(handlers):
            for h in hs:
                d.subscribe(i, h)
        return [Wiring(DICT, d.publish, list(range(len(handlers))), keep=(d, handlers))]


class BlinkerPeer(Peer):
    name = BLINKER
    dist = module = "blinker"
    rows = ((BLINKER, "blinker Signal.send"),)

    def wire(self, handlers, budget):
        blinker = self.load()
        signals = []
        for i, hs in enumerate(handlers):
            budget.tick(i)
            s = blinker.Signal()
            for h in hs:
                s.connect(h)            # blinker calls receiver(sender): x is the sender
            signals.append(s)
        return [Wiring(BLINKER, blinker.Signal.send, signals, keep=handlers)]


class PyeePeer(Peer):
    name = PYEE
    dist = module = "pyee"
    rows = ((PYEE, "pyee EventEmitter.emit"),)

    def wire(self, handlers, budget):
        pyee = self.load()
        ee = pyee.EventEmitter()
        names = self.names(len(handlers))
        for i, hs in enumerate(handlers):
            budget.tick(i)
            for h in hs:
                ee.add_listener(names[i], h)
        return [Wiring(PYEE, ee.emit, names, keep=(ee, handlers))]


class PsygnalPeer(Peer):
    name = "psygnal"
    dist = module = "psygnal"
    rows = ((PSYGNAL_EMIT, "psygnal SignalInstance.emit"),
            (PSYGNAL_EMIT_FAST, "psygnal SignalInstance.emit_fast"))

    def version(self):
        v = super().version()
        try:
            import psygnal
            compiled = getattr(psygnal, "_compiled", None)
        except ImportError:
            return v
        return v if compiled is None else f"{v} ({'compiled' if compiled else 'pure Python'})"

    def wire(self, handlers, budget):
        psygnal = self.load()
        signals = []
        for i, hs in enumerate(handlers):
            budget.tick(i)
            s = psygnal.SignalInstance((object,))
            for h in hs:
                s.connect(h)
            signals.append(s)
        cls = psygnal.SignalInstance
        return [Wiring(PSYGNAL_EMIT, cls.emit, signals, keep=handlers),
                Wiring(PSYGNAL_EMIT_FAST, cls.emit_fast, signals, keep=handlers)]


class PypubsubPeer(Peer):
    name = PYPUBSUB
    dist = "Pypubsub"
    module = "pubsub.core"
    rows = ((PYPUBSUB, "pypubsub sendMessage"),)

    def wire(self, handlers, budget):
        core = self.load()
        # A private Publisher, not the module-level ``pub`` singleton, so that runs do not
        # pile topics into one global tree; pub.sendMessage is this same method.
        publisher = core.Publisher()
        names = self.names(len(handlers))
        for i, hs in enumerate(handlers):
            budget.tick(i)
            if hs:
                for h in hs:
                    publisher.subscribe(h, names[i])
            else:
                publisher.getTopicMgr().getOrCreateTopic(names[i])
        # pypubsub passes message data by keyword only.
        return [Wiring(PYPUBSUB, publisher.sendMessage, names, call="f(k, x=x)",
                       keep=(publisher, handlers))]


#: Every implementation, in table order. The floor (direct calls) is not a peer: each
#: topology writes its own, since "the same work without a bus" differs per topology.
PEERS: tuple[Peer, ...] = (RingbusPeer(), DictPeer(), BlinkerPeer(), PyeePeer(),
                           PsygnalPeer(), PypubsubPeer())

#: Names accepted by ``--only`` to pick peers (the floor and ringbus always run).
PEER_NAMES: tuple[str, ...] = tuple(p.name for p in PEERS)
