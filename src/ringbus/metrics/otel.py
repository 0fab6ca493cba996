"""OpenTelemetry: observable instruments over a bus (``pip install 'ringbus[otel]'``).

    from opentelemetry import metrics
    from ringbus.metrics import otel
    otel.register(bus, name="md")          # the global MeterProvider, or meter_provider=...

Nothing is kept between collections: each reads ``bus.metrics()`` once, through a callback
of the instruments below (all asynchronous, so the bus's hot path never calls into
OpenTelemetry). OpenTelemetry's API has no asynchronous histogram, so ringbus's histograms
are exported as their percentiles: gauges with a ``quantile`` attribute ("0.5", "0.9",
"0.99", "0.999", "1" for the maximum), in seconds.

- ``ringbus.handler.calls``, ``ringbus.handler.errors`` (counters) and
  ``ringbus.handler.duration`` (gauge per quantile) per metered subscription; attributes
  ``bus``, ``event``, ``subscription``; ``ringbus.handler.wall_duration`` for async handlers;
- ``ringbus.publish_to_handle.delay`` (gauge per quantile) per event type (``bus``, ``event``);
- ``ringbus.emitted``, ``ringbus.published``, ``ringbus.dispatched``, ``ringbus.dropped``
  (counters) and ``ringbus.ring.fill``, ``ringbus.ring.lag.events``, ``ringbus.ring.lag.age``
  (gauges; ``lag`` per ``stage``), attribute ``bus``.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable, Iterator, Optional

__all__ = ["register", "QUANTILES"]

#: (attribute value, key of a ringbus histogram summary) of the exported quantiles.
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p99_9"),
             ("1", "max"))


class _Reader:
    """One ``bus.metrics()`` per collection, shared by every instrument's callback."""

    def __init__(self, bus: Any, name: str):
        self._bus = weakref.ref(bus)
        self.name = name
        self._snap: Optional[dict] = None
        self._seen: set = set()

    def snapshot(self, instrument: str) -> Optional[dict]:
        # A collection calls each callback once: the first of them reads afresh.
        if self._snap is None or instrument in self._seen:
            bus = self._bus()
            self._snap = None if bus is None or bus.closed else bus.metrics()
            self._seen = set()
        self._seen.add(instrument)
        return self._snap


def _event(fields: dict) -> str:
    return fields["event_name"] or f"#{fields['event_type']}"


def register(bus: Any, name: str = "bus", meter_provider: Optional[Any] = None) -> Any:
    """Create ringbus's asynchronous instruments for ``bus`` on a Meter of
    ``meter_provider`` (the global one when None) and return that Meter. The bus is held
    weakly: once it is closed or collected the instruments report nothing."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str (the 'bus' attribute), got {name!r}")
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import Observation

    provider = meter_provider or otel_metrics.get_meter_provider()
    meter = provider.get_meter("ringbus")
    reader = _Reader(bus, name)

    def observe(instrument: str, rows: Callable[[dict], Iterator[tuple[float, dict]]]):
        def callback(options: Any) -> list:
            snap = reader.snapshot(instrument)
            if snap is None:
                return []
            return [Observation(value, {"bus": name, **attrs}) for value, attrs in rows(snap)]
        return [callback]

    def handlers(key: str) -> Callable[[dict], Iterator[tuple[float, dict]]]:
        def rows(snap: dict) -> Iterator[tuple[float, dict]]:
            for h in snap["handlers"]:
                yield h[key], {"event": _event(h), "subscription": h["subscription"]}
        return rows

    def quantiles(items: str, hist: str, labels: Callable[[dict], dict]):
        def rows(snap: dict) -> Iterator[tuple[float, dict]]:
            for item in snap[items]:
                summary = item[hist]
                if summary is None or not summary["count"]:
                    continue
                for q, key in QUANTILES:
                    yield summary[key] / 1e9, {**labels(item), "quantile": q}
        return rows

    def sub_labels(h: dict) -> dict:
        return {"event": _event(h), "subscription": h["subscription"]}

    def counter(key: str) -> Callable[[dict], Iterator[tuple[float, dict]]]:
        return lambda snap: iter([(snap["counters"][key], {})])

    def lag(key: str) -> Callable[[dict], Iterator[tuple[float, dict]]]:
        def rows(snap: dict) -> Iterator[tuple[float, dict]]:
            for stage, values in snap["ring"]["stages_lag"].items():
                if values[key] is not None:
                    yield values[key], {"stage": stage}
        return rows

    meter.create_observable_counter(
        "ringbus.handler.calls", observe("calls", handlers("calls")), unit="{call}",
        description="Calls of a subscription's handler")
    meter.create_observable_counter(
        "ringbus.handler.errors", observe("errors", handlers("errors")), unit="{call}",
        description="Calls of a subscription's handler that raised")
    meter.create_observable_gauge(
        "ringbus.handler.duration", observe("duration", quantiles("handlers", "time_ns",
                                                                  sub_labels)),
        unit="s", description="Time of one call of a subscription's handler, by quantile")
    meter.create_observable_gauge(
        "ringbus.handler.wall_duration", observe("wall", quantiles("handlers", "wall_ns",
                                                                   sub_labels)),
        unit="s", description="Time of an async handler's coroutine from start to end, "
                              "by quantile")
    meter.create_observable_gauge(
        "ringbus.publish_to_handle.delay",
        observe("delay", quantiles("publish_to_handle", "delay_ns",
                                   lambda d: {"event": _event(d)})),
        unit="s", description="Delay from an event's publish to its dispatch, by quantile")
    for key, help_text in (("emitted", "Events emitted inline"),
                           ("published", "Events published into the ring"),
                           ("dispatched", "Ring events dispatched by consumers"),
                           ("dropped", "Events dropped by the overflow policy")):
        meter.create_observable_counter(f"ringbus.{key}", observe(key, counter(key)),
                                        unit="{event}", description=help_text)
    meter.create_observable_gauge(
        "ringbus.ring.fill", observe("fill", lambda snap: iter([(snap["ring"]["fill"], {})])),
        unit="{event}", description="Events queued in the bus's ring")
    meter.create_observable_gauge(
        "ringbus.ring.lag.events", observe("lag_events", lag("events")), unit="{event}",
        description="Events a stage has not taken yet")
    meter.create_observable_gauge(
        "ringbus.ring.lag.age", observe("lag_age", lag("age_seconds")), unit="s",
        description="Age of the oldest event a stage has not taken yet")
    return meter
