"""``workers_cpu``, ``workers_tiny``, ``workers_latency``: worker processes against
multiprocessing's pools, same work, same run (issue 11).

- ``workers_cpu``: a CPU-bound handler (:func:`~ringbus.benchmarks.work.burn`, about 20 µs
  of pure Python an item): the bus's own consumer thread running it in this process,
  ``Workers`` with 2 processes (round robin), ``multiprocessing.Pool(2).imap`` and
  ``ProcessPoolExecutor(2).map`` at several chunksizes. Items/s from the first item sent
  until the last result is back (a ``bench.result`` event handled on the parent's bus, as
  ``Pool.imap`` hands back each result).
- ``workers_tiny``: the same contenders on :func:`~ringbus.benchmarks.work.tiny` (the
  hand-off), and ``Workers`` fed record batches (``emit_batch`` of 8,192 16-byte records,
  split by key field, ``value + 1`` per row in the worker, one result array back per part).
- ``workers_latency``: event -> worker -> reply event on the parent's bus, one event about
  every 250 µs (a 200 µs sleep between), against ``Pool.apply`` of the same function.
- ``workers_router``: the scaling plan's measurement: events/s the parent routes (publish,
  its consumer's router, the inbox rings) to 2, 8 and 16 workers whose handler does nothing,
  from the first publish until every worker counted its events handled.

Every contender returns a result per item and every run checks the count (the pools: the
values too): a lost item fails the row. The processes start before the first clock, once
for the three cases, and are stopped when the run ends. The cases run as a group of their
own (not interleaved with the others): the idle workers' result threads poll.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
import time
from typing import Any, Callable, Optional

from ringbus.benchmarks import work
from ringbus.benchmarks.measure import Case, CheckedRun, Contender, Failed, timed_publish
from ringbus.benchmarks.topology import Settings

__all__ = ["CPU", "TINY", "LATENCY", "ROUTER", "router_label", "IN_PROCESS", "WORKERS", "BATCHES", "POOL", "EXECUTOR",
           "ROUND_TRIP", "POOL_APPLY", "build", "chunk_label"]

CPU, TINY, LATENCY, ROUTER = "workers_cpu", "workers_tiny", "workers_latency", "workers_router"
NAMES = (CPU, TINY, LATENCY, ROUTER)
ROUTER_PROCESSES = (2, 8, 16)
IN_PROCESS = "ringbus in-process"
WORKERS = "ringbus Workers"
BATCHES = "ringbus Workers, record batches"
POOL = "Pool.imap"
EXECUTOR = "ProcessPoolExecutor.map"
ROUND_TRIP = "ringbus Workers round trip"
POOL_APPLY = "Pool.apply round trip"
GROUP = "workers"
CHUNKSIZES = (1, 16, 256, 4096)
BLOCK = 8192                # rows per emit_batch of the record-batch contender


def router_label(processes: int) -> str:
    """The row label of the router case at ``processes`` workers."""
    return f"ringbus Workers router, {processes} processes"


def chunk_label(peer: str, chunksize: int) -> str:
    """The row label of pool ``peer`` (POOL, EXECUTOR) at ``chunksize``; targets read
    ``peer + " *"``: the best chunksize of the run."""
    return f"{peer} chunksize={chunksize}"


class _Side:
    """A parent bus whose ``bench.burn`` / ``bench.tiny`` events go to handlers here
    (``workers`` None) or to the Workers; it counts results until all are back."""

    def __init__(self, workers: Any = None, batches: bool = False, noop: bool = False):
        import ringbus
        self.bus = bus = ringbus.Bus()
        self.types = {"burn": bus.event_type("bench.burn"),
                      "tiny": bus.event_type("bench.tiny")}
        result = bus.event_type("bench.result")
        self.count = self.want = 0
        self.done = threading.Event()
        self.workers = workers
        if workers is None:
            for kind, t in self.types.items():
                bus.subscribe(t, self._in_process(getattr(work, kind)))
        elif noop:
            bus.subscribe(bus.event_type("bench.item"), workers)
        elif batches:
            bus.subscribe_batch(self.types["tiny"], workers)
            bus.subscribe(result, self._rows_back)
        else:
            for t in (*self.types.values(), bus.event_type("bench.ping")):
                bus.subscribe(t, workers)
            bus.subscribe(result, lambda r: self._back(1))
        if workers is not None:
            self._running = workers.running(bus)
            self._running.__enter__()

    def _in_process(self, fn: Callable[[int], int]) -> Callable[[int], None]:
        def handle(x: int) -> None:
            fn(x)
            self._back(1)
        return handle

    def _rows_back(self, values: Any) -> None:
        self._back(len(values))

    def _back(self, n: int) -> None:
        self.count += n
        if self.count >= self.want:
            self.done.set()

    def timed(self, items: int, send: Callable[[], None]) -> int:
        """Nanoseconds from the first ``send`` until ``items`` results are back."""
        self.count, self.want = 0, items
        self.done.clear()
        with self.bus.running():
            t0 = time.perf_counter_ns()
            send()
            if not self.done.wait(60):
                raise Failed(f"only {self.count} of {items} results came back in 60 s")
            elapsed = time.perf_counter_ns() - t0
        if self.count != items:
            raise Failed(f"{self.count} results for {items} items")
        return elapsed

    def close(self) -> None:
        if self.workers is not None:
            self._running.__exit__(None, None, None)
        self.bus.close()


class _Fleet:
    """The processes of the three cases: made at the first run (so that other cases never
    run beside idle workers), stopped when the last case closes."""

    def __init__(self, processes: int):
        self.processes = processes
        self.users = 0
        self.parts: dict[str, Any] = {}

    def get(self, part: str) -> Any:
        if not self.parts:
            self._start()
        return self.parts[part]

    def _start(self) -> None:
        import ringbus
        n = self.processes
        ctx = multiprocessing.get_context("spawn")
        made = self.parts
        try:
            made["pool"] = ctx.Pool(n)
            made["executor"] = concurrent.futures.ProcessPoolExecutor(n, mp_context=ctx)
            list(made["pool"].imap(work.tiny, range(n * 4)))        # started and warm
            list(made["executor"].map(work.tiny, range(n * 4)))
            made["in_process"] = _Side()
            made["workers"] = _Side(ringbus.Workers("ringbus.benchmarks.work:bench_setup",
                                                    processes=n))
            if _numpy_installed():
                made["batches"] = _Side(ringbus.Workers(
                    "ringbus.benchmarks.work:tiny_rows_setup", processes=n, key="key"),
                    batches=True)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        parts, self.parts = self.parts, {}
        if "pool" in parts:
            parts["pool"].terminate()
            parts["pool"].join()
        if "executor" in parts:
            parts["executor"].shutdown()
        for key in ("in_process", "workers", "batches"):
            if key in parts:
                parts[key].close()


class _BusRun(CheckedRun):
    def __init__(self, fleet: _Fleet, part: str, kind: str, items: int):
        self.fleet, self.part, self.kind, self.items = fleet, part, kind, items

    def run(self) -> int:
        side = self.fleet.get(self.part)
        publish, t, items = side.bus.publish, side.types[self.kind], self.items

        def send() -> None:
            for x in range(items):
                publish(t, x)
        return side.timed(items, send)

    def check(self) -> None:
        pass                                # timed() raised Failed on a missing result


class _BatchRun(_BusRun):
    def run(self) -> int:
        import numpy as np
        side = self.fleet.get(self.part)
        types = np.full(BLOCK, side.types["tiny"], np.int64)
        rows = np.zeros(BLOCK, np.dtype([("key", "<i8"), ("value", "<f8")]))
        rows["key"] = np.arange(BLOCK)
        emit_batch, blocks = side.bus.emit_batch, self.items // BLOCK

        def send() -> None:
            for _ in range(blocks):
                emit_batch(types, rows)
        return side.timed(blocks * BLOCK, send)


class _PoolRun(CheckedRun):
    def __init__(self, fleet: _Fleet, part: str, fn: Callable[[int], int], items: int,
                 chunksize: int):
        self.fleet, self.part, self.fn, self.items, self.chunksize = (fleet, part, fn, items,
                                                                      chunksize)
        self.out: list = []

    def run(self) -> int:
        pool = self.fleet.get(self.part)
        mapper = pool.imap if self.part == "pool" else pool.map
        t0 = time.perf_counter_ns()
        self.out = list(mapper(self.fn, range(self.items), chunksize=self.chunksize))
        return time.perf_counter_ns() - t0

    def check(self) -> None:
        out, self.out = self.out, []
        if len(out) != self.items or out[-1] != self.fn(self.items - 1):
            raise Failed(f"the pool returned {len(out)} results for {self.items} items")


class _RoundTrips(CheckedRun):
    """``events`` round trips, one about every 250 µs; the latencies (ns) in ``last``."""

    def __init__(self, fleet: _Fleet, events: int, via_pool: bool):
        self.fleet, self.events, self.via_pool = fleet, events, via_pool
        self.last: list[float] = []

    def run(self) -> int:
        lat: list[float] = []
        t0 = time.perf_counter_ns()
        if self.via_pool:
            pool = self.fleet.get("pool")
            for _ in range(self.events):
                stamp = pool.apply(work.tiny, (time.perf_counter_ns(),)) - 1
                lat.append(time.perf_counter_ns() - stamp)
                time.sleep(200e-6)
        else:
            lat = self._via_workers()
        self.last = lat
        return time.perf_counter_ns() - t0

    def _via_workers(self) -> list[float]:
        side = self.fleet.get("workers")
        bus = side.bus
        ping, pong = bus.event_type("bench.ping"), bus.event_type("bench.pong")
        lat: list[float] = []
        done = threading.Event()
        n = self.events

        def on_pong(stamp: int) -> None:
            lat.append(time.perf_counter_ns() - stamp)
            if len(lat) >= n:
                done.set()
        sub = bus.subscribe(pong, on_pong)
        try:
            with bus.running():
                for _ in range(n):
                    bus.publish(ping, time.perf_counter_ns())
                    # Paced by sleeping: a busy-waiting thread would hold the GIL that the
                    # reply's threads need (for up to the 5 ms switch interval).
                    time.sleep(200e-6)
                if not done.wait(60):
                    raise Failed(f"{len(lat)} of {n} replies")
        finally:
            sub.unsubscribe()
        return lat

    def latencies(self) -> list[float]:
        return self.last

    def check(self) -> None:
        if len(self.last) != self.events:
            raise Failed(f"{len(self.last)} of {self.events} round trips")


class _RouterRun(CheckedRun):
    """``items`` events published to ``Workers(processes)`` with no-op handlers, round
    robin; timed until the workers counted them all handled. Its workers start at the first
    run and stop when the case closes."""

    def __init__(self, processes: int, items: int):
        self.processes, self.items = processes, items
        self.side: Optional[_Side] = None
        self.handled = 0

    def run(self) -> int:
        import ringbus
        if self.side is None:
            self.side = _Side(ringbus.Workers("ringbus.benchmarks.work:noop_setup",
                                              processes=self.processes), noop=True)
        side = self.side
        bus, workers = side.bus, side.workers
        t, items = bus.event_type("bench.item"), self.items
        elapsed, self.handled = timed_publish(bus, t, items,
                                              lambda: workers.stats()["handled"], 0.001)
        return elapsed

    def check(self) -> None:
        if self.handled != self.items:
            raise Failed(f"{self.handled} of {self.items} events handled")

    def close(self) -> None:
        side, self.side = self.side, None
        if side is not None:
            side.close()


class _RouterCase(Case):
    def close(self) -> None:
        for c in self.contenders:
            if isinstance(c.loop, _RouterRun):
                c.loop.close()


class WorkerCase(Case):
    """A worker case: closing the last one stops the fleet."""

    fleet: Optional[_Fleet] = None

    def close(self) -> None:
        fleet = self.fleet
        if fleet is not None:
            self.fleet = None
            fleet.users -= 1
            if fleet.users == 0:
                fleet.close()


_FLEETS: dict[int, _Fleet] = {}     # by id(settings): the cases of one run share one


def _fleet(settings: Settings) -> _Fleet:
    fleet = _FLEETS.get(id(settings))
    if fleet is None or fleet.users == 0:
        fleet = _FLEETS[id(settings)] = _Fleet(settings.worker_processes)
    fleet.users += 1
    return fleet


def _numpy_installed() -> bool:
    """Record batches are numpy arrays; without numpy their row says so."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def _items(chunksize: int, items: int) -> int:
    """Items per run of a pool row: small chunks are slow, so they get fewer (ns/item
    stays comparable; a run stays well under a second)."""
    return min(items, max(1000, chunksize * 200))


def _throughput_case(name: str, settings: Settings, fn: Callable[[int], int],
                     items: int) -> WorkerCase:
    n = settings.worker_processes
    fleet = _fleet(settings)
    kind = fn.__name__
    work_is = "about 20 µs of Python" if kind == "burn" else "x + 1"
    case = WorkerCase(name, f"{kind}() per item ({work_is}), {n} processes, {items:,} items "
                            f"a run, a result back per item",
                      table=GROUP, rounds=settings.worker_rounds, reference=IN_PROCESS,
                      group=GROUP)
    case.fleet = fleet
    case.contenders = [
        Contender(IN_PROCESS, "ringbus Bus, its consumer thread runs the handler",
                  _BusRun(fleet, "in_process", kind, items), items),
        Contender(WORKERS, f"ringbus Workers({n}), results as events on the parent bus",
                  _BusRun(fleet, "workers", kind, items), items),
    ]
    if name == TINY:
        rows = max(BLOCK, items * 25 // BLOCK * BLOCK)
        shown = f"ringbus Workers({n}) fed emit_batch of {BLOCK:,} records by key"
        if _numpy_installed():
            case.contenders.append(Contender(BATCHES, shown,
                                             _BatchRun(fleet, "batches", kind, rows), rows))
        else:
            case.contenders.append(Contender(BATCHES, shown, status="numpy not installed"))
    for peer, part, shown in ((POOL, "pool", f"multiprocessing.Pool({n}).imap"),
                              (EXECUTOR, "executor", f"ProcessPoolExecutor({n}).map")):
        for c in CHUNKSIZES:
            if c * 4 > items:
                continue
            m = _items(c, items)
            case.contenders.append(Contender(chunk_label(peer, c), f"{shown}, chunksize={c}",
                                             _PoolRun(fleet, part, fn, m, c), m))
    return case


def build(name: str, settings: Settings,
          progress: Optional[Callable[[str], None]] = None) -> Case:
    """Case ``name`` (one of :data:`NAMES`)."""
    if name == CPU:
        return _throughput_case(CPU, settings, work.burn, settings.worker_cpu_items)
    if name == TINY:
        return _throughput_case(TINY, settings, work.tiny, settings.worker_tiny_items)
    if name == ROUTER:
        items = settings.worker_tiny_items
        first = ROUTER_PROCESSES[0]
        router = _RouterCase(ROUTER, f"the parent's router: {items:,} events a run to "
                                     f"workers whose handler does nothing, round robin",
                             table=GROUP, rounds=settings.worker_rounds,
                             reference=router_label(first), group=ROUTER)
        router.contenders = [
            Contender(router_label(n), f"ringbus Workers({n}), no-op handlers",
                      _RouterRun(n, items), items) for n in ROUTER_PROCESSES]
        return router
    if name != LATENCY:
        raise ValueError(f"unknown worker case {name!r}")
    n, events = settings.worker_processes, settings.worker_latency_events
    fleet = _fleet(settings)
    case = WorkerCase(LATENCY, f"event -> worker -> reply on the parent bus, one about every "
                               f"250 µs, {events:,} a run", table="workers_latency",
                      rounds=settings.worker_rounds, group=GROUP)
    case.fleet = fleet
    for label, shown, via_pool in ((ROUND_TRIP, f"ringbus Workers({n}): publish -> worker "
                                                f"handler publishes -> parent handler", False),
                                   (POOL_APPLY, f"multiprocessing.Pool({n}).apply", True)):
        run = _RoundTrips(fleet, events, via_pool)
        case.contenders.append(Contender(label, shown, run, events, observe=run.latencies))
    return case
