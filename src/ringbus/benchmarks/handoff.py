"""Thread handoff: producer threads hand events to one consumer thread, timed and checked.

The thread cases (:mod:`.threads`, :mod:`.latency`) run the same experiment over each
transport: ringbus (``bus.start()`` runs the consumer thread, ``publish`` or
``publish_many`` feeds it) and the queues a program without ringbus would use, each with a
consumer thread of its own that takes an item and calls the handler:

- ``queue.SimpleQueue``: ``put((type, payload))`` / ``get()``; the reference of every ring
  case, so it always runs;
- ``collections.deque`` + ``threading.Event``: ``append`` then ``set()`` only if the event is
  not set already; the consumer ``popleft``s until empty, then ``wait()``s and ``clear()``s
  and looks again (so no wake-up is lost);
- janus: a ``janus.Queue``'s sync side at both ends (``sync_q.put`` / ``sync_q.get``).

The queue consumers call the handler without looking the type up, which favours them.

A run: the consumer starts; the producer threads start and wait on an Event; the clock
starts when it is set and stops once every producer thread is joined and the consumer has
handled everything (``bus.stop(drain=True)`` returned, the consumer thread joined). Every
join has a deadline. A run that does not finish in time, or whose handler did not receive
every event exactly once and in order per producer, raises :class:`~.measure.Failed`, and
the table says so instead of printing a figure.
"""
from __future__ import annotations

import abc
import collections
import importlib
import queue
import sys
import threading
import time
from typing import Any, Callable, Optional, Sequence

from ringbus import Bus
from ringbus.benchmarks.measure import CheckedRun, Contender, Failed, compile_function
from ringbus.benchmarks.peers import Unavailable, version_of

__all__ = [
    "SIMPLEQUEUE", "DEQUE", "JANUS", "QUEUE_PEER_NAMES", "QUEUE_KINDS", "HandoffRun",
    "ring_contender", "queue_contender", "payload_lists", "make_recorder", "queue_peer_picked",
    "make_latency_recorder", "check_arrivals", "queue_versions",
]

# Row labels of the queue peers (stable ids: targets, --only, pytest ids).
SIMPLEQUEUE = "simplequeue"
DEQUE = "deque"
JANUS = "janus"
#: Queue peers ``--only`` can pick; SimpleQueue, the reference, always runs.
QUEUE_PEER_NAMES: tuple[str, ...] = (DEQUE, JANUS)
#: What each queue row is called in the table.
QUEUE_KINDS: dict[str, str] = {
    SIMPLEQUEUE: "queue.SimpleQueue put/get",
    DEQUE: "collections.deque + threading.Event",
    JANUS: "janus.Queue sync_q put/get",
}

# -- the producers' and consumers' code -----------------------------------------------------
# One send statement per transport, in two loops: a stream of the payloads ``xs``, and the
# latency producer, which stamps each event with the clock and then busy-waits until
# ``period`` ns have passed (it never sleeps, so events are not queued up behind a sleep,
# but it holds the GIL while it waits, as a busy Python producer does).
_SEND = {
    "publish": "pub(k, {x})",
    "put": "put((k, {x}))",
    "append": "append((k, {x}))\n        if not is_set():\n            wake()",
}
_STREAM = """\
def produce({params}):
    for x in xs:
        {send}
"""
_STREAM_MANY = """\
def produce(pm, k, xs, chunk):
    for i in range(0, len(xs), chunk):
        pm(k, xs[i:i + chunk])
"""
_PACED = """\
def produce({params}):
    for _ in range(n):
        t = clock()
        {send}
        t += period
        while clock() < t:
            pass
"""
# A (None, None) item is the sentinel that stops a queue consumer early (abort only).
_CONSUME_GET = """\
def consume(get, h, n):
    for _ in range(n):
        k, x = get()
        if k is None:
            break
        h(x)
"""
_CONSUME_DEQUE = """\
def consume(popleft, wait, clear, h, n):
    while n:
        try:
            k, x = popleft()
        except IndexError:
            wait()
            clear()
            continue
        if k is None:
            break
        h(x)
        n -= 1
"""


def _producer(send: str, env: dict[str, Any], tag: str, paced: bool) -> Callable[[], None]:
    params = ", ".join(sorted(env))
    if send == "publish_many":
        return compile_function(_STREAM_MANY, "produce", env, tag)
    template = _PACED if paced else _STREAM
    body = _SEND[send].format(x="t" if paced else "x")
    return compile_function(template.format(params=params, send=body), "produce", env, tag)


# -- handlers ---------------------------------------------------------------------------------

def make_recorder() -> tuple[Callable[[Any], None], list]:
    """The thread cases' trivial handler and its record: ``h(x)`` appends ``x``, so a run
    can check that every event arrived once and in order per producer."""
    got: list = []
    append = got.append

    def h(x):
        append(x)
    return h, got


def make_latency_recorder() -> tuple[Callable[[int], None], list]:
    """The latency case's handler: the payload is the producer's ``perf_counter_ns()``
    stamp; ``h`` records now minus the stamp."""
    got: list = []
    append = got.append
    clock = time.perf_counter_ns

    def h(stamp):
        append(clock() - stamp)
    return h, got


def payload_lists(producers: int, per_producer: int) -> list[list[int]]:
    """Producer i's payloads: the ints ``i*per_producer ... (i+1)*per_producer - 1``."""
    return [list(range(i * per_producer, (i + 1) * per_producer)) for i in range(producers)]


def check_arrivals(got: Sequence[int], lists: Sequence[Sequence[int]]) -> Optional[str]:
    """None if ``got`` holds every payload of ``lists`` exactly once, each producer's in its
    order (interleaved any way); otherwise what is wrong."""
    total = sum(len(xs) for xs in lists)
    if len(lists) == 1:
        if got == lists[0]:
            return None
    elif len(got) == total:
        per = len(lists[0])
        nxt = [xs[0] if xs else 0 for xs in lists]
        for i, x in enumerate(got):
            p = x // per if per else -1
            if not 0 <= p < len(lists) or x != nxt[p]:
                return (f"events duplicated or out of order: position {i:,} got payload "
                        f"{x!r}, expected {nxt[p] if 0 <= p < len(lists) else '?'} next from "
                        f"producer {p}")
            nxt[p] = x + 1
        return None
    if len(got) < total:
        return f"lost events: the handler got {len(got):,} of {total:,}"
    if len(got) > total:
        return f"duplicated events: the handler got {len(got):,} for {total:,} published"
    bad = next(i for i, (a, b) in enumerate(zip(got, lists[0])) if a != b)
    return (f"events out of order: position {bad:,} got payload {got[bad]!r}, "
            f"expected {lists[0][bad]!r}")


# -- transports -------------------------------------------------------------------------------

class _Transport(abc.ABC):
    """One side of a handoff run: what producers call, and the consumer."""

    send = ""                           # key of _SEND, or "publish_many"

    @abc.abstractmethod
    def producer_env(self) -> dict[str, Any]:
        """The names the producers' compiled loop calls (the send function and its object)."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the consumer, ready for the producers."""

    @abc.abstractmethod
    def finish(self, deadline: float) -> bool:
        """Wait (until ``deadline``, time.monotonic) for the consumer to handle everything
        published; False if it did not."""

    def abort(self, producers: Sequence[threading.Thread]) -> None:
        """After a run that did not finish: unblock and stop what can be stopped."""

    def problem(self) -> Optional[str]:
        """What the transport's own state says went wrong after a run, or None."""
        return None


class _RingTransport(_Transport):
    def __init__(self, bus: Bus, event_type: int, many: bool):
        self.bus = bus
        self.event_type = event_type
        self.send = "publish_many" if many else "publish"

    def producer_env(self):
        return {"pub": self.bus.publish, "pm": self.bus.publish_many, "k": self.event_type}

    def start(self):
        self.bus.start()

    def finish(self, deadline):
        try:
            self.bus.stop(drain=True, timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        except Exception as exc:
            raise Failed(f"the consumer thread raised {exc!r}") from exc
        return True

    def abort(self, producers):
        try:
            self.bus.stop(drain=False, timeout=2.0)
        except Exception:
            pass
        # Producers blocked on a full ring get room from a drain here.
        end = time.monotonic() + 5.0
        while any(th.is_alive() for th in producers) and time.monotonic() < end:
            try:
                self.bus.drain()
            except Exception:
                break
            time.sleep(0.001)

    def problem(self):
        s = self.bus.stats()
        if s["dropped"]:
            return f"the ring dropped {s['dropped']:,} events"
        if s["pending"]:
            return f"{s['pending']:,} events still queued after stop(drain=True)"
        return None


class _QueueTransport(_Transport):
    """SimpleQueue, deque + Event or janus, with a consumer thread running ``consume``."""

    def __init__(self, kind: str, handler: Callable[[Any], None], events: int):
        self.kind = kind
        self.error: Optional[BaseException] = None
        self.thread: Optional[threading.Thread] = None
        if kind == DEQUE:
            self.send = "append"
            dq: collections.deque = collections.deque()
            ev = threading.Event()
            self.q: Any = dq
            self._env = {"append": dq.append, "is_set": ev.is_set, "wake": ev.set, "k": 0}
            def stop_item() -> None:
                dq.append((None, None))
                ev.set()
            self._stop_item = stop_item
            self._left = lambda: len(dq)
            self._consume = compile_function(_CONSUME_DEQUE, "consume", {
                "popleft": dq.popleft, "wait": ev.wait, "clear": ev.clear, "h": handler,
                "n": events}, f"consume {kind}")
            return
        self.send = "put"
        if kind == JANUS:
            try:
                janus = importlib.import_module("janus")
            except ImportError:
                raise Unavailable("not installed") from None
            # Made outside any event loop: the sync side needs none (janus >= 1.0 on 3.10+).
            self.q = janus.Queue()
            put, get, self._left = self.q.sync_q.put, self.q.sync_q.get, self.q.sync_q.qsize
        elif kind == SIMPLEQUEUE:
            self.q = queue.SimpleQueue()
            put, get, self._left = self.q.put, self.q.get, self.q.qsize
        else:
            raise ValueError(f"unknown queue kind {kind!r}")
        self._env = {"put": put, "k": 0}
        self._stop_item = lambda: put((None, None))
        self._consume = compile_function(_CONSUME_GET, "consume",
                                         {"get": get, "h": handler, "n": events},
                                         f"consume {kind}")

    def producer_env(self):
        return dict(self._env)

    def _main(self):
        try:
            self._consume()
        except BaseException as exc:      # reported by problem(); the thread just ends
            self.error = exc

    def start(self):
        self.error = None
        self.thread = threading.Thread(target=self._main, name=f"bench-consumer-{self.kind}",
                                       daemon=True)
        self.thread.start()

    def finish(self, deadline):
        assert self.thread is not None
        self.thread.join(max(0.0, deadline - time.monotonic()))
        return not self.thread.is_alive()

    def abort(self, producers):
        if self.thread is not None and self.thread.is_alive():
            self._stop_item()
            self.thread.join(2.0)

    def problem(self):
        if self.error is not None:
            return f"the consumer thread raised {self.error!r}"
        left = self._left()
        if left:
            return f"{left:,} events left in the queue"
        return None


# -- the timed run ----------------------------------------------------------------------------

class HandoffRun(CheckedRun):
    """One contender of a thread case: ``len(producers)`` threads feed a transport's
    consumer; ``run()`` times it, ``check()`` verifies what the handler got."""

    def __init__(self, transport: _Transport, producers: Sequence[Callable[[], None]],
                 got: list, check: Callable[[list], Optional[str]], events: int,
                 timeout: float, switch_interval: Optional[float] = None,
                 keep_last: bool = False):
        self.transport = transport
        self.producers = list(producers)
        self.got = got
        self._check = check
        self.events = events
        self.timeout = timeout
        self.switch_interval = switch_interval
        self._outcome: Optional[str] = None
        self.keep_last = keep_last
        self.last: list = []            # with keep_last: the handler's record of the last run

    def run(self) -> int:
        go = threading.Event()
        errors: list[BaseException] = []

        def body(produce: Callable[[], None]) -> None:
            try:
                go.wait()
                produce()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=body, args=(p,), name=f"bench-producer-{i}",
                                    daemon=True) for i, p in enumerate(self.producers)]
        old = sys.getswitchinterval()
        finished = False
        self._outcome = None
        try:
            if self.switch_interval is not None:
                sys.setswitchinterval(self.switch_interval)
            self.transport.start()
            for th in threads:
                th.start()
            deadline = time.monotonic() + self.timeout
            t0 = time.perf_counter_ns()
            go.set()
            for th in threads:
                th.join(max(0.0, deadline - time.monotonic()))
            if errors:
                raise Failed(f"a producer thread raised {errors[0]!r}")
            finished = (not any(th.is_alive() for th in threads)
                        and self.transport.finish(deadline))
            t1 = time.perf_counter_ns()
        except Failed as exc:
            self._outcome = str(exc)
        except Exception as exc:
            self._outcome = f"the run raised {exc!r}"
        finally:
            sys.setswitchinterval(old)
        if self._outcome is None and not finished:
            self._outcome = (f"did not finish within {self.timeout:.0f} s: the handler got "
                             f"{len(self.got):,} of {self.events:,} events")
        if self._outcome is not None:
            # Producers still waiting for `go` stay parked (daemon threads, no CPU).
            self.transport.abort(threads)
            return 0
        return t1 - t0

    def check(self) -> None:
        outcome = self._outcome
        if outcome is None:
            outcome = self.transport.problem() or self._check(self.got)
        self.last = list(self.got) if outcome is None and self.keep_last else []
        self.got.clear()
        if outcome is not None:
            raise Failed(outcome)


def _timeout(events: int, per_event_s: float) -> float:
    """A deadline no healthy run comes near: 30 s plus 10x a slow per-event time."""
    return 30.0 + 10 * events * per_event_s


def ring_contender(label: str, shown: str, *, lists: Sequence[Sequence[int]], wait: Any,
                   many: bool = False, capacity: int = 65536, chunk: int = 1024,
                   paced: Optional[tuple[int, float]] = None,
                   switch_interval: Optional[float] = None) -> Contender:
    """ringbus: ``len(lists)`` producer threads publish to a started Bus.

    ``paced=(n, period_ns)`` makes it a latency run: one producer publishes ``n`` stamped
    events, one every ``period_ns``, and ``observe`` returns the latencies.
    """
    nprod = 1 if paced else len(lists)
    bus = Bus(capacity=capacity, producers="single" if nprod == 1 else "multi", wait=wait)
    t = bus.event_type("bench.event")
    h, got = make_latency_recorder() if paced else make_recorder()
    bus.subscribe(t, h)
    transport = _RingTransport(bus, t, many)
    return _contender(label, shown, transport, got, lists, paced, switch_interval, chunk,
                      keep=(bus, h))


def queue_contender(kind: str, label: str, shown: str, *, lists: Sequence[Sequence[int]],
                    paced: Optional[tuple[int, float]] = None,
                    switch_interval: Optional[float] = None) -> Contender:
    """A queue peer (``SIMPLEQUEUE``, ``DEQUE``, ``JANUS``) in the same run as ringbus; a
    peer that is not installed comes back with the reason and no loop."""
    h, got = make_latency_recorder() if paced else make_recorder()
    events = paced[0] if paced else sum(len(xs) for xs in lists)
    try:
        transport = _QueueTransport(kind, h, events)
    except Unavailable as exc:
        return Contender(label, shown, status=str(exc))
    return _contender(label, shown, transport, got, lists, paced, switch_interval, 0,
                      keep=(transport, h))


def _contender(label, shown, transport, got, lists, paced, switch_interval, chunk,
               keep) -> Contender:
    env_base = transport.producer_env()
    clock = time.perf_counter_ns
    if paced:
        n, period = paced
        env = dict(env_base, n=n, period=int(period), clock=clock)
        producers = [_producer(transport.send, env, f"produce {label}", True)]
        events = n

        def check(got_: list) -> Optional[str]:
            if len(got_) != n:
                return f"lost events: the handler got {len(got_):,} of {n:,}"
            return None
        timeout = _timeout(n, period * 1e-9 + 20e-6)
    else:
        events = sum(len(xs) for xs in lists)
        producers = []
        for i, xs in enumerate(lists):
            env = dict(env_base, xs=xs)
            if transport.send == "publish_many":
                env = {"pm": env_base["pm"], "k": env_base["k"], "xs": xs, "chunk": chunk}
            producers.append(_producer(transport.send, env, f"produce {label} {i}", False))

        def check(got_: list) -> Optional[str]:
            return check_arrivals(got_, lists)
        timeout = _timeout(events, 2e-6)
    run = HandoffRun(transport, producers, got, check, events, timeout, switch_interval,
                     keep_last=bool(paced))
    observe = (lambda: run.last) if paced else None
    return Contender(label, shown, run, events, keep=keep, observe=observe)


def queue_peer_picked(settings: Any, kind: str) -> bool:
    """Whether queue peer ``kind`` runs: SimpleQueue, the reference, always; the others if
    ``settings.peers`` (``--only``) has them."""
    return kind == SIMPLEQUEUE or kind in settings.peers


def queue_versions() -> list[str]:
    """Versions of the queue peers outside the standard library, for the report header."""
    out = []
    for dist in ("janus",):
        v = version_of(dist)
        out.append(f"{dist} {v}" if v else f"{dist} not installed")
    return out
