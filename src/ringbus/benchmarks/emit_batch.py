"""``emit_batch_1m``: a numpy batch of rows routed by event type to batch handlers.

1,000,000 rows of a 16-byte record (``[("px", "f8"), ("qty", "i8")]``), each of one of 16
event types drawn at random (seeded), go to 16 batch handlers (``bus.subscribe_batch``),
each called once with its type's rows, in their original order. Timed, per row:

- ringbus ``emit_batch(types, rows)``: a compiled counting pass, one gather, 16 calls;
- the numpy way without a bus: ``order = np.argsort(types, kind="stable")``, the rows
  gathered in that order, split per type (``np.bincount`` + ``cumsum``), one call per type;
- a Python loop calling ``bus.emit(int(t), row)`` per row, to per-event handlers, on the
  first ``loop_rows`` (100,000) rows only and scaled per row;
- ``rows.copy()``: moving the bytes once, the floor of any routing that gathers them.

Every run checks that each handler got its type's number of rows; before timing, a small
batch checks that ringbus and the numpy baseline deliver exactly each type's rows, in order.
"""
from __future__ import annotations

import importlib
from time import perf_counter_ns
from typing import Any, Callable, Optional

from ringbus import Bus
from ringbus.benchmarks.handoff import make_recorder
from ringbus.benchmarks.measure import Case, CheckedRun, Contender, Failed, compile_function
from ringbus.benchmarks.topology import Settings

NAME = "emit_batch_1m"
RINGBUS = "ringbus"
ARGSORT = "numpy argsort"
EMIT_LOOP = "ringbus emit loop"
COPY = "copy"

ROWS = (
    (COPY, "rows.copy() (the bytes moved once)"),
    (RINGBUS, "ringbus emit_batch(types, rows)"),
    (ARGSORT, "np.argsort(stable) + split + 1 call per type"),
    (EMIT_LOOP, "Python loop: bus.emit(int(t), row) per row"),
)
#: The record of each row: 16 bytes.
DTYPE = [("px", "f8"), ("qty", "i8")]

_LOOP = """\
def loop(emit, ts, rs, _clock=_clock):
    t0 = _clock()
    for t, row in zip(ts, rs):
        emit(int(t), row)
    return _clock() - t0
"""


def argsort_route(np: Any, types: Any, rows: Any, handlers: list) -> int:
    """The baseline: group ``rows`` by ``types`` (0 <= t < len(handlers)) with numpy, then
    call ``handlers[t]`` once with type t's rows, in their original order."""
    order = np.argsort(types, kind="stable")
    grouped = rows.take(order)
    ends = np.cumsum(np.bincount(types, minlength=len(handlers))).tolist()
    start = 0
    for t, end in enumerate(ends):
        if end > start:
            handlers[t](grouped[start:end])
        start = end
    return len(types)


class _Counted(CheckedRun):
    """``call()`` timed; its batch handlers add up the rows they got per type."""

    def __init__(self, call: Callable[[], Any], seen: list, expected: list):
        self.call, self.seen, self.expected = call, seen, expected

    def run(self) -> int:
        t0 = perf_counter_ns()
        self.call()
        return perf_counter_ns() - t0

    def check(self) -> None:
        seen = list(self.seen)
        self.seen[:] = [0] * len(self.seen)
        if seen != self.expected:
            lost = sum(self.expected) - sum(seen)
            raise Failed(f"rows per type {seen} != expected {self.expected}"
                         + (f" ({lost:,} rows lost)" if lost > 0 else ""))


class _Looped(CheckedRun):
    def __init__(self, loop: Callable[[], int], gots: list, expected: list):
        self.loop, self.gots, self.expected = loop, gots, expected

    def run(self) -> int:
        return self.loop()

    def check(self) -> None:
        seen = [len(g) for g in self.gots]
        for g in self.gots:
            g.clear()
        if seen != self.expected:
            raise Failed(f"rows per type {seen} != expected {self.expected}")


def _counting_handlers(seen: list) -> list:
    def make(k: int) -> Callable[[Any], None]:
        def h(view):
            seen[k] += len(view)
        return h
    return [make(k) for k in range(len(seen))]


def _self_check(np: Any, route: Callable[[Any, Any, list], Any], k: int,
                rng: Any) -> Optional[str]:
    """Route a small batch with collecting handlers; None if each type got exactly its
    rows in order, else what went wrong."""
    types = rng.integers(0, k, size=2_000, dtype=np.int64)
    rows = np.zeros(len(types), dtype=DTYPE)
    rows["qty"] = np.arange(len(types))
    got: list[list] = [[] for _ in range(k)]
    route(types, rows, [g.append for g in got])
    for t in range(k):
        want = rows[types == t]
        have = np.concatenate(got[t]) if got[t] else rows[:0]
        if len(got[t]) > 1 or not np.array_equal(have, want):
            return (f"self-check failed for type {t}: {len(got[t])} call(s), "
                    f"{len(have)} rows, expected 1 call with {len(want)} rows in order")
    return None


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``emit_batch_1m`` case."""
    n, k = settings.batch_rows, settings.batch_types
    m = min(settings.loop_rows, n)
    title = (f"{n:,} rows of 16 bytes, {k} types, to {k} batch handlers "
             f"(the emit loop: {m:,} rows, scaled)")
    try:
        np = importlib.import_module("numpy")
    except ImportError:
        return Case(NAME, title, [Contender(label, shown, status="numpy not installed")
                                  for label, shown in ROWS],
                    table="batch", reference=RINGBUS)
    rng = np.random.default_rng(settings.seed)
    types = rng.integers(0, k, size=n, dtype=np.int64)
    rows = np.zeros(n, dtype=DTYPE)
    rows["px"] = np.arange(n) * 0.25
    rows["qty"] = np.arange(n)
    expected = np.bincount(types, minlength=k).tolist()
    shown = dict(ROWS)
    contenders = []

    copied = [0]

    def copy() -> None:
        copied[0] += len(rows.copy())
    contenders.append(Contender(COPY, shown[COPY], _Counted(copy, copied, [n]), n))

    # ringbus emit_batch: event types registered in order, so ids are 0..k-1 (checked).
    bus = Bus()
    ids = [bus.event_type(f"t{i}") for i in range(k)]
    bus_types = types if ids == list(range(k)) else np.asarray(ids, dtype=np.int64)[types]
    seen = [0] * k
    handlers = _counting_handlers(seen)
    for t, h in zip(ids, handlers):
        bus.subscribe_batch(t, h)

    def via_bus(ts: Any, rs: Any, hs: list) -> None:
        b = Bus()
        tids = [b.event_type(f"t{i}") for i in range(k)]
        for t, h in zip(tids, hs):
            b.subscribe_batch(t, h)
        b.emit_batch(np.asarray(tids, dtype=np.int64)[ts], rs)
    problem = _self_check(np, via_bus, k, rng)
    if problem is not None:
        contenders.append(Contender(RINGBUS, shown[RINGBUS], status=f"FAILED: {problem}"))
    else:
        contenders.append(Contender(RINGBUS, shown[RINGBUS], _Counted(
            lambda: bus.emit_batch(bus_types, rows), seen, expected), n,
            keep=(bus, handlers)))

    # numpy argsort baseline.
    a_seen = [0] * k
    a_handlers = _counting_handlers(a_seen)
    problem = _self_check(np, lambda ts, rs, hs: argsort_route(np, ts, rs, hs), k, rng)
    if problem is not None:
        contenders.append(Contender(ARGSORT, shown[ARGSORT], status=f"FAILED: {problem}"))
    else:
        contenders.append(Contender(ARGSORT, shown[ARGSORT], _Counted(
            lambda: argsort_route(np, types, rows, a_handlers), a_seen, expected), n,
            keep=a_handlers))

    # A Python loop of emit(), to per-event subscribers, over the first m rows.
    bus2 = Bus()
    ids2 = [bus2.event_type(f"t{i}") for i in range(k)]
    recorders = [make_recorder() for _ in range(k)]
    for t, (h, _) in zip(ids2, recorders):
        bus2.subscribe(t, h)
    ts = types[:m] if ids2 == list(range(k)) else np.asarray(ids2, dtype=np.int64)[types[:m]]
    loop = compile_function(_LOOP, "loop", {"emit": bus2.emit, "ts": ts, "rs": rows[:m]},
                            EMIT_LOOP)
    contenders.append(Contender(EMIT_LOOP, shown[EMIT_LOOP], _Looped(
        loop, [got for _, got in recorders], np.bincount(types[:m], minlength=k).tolist()),
        m, keep=(bus2, recorders)))
    return Case(NAME, title, contenders, table="batch", reference=RINGBUS)
