"""``metrics_emit``, ``metrics_handoff``, ``histogram_record``: what metrics cost (issue 14).

- ``metrics_emit``: ``emit`` to one trivial handler with the bus's metrics off and on (the
  meter: one TSC read per handler boundary and one histogram record per call).
- ``metrics_handoff``: ``publish`` on this thread, the bus's consumer thread dispatching to
  one handler, off and on; timed until the consumer dispatched them all. A third row is on
  without the ring's publish stamps (the queueing delay's clock read at publish and record
  at dispatch): what the per-handler meter costs alone.
- ``histogram_record``: recording one value into ringbus's C histogram from C (a loop of
  ``n`` pseudo-random values, against the same loop only making them), and from Python
  (``Histogram.record(v)``), against hdrhistogram's ``record_value(v)`` (PyPI
  ``hdrhistogram``, the HdrHistogram port for Python).
"""
from __future__ import annotations

import importlib
from typing import Callable, Optional

from ringbus.benchmarks.measure import (
    Case, CheckedRun, Contender, Failed, compile_loop, timed_publish,
)
from ringbus.benchmarks.peers import FLOOR, RINGBUS, make_handler
from ringbus.benchmarks.topology import Settings

__all__ = ["EMIT", "HANDOFF", "RECORD", "NAMES", "METERED", "NO_STAMPS", "C_RECORD", "C_MAKE",
           "PY_RECORD", "HDR", "build"]

EMIT, HANDOFF, RECORD = "metrics_emit", "metrics_handoff", "histogram_record"
NAMES = (EMIT, HANDOFF, RECORD)
METERED = "ringbus metrics on"
NO_STAMPS = "ringbus metrics on, no publish stamps"
C_RECORD = "ringbus Histogram C record"
C_MAKE = "C loop making the values"
PY_RECORD = "ringbus Histogram.record"
HDR = "hdrhistogram record_value"


def _bus(metrics: bool):
    import ringbus
    bus = ringbus.Bus(metrics=metrics)
    t = bus.event_type("bench.metrics")
    h = make_handler()
    bus.subscribe(t, h)
    return bus, t


def _emit_case(settings: Settings) -> Case:
    xs = list(range(settings.events))
    h = make_handler()
    rows = [Contender(FLOOR, "direct call h(x)",
                      compile_loop("h(x)", "x", "xs", {"h": h, "xs": xs}, FLOOR),
                      settings.events)]
    for label, shown, on in ((RINGBUS, "ringbus Bus.emit, metrics off", False),
                             (METERED, "ringbus Bus.emit, metrics on", True)):
        bus, t = _bus(on)
        rows.append(Contender(label, shown,
                              compile_loop("emit(t, x)", "x", "xs",
                                           {"emit": bus.emit, "t": t, "xs": xs}, label),
                              settings.events, keep=bus))
    return Case(EMIT, "emit to 1 trivial handler, the bus's metrics off and on", rows)


class _Handoff(CheckedRun):
    """``events`` publishes on this thread to the bus's consumer thread; timed until the
    consumer dispatched them all."""

    def __init__(self, metrics: bool, events: int, stamps: bool = True):
        self.bus, self.t = _bus(metrics)
        if not stamps:
            self.bus.ring._set_stamping(False)      # not API: the meters alone
        self.events = events
        self.dispatched = 0

    def run(self) -> int:
        bus = self.bus
        elapsed, self.dispatched = timed_publish(bus, self.t, self.events,
                                                 lambda: bus.stats()["dispatched"])
        return elapsed

    def check(self) -> None:
        if self.dispatched != self.events:
            raise Failed(f"{self.dispatched} of {self.events} events dispatched")


def _handoff_case(settings: Settings) -> Case:
    n = settings.thread_events
    shown = "ringbus publish -> consumer thread, metrics "
    rows = [Contender(label, shown + what, _Handoff(on, n, stamps), n)
            for label, what, on, stamps in ((RINGBUS, "off", False, False),
                                            (METERED, "on", True, True),
                                            (NO_STAMPS, "on, no publish stamps", True, False))]
    return Case(HANDOFF, "publish to the consumer thread, 1 handler, metrics off and on", rows,
                rounds=settings.thread_rounds)


def _c_loop(record: bool, n: int) -> Callable[[], int]:
    from ringbus._histogram import Histogram, _record_loop
    h = Histogram()
    return lambda: _record_loop(h, n, record)


def _record_case(settings: Settings) -> Case:
    from ringbus import Histogram
    n = settings.events
    values = [20 + (i * 7919) % 1_000_000 for i in range(n)]
    h = Histogram()
    rows = [Contender(C_MAKE, "C loop making 20 ns - 1 ms values (no record)",
                      _c_loop(False, n * 10), n * 10),
            Contender(C_RECORD, "ringbus Histogram, rb_hist_record from C",
                      _c_loop(True, n * 10), n * 10),
            Contender(PY_RECORD, "ringbus Histogram.record(v) from Python",
                      compile_loop("record(v)", "v", "vs", {"record": h.record, "vs": values},
                                   PY_RECORD), n)]
    try:
        hdrh = importlib.import_module("hdrh.histogram")
    except ImportError:
        rows.append(Contender(HDR, "hdrhistogram HdrHistogram.record_value(v)",
                              status="not installed"))
    else:
        peer = hdrh.HdrHistogram(1, 3_600_000_000_000, 2)
        rows.append(Contender(HDR, "hdrhistogram HdrHistogram.record_value(v)",
                              compile_loop("record(v)", "v", "vs",
                                           {"record": peer.record_value, "vs": values}, HDR),
                              n, keep=peer))
    return Case(RECORD, "record one latency value into a histogram", rows)


def build(name: str, settings: Settings,
          progress: Optional[Callable[[str], None]] = None) -> Case:
    """Case ``name`` (one of :data:`NAMES`)."""
    if name == EMIT:
        return _emit_case(settings)
    if name == HANDOFF:
        return _handoff_case(settings)
    if name == RECORD:
        return _record_case(settings)
    raise ValueError(f"unknown metrics case {name!r}")
