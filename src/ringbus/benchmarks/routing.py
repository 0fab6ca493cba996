"""``pattern_emit``, ``guard_stop``: what trading-grade routing costs per event (issue 13).

- ``pattern_emit``: ``emit`` of one event type with one exact and one topic-pattern handler
  (``"md.*"``), against the same type with two exact handlers: a pattern is resolved at
  registration into the integer table, so both rows should be the same within noise. Peers
  on the same pattern work: pymitter's wildcard ``emit("md.tick", x)`` with ``"md.*"`` and
  ``"md.tick"`` listeners (PyPI ``pymitter``), and nautilus_trader's ``MessageBus.publish``
  with the same two subscriptions, when it is installed.
- ``guard_stop``: ``emit`` to ten handlers, against ten handlers whose first returns
  ``ringbus.STOP`` (a risk check vetoing an order): what a guard saves.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

from ringbus.benchmarks.measure import Case, Contender, compile_loop
from ringbus.benchmarks.peers import FLOOR, make_handler
from ringbus.benchmarks.topology import Settings

__all__ = ["PATTERN", "GUARD", "NAMES", "EXACT2", "WITH_PATTERN", "PYMITTER", "NAUTILUS",
           "TEN", "STOPPED", "build"]

PATTERN, GUARD = "pattern_emit", "guard_stop"
NAMES = (PATTERN, GUARD)
EXACT2 = "ringbus 2 exact"
WITH_PATTERN = "ringbus exact + pattern"
PYMITTER = "pymitter"
NAUTILUS = "nautilus_trader"
TEN = "ringbus 10 handlers"
STOPPED = "ringbus guard stops 1 of 10"


def _emit_row(label: str, shown: str, bus: Any, t: int, xs: list, events: int) -> Contender:
    return Contender(label, shown, compile_loop("emit(t, x)", "x", "xs",
                                                {"emit": bus.emit, "t": t, "xs": xs}, label),
                     events, keep=bus)


def _pymitter_row(xs: list, events: int) -> Contender:
    try:
        pymitter = importlib.import_module("pymitter")
    except ImportError:
        return Contender(PYMITTER, "pymitter EventEmitter.emit (wildcard)", None, events,
                         status="not installed (pip install pymitter)")
    ee = pymitter.EventEmitter(wildcard=True, delimiter=".")
    ee.on("md.tick", make_handler())
    ee.on("md.*", make_handler())
    return Contender(PYMITTER, "pymitter EventEmitter.emit (wildcard)",
                     compile_loop("emit(k, x)", "x", "xs",
                                  {"emit": ee.emit, "k": "md.tick", "xs": xs}, PYMITTER),
                     events, keep=ee)


def _nautilus_row(xs: list, events: int) -> Contender:
    shown = "nautilus_trader MessageBus.publish"
    try:
        importlib.import_module("nautilus_trader")
        component = importlib.import_module("nautilus_trader.common.component")
        identifiers = importlib.import_module("nautilus_trader.model.identifiers")
    except ImportError:
        return Contender(NAUTILUS, shown, None, events,
                         status="not installed (pip install nautilus_trader)")
    bus = component.MessageBus(trader_id=identifiers.TraderId("BENCH-001"),
                               clock=component.TestClock())
    bus.subscribe(topic="md.tick", handler=make_handler())
    bus.subscribe(topic="md.*", handler=make_handler())
    return Contender(NAUTILUS, shown,
                     compile_loop("publish(k, x)", "x", "xs",
                                  {"publish": bus.publish, "k": "md.tick", "xs": xs}, NAUTILUS),
                     events, keep=bus)


def _pattern_case(settings: Settings) -> Case:
    import ringbus
    xs = list(range(settings.events))
    h1, h2 = make_handler(), make_handler()
    rows = [Contender(FLOOR, "2 direct calls",
                      compile_loop("h1(x); h2(x)", "x", "xs", {"h1": h1, "h2": h2, "xs": xs},
                                   FLOOR), settings.events)]
    exact = ringbus.Bus()
    t = exact.event_type("md.tick")
    exact.subscribe(t, make_handler())
    exact.subscribe(t, make_handler())
    rows.append(_emit_row(EXACT2, "ringbus Bus.emit, 2 exact handlers", exact, t, xs,
                          settings.events))
    mixed = ringbus.Bus()
    t = mixed.event_type("md.tick")
    mixed.subscribe(t, make_handler())
    mixed.subscribe("md.*", make_handler())
    rows.append(_emit_row(WITH_PATTERN, "ringbus Bus.emit, exact + 'md.*'", mixed, t, xs,
                          settings.events))
    rows.append(_pymitter_row(xs, settings.events))
    rows.append(_nautilus_row(xs, settings.events))
    return Case(PATTERN, "emit to 1 exact + 1 pattern handler vs 2 exact", rows)


def _guard_case(settings: Settings) -> Case:
    import ringbus
    xs = list(range(settings.fan_out_events))
    rows = []
    for label, shown, guard in ((TEN, "ringbus Bus.emit, 10 handlers", False),
                                (STOPPED, "ringbus Bus.emit, the 1st of 10 returns STOP",
                                 True)):
        bus = ringbus.Bus()
        t = bus.event_type("order.new")
        if guard:
            def risk(order, STOP=ringbus.STOP):     # as trivial as the handlers after it
                return STOP
            bus.subscribe(t, risk)
        for _ in range(10 - guard):
            bus.subscribe(t, make_handler())
        rows.append(_emit_row(label, shown, bus, t, xs, settings.fan_out_events))
    return Case(GUARD, "a guard that stops after 1 of 10 handlers vs 10 handlers", rows)


def build(name: str, settings: Settings,
          progress: Optional[Callable[[str], None]] = None) -> Case:
    """The case ``name`` (one of :data:`NAMES`)."""
    if name == PATTERN:
        return _pattern_case(settings)
    if name == GUARD:
        return _guard_case(settings)
    raise ValueError(f"unknown routing case {name!r}")
