"""The Prometheus collector (issue 14), scraped from a real prometheus_client HTTP endpoint
on loopback and parsed from the exposition text: per-subscription calls, errors and call
time histograms, the bus's counters and ring gauges, with the documented names and labels."""
import time
import urllib.request

import pytest

import ringbus

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from ringbus.metrics import prometheus  # noqa: E402


@pytest.fixture
def scrape():
    servers = []

    def serve(registry):
        server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1",
                                                             registry=registry)
        servers.append((server, thread))
        url = f"http://127.0.0.1:{server.server_port}/metrics"

        def get():
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(text)
                    for s in family.samples}
        return get
    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _slow(x):
    end = time.perf_counter() + 300e-6
    while time.perf_counter() < end:
        pass


def test_scraped_series_match_the_bus(scrape):
    bus = ringbus.Bus(metrics=True, on_error=lambda *a: None)
    tick = bus.event_type("md.tick")
    bus.subscribe(tick, _slow, name="slow")
    bus.subscribe(tick, lambda x: 1 / (x % 5), name="risk")
    for i in range(50):
        bus.emit(tick, i)
    with bus.running():
        for i in range(7):
            bus.publish(tick, i + 1)
    registry = prometheus_client.CollectorRegistry()
    prometheus.register(bus, "md", registry)
    got = scrape(registry)()

    def series(name, sub=None, **labels):
        labels = {"bus": "md", **labels}
        if sub is not None:
            labels.update(event="md.tick", subscription=sub)
        return got[(name, tuple(sorted(labels.items())))]

    assert series("ringbus_handler_calls_total", "slow") == 57
    assert series("ringbus_handler_calls_total", "risk") == 57
    assert series("ringbus_handler_errors_total", "risk") == 11     # 0, 5, ..., 45 and 5
    assert series("ringbus_handler_errors_total", "slow") == 0
    assert series("ringbus_handler_seconds_count", "slow") == 57
    assert series("ringbus_handler_seconds_sum", "slow") >= 57 * 300e-6 * 0.95
    # Every slow call took >= 300 µs: none under the 250 µs bound, all under +Inf.
    assert series("ringbus_handler_seconds_bucket", "slow", le="0.00025") == 0
    assert series("ringbus_handler_seconds_bucket", "slow", le="+Inf") == 57
    counts = [series("ringbus_handler_seconds_bucket", "risk", le=repr(b))
              for b in prometheus.BOUNDS]
    assert counts == sorted(counts) and counts[-1] <= 57
    assert series("ringbus_emitted_total") == 50
    assert series("ringbus_published_total") == 7
    assert series("ringbus_dispatched_total") == 7
    assert series("ringbus_handler_calls_all_total") == 114
    assert series("ringbus_handler_errors_all_total") == 11
    assert series("ringbus_ring_fill") == 0
    assert series("ringbus_ring_capacity") == 65536
    # The 7 published events' queueing delay, per event type; the ring caught up.
    assert series("ringbus_publish_to_handle_seconds_count", event="md.tick") == 7
    assert series("ringbus_publish_to_handle_seconds_bucket", event="md.tick", le="+Inf") == 7
    assert series("ringbus_ring_lag_events", stage="dispatch") == 0
    assert ("ringbus_ring_lag_seconds", (("bus", "md"), ("stage", "dispatch"))) not in got


def test_lag_and_async_wall_time_are_scraped(scrape):
    import asyncio
    bus = ringbus.Bus(metrics=True)
    t = bus.event_type("order")

    async def gateway(x):
        await asyncio.sleep(0.002)
    bus.subscribe(t, gateway, name="gw")
    bus.emit(t, 1)                  # no loop running: to completion on this thread
    bus.publish(t, 2)
    time.sleep(0.01)
    registry = prometheus_client.CollectorRegistry()
    prometheus.register(bus, "oms", registry)
    got = scrape(registry)()
    labels = (("bus", "oms"), ("event", "order"), ("subscription", "gw"))
    assert got[("ringbus_handler_wall_seconds_count", labels)] == 1
    assert got[("ringbus_handler_wall_seconds_sum", labels)] >= 0.002 * (1 - 1 / 64)
    stage = (("bus", "oms"), ("stage", "dispatch"))
    assert got[("ringbus_ring_lag_events", stage)] == 1
    assert got[("ringbus_ring_lag_seconds", stage)] >= 0.01 * (1 - 1 / 64)
    bus.drain()


def test_a_bus_without_metrics_still_exports_its_counters(scrape):
    bus = ringbus.Bus()
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    bus.emit(t, 1)
    registry = prometheus_client.CollectorRegistry()
    collector = prometheus.register(bus, "plain", registry)
    got = scrape(registry)()
    assert got[("ringbus_emitted_total", (("bus", "plain"),))] == 1
    assert not any(name.startswith("ringbus_handler_seconds") for name, _ in got)
    registry.unregister(collector)


def test_a_bad_label_is_refused():
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        prometheus.BusCollector(ringbus.Bus(), "")
