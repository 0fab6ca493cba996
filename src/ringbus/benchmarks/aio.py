"""asyncio benchmarks: events from a producer task, or a thread, to a consumer on the loop.

    >>> from ringbus.benchmarks import aio
    >>> report = aio.run(events=1_000_000, rounds=3)    # the full run: a few minutes
    >>> print(aio.render(report))

``run(events=20_000, rounds=1)`` takes a few seconds. Every case runs on the default asyncio
loop and, if it is installed, on uvloop (``loops=("asyncio",)`` for one). Peers that are not
installed are reported as such. Nothing is asserted: the issue's targets come back in
``report.outcomes``, and the numbers are medians over the rounds, with the contenders of a
case interleaved, as in the rest of ``ringbus.benchmarks``.

Cases (``<topology>[<loop>]``), each delivering ``events`` events of one type to one handler
that counts them; a contender's time runs from its first publish to the handler's last call:

``task_to_loop_sync``
    A producer task publishes; a consumer on the same loop calls a plain function.
    ringbus: ``await bus.publish_async`` and ``bus.run_async()``. asyncio.Queue and janus
    (both with ringbus's capacity, 65536): ``await q.put`` / ``await q.get`` then the
    handler. pyee's AsyncIOEventEmitter calls a plain handler inside ``emit`` (no queue).
``task_to_loop_async``
    The same with ``async def`` handlers (that do not suspend). ringbus awaits them in order
    on its consumer (started eagerly: no task per event); the queues ``await`` them in their
    consumer; psygnal's async mode queues each emit to its backend task, which awaits the
    callback; pyee makes a task per emit. psygnal and pyee producers yield to the loop every
    1024 emits (their queues are unbounded).
``thread_to_loop``
    A thread publishes (ringbus: ``bus.publish``, blocking when full; janus:
    ``sync_q.put``; asyncio.Queue: ``loop.call_soon_threadsafe(q.put_nowait, x)``, the
    stdlib way); the loop's consumer calls a plain function.

Targets (issue 5): on each loop, ringbus's sync-handler case at least 3x asyncio.Queue's
events/s, its async-handler case at least 2x psygnal's async mode, its thread -> loop case at
least 5x janus.
"""
from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ringbus import Bus
from ringbus.benchmarks.measure import Case, Contender, run_rounds
from ringbus.benchmarks.targets import Outcome, Target, evaluate

__all__ = ["run", "render", "build", "AioReport", "TARGETS", "TOPOLOGIES", "LOOPS"]

CAPACITY = 65536
YIELD_EVERY = 1024

TASK_SYNC = "task_to_loop_sync"
TASK_ASYNC = "task_to_loop_async"
THREAD = "thread_to_loop"
TOPOLOGIES = (TASK_SYNC, TASK_ASYNC, THREAD)
LOOPS = ("asyncio", "uvloop")

RINGBUS = "ringbus"
QUEUE = "asyncio.Queue"
JANUS = "janus"
PSYGNAL = "psygnal async"
PYEE = "pyee"
QUEUE_THREADSAFE = "asyncio.Queue threadsafe"

_now = time.perf_counter_ns


def case_name(topology: str, loop: str) -> str:
    return f"{topology}[{loop}]"


def _targets() -> tuple[Target, ...]:
    out = []
    for loop in LOOPS:
        s, a, t = (case_name(x, loop) for x in TOPOLOGIES)
        out += [
            Target(s, QUEUE, ">= 3x ringbus", (s, QUEUE), (s, RINGBUS), ">=", 3.0),
            Target(a, PSYGNAL, ">= 2x ringbus", (a, PSYGNAL), (a, RINGBUS), ">=", 2.0),
            Target(t, JANUS, ">= 5x ringbus", (t, JANUS), (t, RINGBUS), ">=", 5.0),
        ]
    return tuple(out)


#: The targets as ratios of ns/event medians: a peer's time per event over ringbus's.
TARGETS = _targets()


# -- running one contender ---------------------------------------------------------------------

def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def _on_fresh_loop(kind: str, make: Callable[[int], "asyncio.Future"], n: int) -> int:
    """Run ``make(n)`` (a coroutine returning elapsed ns) on a new loop; close it after."""
    loop = _loop_factory(kind)()
    try:
        return loop.run_until_complete(make(n))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class _Counter:
    """The handler every contender calls: counts, and resolves ``done`` at the last event."""

    def __init__(self, n: int):
        self.n = n
        self.count = 0
        self.done = asyncio.get_running_loop().create_future()

    def sync(self):
        def handler(x):
            self.count += 1
            if self.count == self.n:
                self.done.set_result(None)
        return handler

    def coro(self):
        async def handler(x):
            self.count += 1
            if self.count == self.n:
                self.done.set_result(None)
        return handler


async def _cancel(task):
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


# ringbus ----------------------------------------------------------------------------------

async def _ringbus_task(n: int, use_async: bool) -> int:
    bus = Bus(capacity=CAPACITY)
    t = bus.event_type("x")
    c = _Counter(n)
    bus.subscribe(t, c.coro() if use_async else c.sync())
    consumer = asyncio.ensure_future(bus.run_async())
    await asyncio.sleep(0)
    publish = bus.publish_async
    t0 = _now()
    for i in range(n):
        await publish(t, i)
    await c.done
    elapsed = _now() - t0
    await _cancel(consumer)
    return elapsed


async def _ringbus_thread(n: int) -> int:
    bus = Bus(capacity=CAPACITY)
    t = bus.event_type("x")
    c = _Counter(n)
    bus.subscribe(t, c.sync())
    consumer = asyncio.ensure_future(bus.run_async())
    await asyncio.sleep(0)

    def produce():
        publish = bus.publish
        for i in range(n):
            publish(t, i)

    th = threading.Thread(target=produce)
    t0 = _now()
    th.start()
    await c.done
    elapsed = _now() - t0
    th.join()
    await _cancel(consumer)
    return elapsed


# asyncio.Queue ----------------------------------------------------------------------------

async def _queue_task(n: int, use_async: bool) -> int:
    q: asyncio.Queue = asyncio.Queue(CAPACITY)
    c = _Counter(n)
    h = c.coro() if use_async else c.sync()

    async def consume_sync():
        get = q.get
        while True:
            h(await get())

    async def consume_async():
        get = q.get
        while True:
            await h(await get())

    consumer = asyncio.ensure_future(consume_async() if use_async else consume_sync())
    put = q.put
    t0 = _now()
    for i in range(n):
        await put(i)
    await c.done
    elapsed = _now() - t0
    await _cancel(consumer)
    return elapsed


async def _queue_thread(n: int) -> int:
    q: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    c = _Counter(n)
    h = c.sync()

    async def consume():
        get = q.get
        while True:
            h(await get())

    consumer = asyncio.ensure_future(consume())

    def produce():
        call = loop.call_soon_threadsafe
        put = q.put_nowait
        for i in range(n):
            call(put, i)

    th = threading.Thread(target=produce)
    t0 = _now()
    th.start()
    await c.done
    elapsed = _now() - t0
    th.join()
    await _cancel(consumer)
    return elapsed


# janus ------------------------------------------------------------------------------------

async def _janus_task(n: int, use_async: bool) -> int:
    import janus
    q: janus.Queue[int] = janus.Queue(CAPACITY)
    c = _Counter(n)
    h = c.coro() if use_async else c.sync()
    aq = q.async_q

    async def consume_sync():
        get = aq.get
        while True:
            h(await get())

    async def consume_async():
        get = aq.get
        while True:
            await h(await get())

    consumer = asyncio.ensure_future(consume_async() if use_async else consume_sync())
    put = aq.put
    t0 = _now()
    for i in range(n):
        await put(i)
    await c.done
    elapsed = _now() - t0
    await _cancel(consumer)
    q.close()
    await q.wait_closed()
    return elapsed


async def _janus_thread(n: int) -> int:
    import janus
    q: janus.Queue[int] = janus.Queue(CAPACITY)
    c = _Counter(n)
    h = c.sync()

    async def consume():
        get = q.async_q.get
        while True:
            h(await get())

    consumer = asyncio.ensure_future(consume())

    def produce():
        put = q.sync_q.put
        for i in range(n):
            put(i)

    th = threading.Thread(target=produce)
    t0 = _now()
    th.start()
    await c.done
    elapsed = _now() - t0
    th.join()
    await _cancel(consumer)
    q.close()
    await q.wait_closed()
    return elapsed


# psygnal (async mode) and pyee ------------------------------------------------------------

async def _psygnal_task(n: int) -> int:
    import psygnal
    from psygnal import _async

    class Emitter:
        sig = psygnal.Signal(object)

    _async.clear_async_backend()
    psygnal.set_async_backend("asyncio")
    await asyncio.sleep(0)              # its backend task starts
    try:
        e = Emitter()
        c = _Counter(n)
        e.sig.connect(c.coro())
        emit = e.sig.emit
        t0 = _now()
        for i in range(n):
            emit(i)
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        await c.done
        return _now() - t0
    finally:
        _async.clear_async_backend()


async def _pyee_task(n: int, use_async: bool) -> int:
    from pyee.asyncio import AsyncIOEventEmitter
    ee = AsyncIOEventEmitter(loop=asyncio.get_running_loop())
    c = _Counter(n)
    ee.on("x", c.coro() if use_async else c.sync())
    emit = ee.emit
    t0 = _now()
    for i in range(n):
        emit("x", i)
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    await c.done
    return _now() - t0


# -- building and running the cases ------------------------------------------------------------

@dataclass
class _Spec:
    label: str
    shown: str
    dist: Optional[str]                 # the package that must be importable
    make: Callable[[int], object]       # n -> coroutine returning ns


def _specs(topology: str) -> list[_Spec]:
    if topology == TASK_SYNC:
        return [
            _Spec(RINGBUS, "ringbus publish_async -> run_async", None,
                  lambda n: _ringbus_task(n, False)),
            _Spec(QUEUE, "asyncio.Queue put/get", None, lambda n: _queue_task(n, False)),
            _Spec(JANUS, "janus async_q put/get", "janus", lambda n: _janus_task(n, False)),
            _Spec(PYEE, "pyee AsyncIOEventEmitter (inline)", "pyee",
                  lambda n: _pyee_task(n, False)),
        ]
    if topology == TASK_ASYNC:
        return [
            _Spec(RINGBUS, "ringbus publish_async -> run_async", None,
                  lambda n: _ringbus_task(n, True)),
            _Spec(QUEUE, "asyncio.Queue put/get + await", None,
                  lambda n: _queue_task(n, True)),
            _Spec(JANUS, "janus async_q put/get + await", "janus",
                  lambda n: _janus_task(n, True)),
            _Spec(PSYGNAL, "psygnal emit, async backend", "psygnal", _psygnal_task),
            _Spec(PYEE, "pyee AsyncIOEventEmitter (task per emit)", "pyee",
                  lambda n: _pyee_task(n, True)),
        ]
    if topology == THREAD:
        return [
            _Spec(RINGBUS, "ringbus publish (thread) -> run_async", None, _ringbus_thread),
            _Spec(JANUS, "janus sync_q.put -> async_q.get", "janus", _janus_thread),
            _Spec(QUEUE_THREADSAFE, "call_soon_threadsafe(q.put_nowait)", None,
                  _queue_thread),
        ]
    raise ValueError(f"unknown topology {topology!r}; known: {', '.join(TOPOLOGIES)}")


_TITLES = {
    TASK_SYNC: "producer task -> loop consumer, sync handler",
    TASK_ASYNC: "producer task -> loop consumer, async handler",
    THREAD: "producer thread -> loop consumer, sync handler",
}


def _available(module: Optional[str]) -> Optional[str]:
    """None if importable, else the reason it is not."""
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError:
        return "not installed"
    return None


def build(events: int = 1_000_000, loops: Sequence[str] = LOOPS,
          topologies: Sequence[str] = TOPOLOGIES) -> list[Case]:
    """The cases: ``topologies`` x the ``loops`` that are installed, ``events`` per run."""
    cases = []
    for loop in loops:
        if loop not in LOOPS:
            raise ValueError(f"unknown loop {loop!r}; known: {', '.join(LOOPS)}")
        missing = _available("uvloop" if loop == "uvloop" else None)
        for topology in topologies:
            contenders = []
            for spec in _specs(topology):
                status = missing or _available(spec.dist)
                if status is not None:
                    contenders.append(Contender(spec.label, spec.shown, status=status))
                    continue

                def timed(kind=loop, make=spec.make, n=events):
                    return _on_fresh_loop(kind, make, n)
                contenders.append(Contender(spec.label, spec.shown, timed, events))
            cases.append(Case(case_name(topology, loop), f"{_TITLES[topology]} ({loop})",
                              contenders))
    return cases


@dataclass
class AioReport:
    """What :func:`run` measured: the cases (with their samples), the target outcomes and
    the environment."""

    cases: list[Case]
    outcomes: list[Outcome]
    events: int
    rounds: int
    env: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def medians(self) -> dict[tuple[str, str], Optional[float]]:
        """(case, row label) -> median ns/event."""
        return {(c.name, k.label): k.median for c in self.cases for k in c.contenders}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run(events: int = 1_000_000, rounds: int = 3, warmup: int = 1,
        loops: Sequence[str] = LOOPS, topologies: Sequence[str] = TOPOLOGIES,
        progress: Optional[Callable[[str], None]] = None) -> AioReport:
    """Measure every case; return an :class:`AioReport` (print it with :func:`render`).

    ``events`` per timed run (1,000,000 for the issue's numbers; the full run then takes a
    few minutes, most of it in the slowest peers), ``rounds`` timed runs per contender after
    ``warmup`` untimed ones. Targets are evaluated, never asserted.
    """
    started = time.perf_counter()
    cases = build(events, loops, topologies)
    run_rounds(cases, rounds, warmup, progress)
    report = AioReport(cases, [], events, rounds)
    report.outcomes = evaluate(report.medians(), TARGETS)
    report.env = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "versions": ", ".join(f"{d} {_version(d)}"
                              for d in ("ringbus", "uvloop", "janus", "psygnal", "pyee")),
    }
    report.seconds = time.perf_counter() - started
    return report


def render(report: AioReport) -> str:
    """The report as a text table: ns/event, events/s and the ratio to ringbus per row."""
    lines = [f"ringbus asyncio benchmarks: {report.events:,} events per run, median of "
             f"{report.rounds} rounds ({report.seconds:.0f} s)"]
    lines += [f"  {k}: {v}" for k, v in report.env.items()]
    notes = {(o.target.case, o.target.row): str(o) for o in report.outcomes}
    header = ("case", "implementation", "ns/event", "events/s", "vs ringbus", "target")
    rows = [header]
    for case in report.cases:
        base = case.median(RINGBUS)
        for c in case.contenders:
            med = c.median
            if med is None:
                rows.append((case.name, c.shown, c.status or "-", "", "", ""))
                continue
            ratio = f"{med / base:.2f}x" if base else ""
            rows.append((case.name, c.shown, f"{med:,.0f}", f"{1e9 / med:,.0f}", ratio,
                         notes.get((case.name, c.label), "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, r in enumerate(rows):
        lines.append("  ".join(v.rjust(w) if 2 <= j <= 4 else v.ljust(w)
                               for j, (v, w) in enumerate(zip(r, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":          # python -m ringbus.benchmarks.aio [events] [rounds]
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    r = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(render(run(n, r, progress=lambda m: print(m, file=sys.stderr))))
