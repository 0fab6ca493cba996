"""Prometheus: a collector for ``prometheus_client`` (``pip install 'ringbus[prometheus]'``).

    from ringbus.metrics import prometheus
    prometheus.register(bus, name="md")          # into prometheus_client's default registry
    prometheus_client.start_http_server(9100, addr="127.0.0.1")

Each scrape reads the bus as it is (nothing is kept between scrapes):

- ``ringbus_handler_calls_total``, ``ringbus_handler_errors_total`` and the histogram
  ``ringbus_handler_seconds`` per metered subscription, labelled ``bus``, ``event`` (the
  event type's name, or ``#id``) and ``subscription`` (its name, or ``#seq:handler``);
  for async handlers also ``ringbus_handler_wall_seconds`` (start to end, awaits included);
- the histogram ``ringbus_publish_to_handle_seconds`` per event type (labels ``bus``,
  ``event``): queueing delay from publish to dispatch;
- the gauges ``ringbus_ring_lag_events`` and ``ringbus_ring_lag_seconds`` (the oldest
  pending event's age; absent when unknown), labelled ``bus`` and ``stage``;
- the bus's counters ``ringbus_emitted_total``, ``ringbus_published_total``,
  ``ringbus_dispatched_total``, ``ringbus_dropped_total``, ``ringbus_handler_calls_all_total``
  and ``ringbus_handler_errors_all_total``, and the gauges ``ringbus_ring_fill`` and
  ``ringbus_ring_capacity``, labelled ``bus``.

The histogram's buckets are cumulative counts at fixed bounds (``BOUNDS``, 1 µs to 10 s)
taken from the bus's log-linear histogram, exact to within one of its buckets (1/32).
"""
from __future__ import annotations

import weakref
from typing import Any, Iterator, Optional

from ringbus.metrics import delay_histograms, handler_histograms

__all__ = ["BusCollector", "register", "BOUNDS"]

#: The ``le`` bounds of ``ringbus_handler_seconds``, in seconds.
BOUNDS = (1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
          1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS_NS = [round(b * 1e9) for b in BOUNDS]


class BusCollector:
    """A ``prometheus_client`` collector of one bus (held weakly: a collected bus simply
    yields nothing)."""

    def __init__(self, bus: Any, name: str = "bus"):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str (the 'bus' label), got {name!r}")
        self._bus = weakref.ref(bus)
        self.name = name

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
        )
        bus = self._bus()
        if bus is None or bus.closed:
            return
        labels = ["bus", "event", "subscription"]
        calls = CounterMetricFamily("ringbus_handler_calls", "Calls of a subscription's "
                                    "handler", labels=labels)
        errors = CounterMetricFamily("ringbus_handler_errors", "Calls of a subscription's "
                                     "handler that raised", labels=labels)
        seconds = HistogramMetricFamily("ringbus_handler_seconds", "Time of one call of a "
                                        "subscription's handler", labels=labels)
        wall = HistogramMetricFamily("ringbus_handler_wall_seconds", "Time of an async "
                                     "handler's coroutine from start to end",
                                     labels=labels)
        for fields, hist in handler_histograms(bus):
            values = [self.name, _event(fields), fields["subscription"]]
            calls.add_metric(values, fields["calls"])
            errors.add_metric(values, fields["errors"])
            _add_histogram(seconds, values, hist)
            if fields["wall"] is not None:
                _add_histogram(wall, values, fields["wall"])
        yield calls
        yield errors
        yield seconds
        yield wall
        delay = HistogramMetricFamily("ringbus_publish_to_handle_seconds", "Delay from an "
                                      "event's publish to its dispatch", labels=["bus", "event"])
        for fields, hist in delay_histograms(bus):
            _add_histogram(delay, [self.name, _event(fields)], hist)
        yield delay
        lag_events = GaugeMetricFamily("ringbus_ring_lag_events", "Events a stage has not "
                                       "taken yet", labels=["bus", "stage"])
        lag_seconds = GaugeMetricFamily("ringbus_ring_lag_seconds", "Age of the oldest event "
                                        "a stage has not taken yet", labels=["bus", "stage"])
        for stage, (events, age) in bus.ring._lag().items():
            lag_events.add_metric([self.name, stage], events)
            if age is not None:
                lag_seconds.add_metric([self.name, stage], age)
        yield lag_events
        yield lag_seconds
        stats = bus.stats()
        for key, help_text in (("emitted", "Events emitted inline"),
                               ("published", "Events published into the ring"),
                               ("dispatched", "Ring events dispatched by consumers"),
                               ("dropped", "Events dropped by the overflow policy"),
                               ("handler_calls", "Handler calls, every subscription"),
                               ("handler_errors", "Handler calls that raised, every "
                                                  "subscription")):
            name = f"ringbus_{key}_all" if key.startswith("handler_") else f"ringbus_{key}"
            family = CounterMetricFamily(name, help_text, labels=["bus"])
            family.add_metric([self.name], stats[key])
            yield family
        for name, help_text, value in (
                ("ringbus_ring_fill", "Events queued in the bus's ring", stats["pending"]),
                ("ringbus_ring_capacity", "Slots of the bus's ring", bus.ring.capacity)):
            gauge = GaugeMetricFamily(name, help_text, labels=["bus"])
            gauge.add_metric([self.name], value)
            yield gauge
        lanes = bus.lanes
        if len(lanes) > 1:
            yield from _lane_families(self.name, lanes)

    def describe(self) -> list:
        return []               # no fixed set: the subscriptions change


def _le(bound: float) -> str:
    return repr(bound)


def _event(fields: dict) -> str:
    return fields["event_name"] or f"#{fields['event_type']}"


def _add_histogram(family: Any, values: list, hist: Any) -> None:
    """One series of ``family`` from a ringbus.Histogram of nanoseconds."""
    cumulative = hist.counts_at(_BOUNDS_NS)
    buckets = [(_le(b), float(c)) for b, c in zip(BOUNDS, cumulative)]
    buckets.append(("+Inf", float(hist.count)))
    family.add_metric(values, buckets, sum_value=hist.total / 1e9)


def register(bus: Any, name: str = "bus", registry: Optional[Any] = None) -> BusCollector:
    """Register a :class:`BusCollector` of ``bus`` (``registry``: prometheus_client's
    default ``REGISTRY`` when None) and return it; ``registry.unregister(it)`` undoes it.
    ``bus.enable_metrics()`` (or ``Bus(metrics=True)``) gives the per-handler series."""
    if registry is None:
        from prometheus_client import REGISTRY
        registry = REGISTRY
    collector = BusCollector(bus, name)
    registry.register(collector)
    return collector


def _lane_families(bus_name: str, lanes: Any) -> Any:
    """Per priority lane: its counters and fill, labelled by lane."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    rows = [(lane.name, lane.ring.stats(), lane.ring.capacity) for lane in lanes]
    for key, help_text in (("published", "Events published into the lane"),
                           ("dispatched", "Lane events dispatched by the consumer"),
                           ("dropped", "Events the lane's overflow policy dropped")):
        family = CounterMetricFamily(f"ringbus_lane_{key}", help_text, labels=["bus", "lane"])
        for name, counts, _ in rows:
            family.add_metric([bus_name, name], counts[key])
        yield family
    for key, help_text, pick in (
            ("fill", "Events queued in the lane", lambda c, cap: c["pending"]),
            ("capacity", "Slots of the lane's ring", lambda c, cap: cap)):
        gauge = GaugeMetricFamily(f"ringbus_lane_{key}", help_text, labels=["bus", "lane"])
        for name, counts, cap in rows:
            gauge.add_metric([bus_name, name], pick(counts, cap))
        yield gauge
