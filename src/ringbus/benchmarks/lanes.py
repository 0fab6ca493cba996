"""``lane_latency``, ``conflate_publish``: priority lanes and conflation (issue 13).

- ``lane_latency``: a market-data producer thread saturates the bus (``publish_many`` in
  runs of 1,024, blocking while the ring is full) while this thread publishes control
  events (orders), one every ``lane_period_us``, each stamped with ``perf_counter_ns``
  before its publish; the control handler records now minus the stamp. Two rows, the same
  work: the orders in the same ring as the market data (they wait behind up to a full ring
  of it), and the orders in a lane of their own with a higher priority (they wait at most
  for the market-data batch in hand). Both under ``sys.setswitchinterval(0.0005)``:
  otherwise both sit at the 5 ms GIL switch interval, the time this thread waits for the
  GIL to publish at all. The market-data handler does what a book update does: one dict
  store. Every run checks that every order arrived, once, in order.
- ``conflate_publish``: one producer, 100 keys round robin, while the consumer lags (the
  ring is drained only after the timed loop): ``publish_conflated`` (the first publish of
  a key queues a carrier, the others replace its payload) vs plain ``publish`` of every
  event.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Optional

from ringbus.benchmarks.measure import Case, Contender, Failed, compile_loop

__all__ = ["LATENCY", "CONFLATE", "NAMES", "ONE_RING", "LANE", "PLAIN", "CONFLATED",
           "SWITCH_INTERVAL", "build"]

LATENCY, CONFLATE = "lane_latency", "conflate_publish"
NAMES = (LATENCY, CONFLATE)
ONE_RING = "one ring"
LANE = "control lane"
PLAIN = "ringbus publish"
CONFLATED = "ringbus publish_conflated"
SWITCH_INTERVAL = 0.0005
_CHUNK = 1024


class _Burst:
    """A market-data producer thread that keeps the bus's default lane full until stopped."""

    def __init__(self, bus: Any, md: int) -> None:
        self.bus, self.md = bus, md
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def __enter__(self) -> "_Burst":
        chunk = list(range(_CHUNK))
        publish_many, md, stop = self.bus.publish_many, self.md, self.stop

        def run() -> None:
            from ringbus import RingFull
            while not stop.is_set():
                try:
                    publish_many(md, chunk, 0.05)   # a bounded wait: it sees the stop soon
                except RingFull:
                    pass
        self.thread = threading.Thread(target=run, name="bench-md-burst", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def _lane_contender(label: str, shown: str, lane: bool, orders: int, period_ns: int,
                    capacity: int) -> Contender:
    import ringbus
    bus = ringbus.Bus(capacity=capacity)
    md = bus.event_type("md.tick")
    order = bus.event_type("order.new")
    if lane:
        bus.add_lane("control", 10, capacity=1024, types=[order])
    book: dict = {}

    def on_md(p: int) -> None:
        book[p] = p
    latencies: list = []
    seen: list = []
    clock = time.perf_counter_ns

    def on_order(p: tuple) -> None:
        latencies.append(clock() - p[1])
        seen.append(p[0])
    bus.subscribe(md, on_md)
    bus.subscribe(order, on_order)
    publish, sleep = bus.publish, time.sleep

    def loop() -> int:
        latencies.clear()
        seen.clear()
        old = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            bus.start()
            try:
                with _Burst(bus, md):
                    time.sleep(0.02)                # the ring fills first
                    t0 = clock()
                    for i in range(orders):
                        publish(order, (i, clock()))
                        deadline = clock() + period_ns
                        while clock() < deadline:
                            sleep(period_ns / 4e9)
                    t1 = clock()
                    give_up = time.monotonic() + 30
                    while len(seen) < orders and time.monotonic() < give_up:
                        time.sleep(0.001)
            finally:
                bus.stop(drain=False)
                bus.drain()
        finally:
            sys.setswitchinterval(old)
        if seen != list(range(orders)):
            raise Failed(f"orders lost or out of order: {len(seen):,} of {orders:,} arrived")
        return t1 - t0

    return Contender(label, shown, loop, orders, observe=lambda: list(latencies),
                     keep=(bus, on_md, on_order))


def _latency_case(settings: Any) -> Case:
    orders = settings.lane_orders
    period = int(settings.lane_period_us * 1e3)
    rows = [
        _lane_contender(ONE_RING, "orders in the market-data ring", False, orders, period,
                        settings.capacity),
        _lane_contender(LANE, "orders in a control lane (priority 10)", True, orders, period,
                        settings.capacity),
    ]
    return Case(LATENCY, f"order latency while a producer thread saturates the market-data "
                         f"ring ({settings.capacity:,} slots), sys.setswitchinterval"
                         f"({SWITCH_INTERVAL:g}), 1 order every "
                         f"{settings.lane_period_us:g} µs", rows, table="latency",
                rounds=settings.thread_rounds, group=LATENCY)


def _conflate_case(settings: Any) -> Case:
    import ringbus
    n = settings.events
    keys = [f"SYM{i % 100}" for i in range(n)]
    rows = []
    for label, shown, conflate in ((PLAIN, "ringbus Bus.publish, every event queued", False),
                                   (CONFLATED, "ringbus Bus.publish_conflated, 100 keys",
                                    True)):
        bus = ringbus.Bus(capacity=1 << (n - 1).bit_length())
        t = bus.event_type("md.tick")
        got: list = []
        bus.subscribe(t, got.append)
        if conflate:
            loop = compile_loop("pub(t, k, k)", "k", "keys",
                                {"pub": bus.publish_conflated, "t": t, "keys": keys}, label)
        else:
            loop = compile_loop("pub(t, k)", "k", "keys",
                                {"pub": bus.publish, "t": t, "keys": keys}, label)

        def observe(bus: Any = bus, got: list = got, conflate: bool = conflate) -> list:
            bus.drain()                     # untimed: the consumer catches up
            want = 100 if conflate else n
            if len(got) != want:
                raise Failed(f"dispatched {len(got):,} events, expected {want:,}")
            got.clear()
            return []
        rows.append(Contender(label, shown, loop, n, observe=observe, keep=bus))
    return Case(CONFLATE, f"publish with a lagging consumer, {n:,} events over 100 keys",
                rows, table="ring", reference=PLAIN)


def build(name: str, settings: Any,
          progress: Optional[Callable[[str], None]] = None) -> Case:
    """The case ``name`` (one of :data:`NAMES`)."""
    if name == LATENCY:
        return _latency_case(settings)
    if name == CONFLATE:
        return _conflate_case(settings)
    raise ValueError(f"unknown lanes case {name!r}")
