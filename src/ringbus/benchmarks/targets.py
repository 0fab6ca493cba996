"""The issues' speed targets, as data. They are reported, never asserted.

Each target is a ratio of two medians from the same run and a bound (or, for an absolute
target such as "<= 10 ns/row", one median and a bound); the table prints it on the row it
is about. Foundation issue: the emit cases; issue 3: the ring cases; issue 4: the batch case;
issue 10: the process cases; issue 11: the worker cases. A latency target reads the row's
p50 (the key ``(case, row + " p50")``, in µs: :meth:`.report.Report.values`). A row label
ending in ``" *"`` means the fastest (lowest median) of the rows that start with the rest:
a pool at its best chunksize of the run.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from ringbus.benchmarks import (
    bridges, emit_batch, event_types, fan_out, metrics, no_subscriber, one_thread, one_to_one,
    lanes, one_to_one_threads, pipelines, routing, workers, xproc_latency, xproc_messages,
    xproc_records,
)
from ringbus.benchmarks.handoff import SIMPLEQUEUE
from ringbus.benchmarks.peers import (
    BLINKER, DICT, FLOOR, PSYGNAL_EMIT, PSYGNAL_EMIT_FAST, PYEE, RINGBUS,
)

__all__ = ["Target", "Outcome", "TARGETS", "evaluate"]

Key = tuple[str, str]   # (case name, row label)
_OPS: Mapping[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """``median(num) / median(den) <op> bound``, shown on row ``row`` of case ``case``;
    with ``den=None``, ``median(num) <op> bound`` in ``unit``."""

    case: str
    row: str
    text: str
    num: Key
    den: Optional[Key]
    op: str
    bound: float
    unit: str = "x"
    # True: the value is median(num) - median(den), in ``unit`` (what one row adds).
    diff: bool = False


@dataclass(frozen=True)
class Outcome:
    """A target's result: the measured ratio and whether it met the bound (None: not run)."""

    target: Target
    ratio: Optional[float]
    met: Optional[bool]

    def __str__(self) -> str:
        if self.ratio is None:
            return f"{self.target.text}: n/a"
        unit = self.target.unit
        value = f"{self.ratio:.2f}x" if unit == "x" else f"{self.ratio:.1f} {unit}"
        return f"{self.target.text}: {value} {'met' if self.met else 'NOT met'}"


_O, _F, _N = one_to_one.NAME, fan_out.NAME, no_subscriber.NAME
_RP = routing.PATTERN
_T100K = event_types.name(100_000)
_P, _T1, _B = one_thread.NAME, one_to_one_threads.NAME, emit_batch.NAME
_RB_BLOCK = one_to_one_threads.ring_label("block")
_RB_MANY = one_to_one_threads.ring_label("block", many=True)
_R, _M, _L = xproc_records, xproc_messages, xproc_latency
_XR, _XM, _XL = _R.NAME, _M.NAME, _L.NAME
_W = workers
_MT = metrics
_ME, _MH, _MR = _MT.EMIT, _MT.HANDOFF, _MT.RECORD
_WC, _WT = _W.CPU, _W.TINY

def _pipeline_targets() -> tuple[Target, ...]:
    """Issue 15, per dataset and chunk size: ringbus (names mapped by it) ahead of each peer
    on the peer's own input kind, and >= 3x pandas groupby iteration (from a DataFrame, and
    at its best input kind, " *"); names to ids >= 3x Series.map(dict), >= polars
    cast(Enum). "x peer" = the peer's ns/row over ringbus's."""
    p = pipelines
    out = []
    for case in p.NAMES[:-1]:
        out += [
            Target(case, p.RB_PANDAS, ">= 3x pandas groupby", (case, p.PANDAS),
                   (case, p.RB_PANDAS), ">=", 3.0),
            Target(case, p.RB_ARROW, ">= 1x Arrow sort", (case, p.ARROW), (case, p.RB_ARROW),
                   ">=", 1.0),
            Target(case, p.RB_POLARS, ">= 1x polars partition_by", (case, p.POLARS),
                   (case, p.RB_POLARS), ">=", 1.0),
            Target(case, p.RB_NUMPY, ">= 1x numpy argsort", (case, p.NUMPY),
                   (case, p.RB_NUMPY), ">=", 1.0),
            Target(case, p.PANDAS, "ringbus (best) >= 3x this", (case, p.PANDAS),
                   (case, "ringbus *"), ">=", 3.0),
        ]
    n = p.NAMES_CASE
    out += [
        Target(n, p.SERIES_MAP, ">= 3x ringbus (pandas)", (n, p.SERIES_MAP),
               (n, p.MAP_PANDAS), ">=", 3.0),
        Target(n, p.POLARS_ENUM, ">= 1x ringbus (polars)", (n, p.POLARS_ENUM),
               (n, p.MAP_POLARS), ">=", 1.0),
    ]
    return tuple(out)


_PIPELINE_TARGETS = _pipeline_targets()

TARGETS: tuple[Target, ...] = (
    Target(_O, RINGBUS, "<= 1.5x floor", (_O, RINGBUS), (_O, FLOOR), "<=", 1.5),
    Target(_O, DICT, "ringbus <= 0.6x this", (_O, RINGBUS), (_O, DICT), "<=", 0.6),
    Target(_O, BLINKER, ">= 10x ringbus", (_O, BLINKER), (_O, RINGBUS), ">=", 10.0),
    Target(_O, PYEE, ">= 10x ringbus", (_O, PYEE), (_O, RINGBUS), ">=", 10.0),
    Target(_O, PSYGNAL_EMIT, ">= 10x ringbus", (_O, PSYGNAL_EMIT), (_O, RINGBUS), ">=", 10.0),
    Target(_O, PSYGNAL_EMIT_FAST, ">= 2.5x ringbus", (_O, PSYGNAL_EMIT_FAST), (_O, RINGBUS),
           ">=", 2.5),
    Target(_F, RINGBUS, "<= 1.2x floor", (_F, RINGBUS), (_F, FLOOR), "<=", 1.2),
    # Issue 13: a pattern costs what an exact subscription costs (resolved at registration);
    # >= 30x pymitter's wildcard emit on the same two listeners.
    Target(_RP, routing.WITH_PATTERN, "<= 1.1x 2 exact (same within noise)",
           (_RP, routing.WITH_PATTERN), (_RP, routing.EXACT2), "<=", 1.1),
    Target(_RP, routing.PYMITTER, ">= 30x ringbus exact + pattern", (_RP, routing.PYMITTER),
           (_RP, routing.WITH_PATTERN), ">=", 30.0),
    # Issue 13: an order in a control lane waits for the market-data batch in hand, not
    # for a full ring of market data: p99 <= 1/10 of the one-ring row's.
    Target(lanes.LATENCY, lanes.LANE, "p99 <= 0.1x one ring's",
           (lanes.LATENCY, lanes.LANE + " p99"), (lanes.LATENCY, lanes.ONE_RING + " p99"),
           "<=", 0.1),
    Target(_T100K, RINGBUS, "<= 1.2x 1 type", (_T100K, RINGBUS), (_O, RINGBUS), "<=", 1.2),
    Target(_N, DICT, "ringbus <= 0.5x this", (_N, RINGBUS), (_N, DICT), "<=", 0.5),
    # Issue 3. Throughput targets read "x SimpleQueue's events/s": SimpleQueue's ns/event
    # over ringbus's.
    Target(_P, one_thread.RINGBUS, ">= 2x SimpleQueue events/s", (_P, SIMPLEQUEUE),
           (_P, one_thread.RINGBUS), ">=", 2.0),
    Target(_T1, _RB_BLOCK, ">= 1.5x SimpleQueue events/s", (_T1, SIMPLEQUEUE),
           (_T1, _RB_BLOCK), ">=", 1.5),
    Target(_T1, _RB_MANY, ">= 3x SimpleQueue events/s", (_T1, SIMPLEQUEUE),
           (_T1, _RB_MANY), ">=", 3.0),
    # Issue 4.
    Target(_B, emit_batch.RINGBUS, "<= 10 ns/row", (_B, emit_batch.RINGBUS), None, "<=", 10.0,
           unit="ns/row"),
    Target(_B, emit_batch.ARGSORT, ">= 3x ringbus", (_B, emit_batch.ARGSORT),
           (_B, emit_batch.RINGBUS), ">=", 3.0),
    # Issue 10: across processes. "x peer" = the peer's ns/message over ringbus's.
    Target(_XR, _R.PUBLISH, ">= 3x pure-Python ring per record", (_XR, _R.PY_RING),
           (_XR, _R.PUBLISH), ">=", 3.0),
    Target(_XR, _R.MANY, ">= the numpy-block Python ring", (_XR, _R.PY_BLOCKS),
           (_XR, _R.MANY), ">=", 1.0),
    Target(_XR, _R.MANY, ">= 0.8x in-process publish_many", (_XR, _R.MANY_THREAD),
           (_XR, _R.MANY), ">=", 0.8),
    Target(_XR, _R.NOGIL, ">= 0.8x the same producer in-process", (_XR, _R.NOGIL_THREAD),
           (_XR, _R.NOGIL), ">=", 0.8),
    Target(_XM, _M.BYTES, ">= 10x faster-fifo put_many", (_XM, _M.FF_MANY), (_XM, _M.BYTES),
           ">=", 10.0),
    Target(_XM, _M.PICKLE, ">= 5x mp.Queue", (_XM, _M.QUEUE), (_XM, _M.PICKLE), ">=", 5.0),
    Target(_XL, _L.ring_label("spin"), "p50 <= 5 µs", (_XL, _L.ring_label("spin") + " p50"),
           None, "<=", 5.0, unit="µs"),
    Target(_XL, _L.ring_label("yield"), "p50 <= 5 µs", (_XL, _L.ring_label("yield") + " p50"),
           None, "<=", 5.0, unit="µs"),
    Target(_XL, _L.ring_label("block"), "p50 <= 15 µs",
           (_XL, _L.ring_label("block") + " p50"), None, "<=", 15.0, unit="µs"),
    # Issue 11: worker processes. "x peer" = the peer's ns/item over ringbus's.
    Target(_WC, _W.WORKERS, ">= 1.7x in-process", (_WC, _W.IN_PROCESS), (_WC, _W.WORKERS),
           ">=", 1.7),
    Target(_WC, _W.WORKERS, ">= 0.95x Pool.imap (best)", (_WC, _W.POOL + " *"),
           (_WC, _W.WORKERS), ">=", 0.95),
    Target(_WT, _W.WORKERS, ">= 1x Pool.imap (best)", (_WT, _W.POOL + " *"), (_WT, _W.WORKERS),
           ">=", 1.0),
    Target(_WT, _W.WORKERS, ">= 3x ProcessPoolExecutor.map (best)", (_WT, _W.EXECUTOR + " *"),
           (_WT, _W.WORKERS), ">=", 3.0),
    Target(_WT, _W.BATCHES, ">= 5x Pool.imap (best)", (_WT, _W.POOL + " *"), (_WT, _W.BATCHES),
           ">=", 5.0),
    # Issue 14: metrics. "adds" = the metered row's ns/event less the same row off.
    Target(_ME, _MT.METERED, "adds <= 30 ns per handler call", (_ME, _MT.METERED),
           (_ME, RINGBUS), "<=", 30.0, unit="ns", diff=True),
    Target(_MH, _MT.METERED, "adds <= 30 ns per handler call", (_MH, _MT.METERED),
           (_MH, RINGBUS), "<=", 30.0, unit="ns", diff=True),
    Target(_MR, _MT.C_RECORD, "<= 5 ns per value recorded", (_MR, _MT.C_RECORD),
           (_MR, _MT.C_MAKE), "<=", 5.0, unit="ns", diff=True),
    # Issue 12: bridges. "x peer" = the peer's ns/message over ringbus's.
    Target(bridges.NATS_OUT, bridges.RB_NATS_OUT, ">= 3x nats-py publish_async",
           (bridges.NATS_OUT, bridges.JS_ASYNC), (bridges.NATS_OUT, bridges.RB_NATS_OUT),
           ">=", 3.0),
    Target(bridges.REDIS_OUT, bridges.RB_REDIS_OUT, ">= 1.5x redis-py pipelined XADD",
           (bridges.REDIS_OUT, bridges.XADD_PIPE), (bridges.REDIS_OUT, bridges.RB_REDIS_OUT),
           ">=", 1.5),
    Target(bridges.NATS_IN, bridges.RB_NATS_IN, ">= 3x nats-py fetch(500) + ack each",
           (bridges.NATS_IN, bridges.PULL_ACK), (bridges.NATS_IN, bridges.RB_NATS_IN),
           ">=", 3.0),
    *_PIPELINE_TARGETS,
    # Issue 4, RecordRing (to come with RecordRing's own case, see benchmarks/__init__.py):
    # nogil C-API producer -> batch consumer >= 20M records/s (<= 50 ns/record, absolute)
    # and >= 5x the object ring's per-event events/s.
)


def evaluate(medians: Mapping[Key, Optional[float]],
             targets: tuple[Target, ...] = TARGETS) -> list[Outcome]:
    """The outcome of every target whose case was in the run."""
    cases = {case for case, _ in medians}
    out = []
    for t in targets:
        if t.case not in cases:
            continue
        num = _value(medians, t.num)
        den = 1.0 if t.den is None else _value(medians, t.den)
        if num is None or den is None or den <= 0:
            out.append(Outcome(t, None, None))
        else:
            ratio = num - den if t.diff else num / den
            out.append(Outcome(t, ratio, _OPS[t.op](ratio, t.bound)))
    return out


def _value(medians: Mapping[Key, Optional[float]], key: Key) -> Optional[float]:
    """The median of row ``key``; for a label ending in " *", the lowest of its rows."""
    case, label = key
    if not label.endswith(" *"):
        return medians.get(key)
    prefix = label[:-1]
    found = [v for (c, lab), v in medians.items()
             if c == case and lab.startswith(prefix) and v is not None]
    return min(found) if found else None
