"""``one_thread_publish_drain``: queue N events, then dispatch them, all on one thread.

ringbus ``publish``es N events into its ring and ``drain()``s them to one handler; the
reference puts N ``(type, payload)`` tuples into a ``queue.SimpleQueue``, then gets each and
calls the handler. Both time the whole: queue N, then handle N. ``publish_many`` (one call
for the N payloads) and a plain ``collections.deque`` (``append`` / ``popleft``, no locking
at all) are shown too. The ring is made large enough for the N events
(``overflow="raise"``: a full ring would be a bug in the benchmark, reported as a failure).

The handler records each payload (as in every ring case), so each run checks that all N
arrived, in order.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ringbus import Bus, RingFull
from ringbus.benchmarks.handoff import (
    DEQUE, SIMPLEQUEUE, check_arrivals, make_recorder, queue_peer_picked,
)
from ringbus.benchmarks.measure import Case, CheckedRun, Contender, Failed, compile_function
from ringbus.benchmarks.topology import Settings

NAME = "one_thread_publish_drain"
RINGBUS = "ringbus"
RINGBUS_MANY = "ringbus publish_many"

_RING = """\
def loop(pub, drain, k, xs, _clock=_clock):
    t0 = _clock()
    for x in xs:
        pub(k, x)
    drain()
    return _clock() - t0
"""
_RING_MANY = """\
def loop(pm, drain, k, xs, _clock=_clock):
    t0 = _clock()
    pm(k, xs)
    drain()
    return _clock() - t0
"""
_SIMPLEQUEUE = """\
def loop(put, get, h, k, xs, _clock=_clock):
    t0 = _clock()
    for x in xs:
        put((k, x))
    for _ in xs:
        t, x = get()
        h(x)
    return _clock() - t0
"""
_DEQUE = """\
def loop(append, popleft, h, k, xs, _clock=_clock):
    t0 = _clock()
    for x in xs:
        append((k, x))
    for _ in xs:
        t, x = popleft()
        h(x)
    return _clock() - t0
"""


class _Run(CheckedRun):
    def __init__(self, loop: Callable[[], int], got: list, xs: list,
                 leftover: Callable[[], int]):
        self.loop, self.got, self.xs, self.leftover = loop, got, xs, leftover

    def run(self) -> int:
        try:
            return self.loop()
        except RingFull as exc:
            raise Failed(f"ring full: {exc}") from exc

    def check(self) -> None:
        problem = check_arrivals(self.got, [self.xs])
        left = self.leftover()
        self.got.clear()
        if problem is None and left:
            problem = f"{left:,} events still queued after the run"
        if problem is not None:
            raise Failed(problem)


def _pending_of(bus: Any) -> Callable[[], int]:
    return lambda: int(bus.pending)


def _capacity(n: int) -> int:
    c = 2
    while c < n:
        c *= 2
    return c


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``one_thread_publish_drain`` case."""
    import collections
    import queue

    n = settings.events
    xs = list(range(n))
    contenders = []
    for label, source, shown in (
            (RINGBUS, _RING, "ringbus publish x N, drain()"),
            (RINGBUS_MANY, _RING_MANY, "ringbus publish_many(N), drain()")):
        bus = Bus(capacity=_capacity(n), producers="single", overflow="raise")
        t = bus.event_type("bench.event")
        h, got = make_recorder()
        bus.subscribe(t, h)
        env: dict[str, Any] = {"drain": bus.drain, "k": t, "xs": xs}
        env["pm" if source is _RING_MANY else "pub"] = (
            bus.publish_many if source is _RING_MANY else bus.publish)
        loop = compile_function(source, "loop", env, label)
        contenders.append(Contender(label, shown, _Run(loop, got, xs, _pending_of(bus)),
                                    n, keep=(bus, h)))
    for kind, source in ((SIMPLEQUEUE, _SIMPLEQUEUE), (DEQUE, _DEQUE)):
        if not queue_peer_picked(settings, kind):
            continue
        h, got = make_recorder()
        q: Any
        if kind == SIMPLEQUEUE:
            q = queue.SimpleQueue()
            env = {"put": q.put, "get": q.get}
            shown = "queue.SimpleQueue put x N, get + call x N"
        else:
            q = collections.deque()
            env = {"append": q.append, "popleft": q.popleft}
            shown = "collections.deque append x N, popleft + call x N"
        env.update(h=h, k=0, xs=xs)
        loop = compile_function(source, "loop", env, kind)
        leftover = q.qsize if kind == SIMPLEQUEUE else q.__len__
        contenders.append(Contender(kind, shown, _Run(loop, got, xs, leftover), n,
                                    keep=(q, h)))
    return Case(NAME, f"one thread: queue {n:,} events, then dispatch them", contenders,
                table="ring", reference=SIMPLEQUEUE)
