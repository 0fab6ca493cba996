"""The OpenTelemetry instruments (issue 14, optional), read with the SDK's in-memory
reader."""
import time

import pytest

import ringbus

sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
export = pytest.importorskip("opentelemetry.sdk.metrics.export")
from ringbus.metrics import otel  # noqa: E402


def _points(reader):
    out = {}
    data = reader.get_metrics_data()
    if data is None:                    # nothing observed at all
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    out[(metric.name, tuple(sorted(p.attributes.items())))] = p.value
    return out


def _busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_instruments_match_the_bus():
    reader = export.InMemoryMetricReader()
    provider = sdk_metrics.MeterProvider(metric_readers=[reader])
    bus = ringbus.Bus(metrics=True, on_error=lambda *a: None)
    tick = bus.event_type("md.tick")
    bus.subscribe(tick, lambda x: _busy(200e-6), name="slow")
    bus.subscribe(tick, lambda x: 1 / (x % 5), name="risk")
    for i in range(20):
        bus.emit(tick, i)
    for i in range(6):
        bus.publish(tick, i + 1)
    time.sleep(0.005)
    otel.register(bus, "md", meter_provider=provider)
    got = _points(reader)
    stage = (("bus", "md"), ("stage", "dispatch"))
    assert got[("ringbus.ring.lag.events", stage)] == 6
    assert got[("ringbus.ring.lag.age", stage)] >= 0.005 * (1 - 1 / 64)
    assert got[("ringbus.ring.fill", (("bus", "md"),))] == 6
    bus.drain()
    got = _points(reader)                # a second collection reads the bus afresh

    def sub(name, **more):
        return tuple(sorted({"bus": "md", "event": "md.tick", "subscription": name,
                             **more}.items()))
    assert got[("ringbus.handler.calls", sub("slow"))] == 26
    assert got[("ringbus.handler.errors", sub("risk"))] == 4 + 1      # 0, 5, 10, 15; 5
    assert got[("ringbus.handler.errors", sub("slow"))] == 0
    p50 = got[("ringbus.handler.duration", sub("slow", quantile="0.5"))]
    top = got[("ringbus.handler.duration", sub("slow", quantile="1"))]
    assert 200e-6 * (1 - 1 / 64) <= p50 <= top
    delay = (("bus", "md"), ("event", "md.tick"), ("quantile", "1"))
    assert got[("ringbus.publish_to_handle.delay", delay)] >= 0.005 * (1 - 1 / 64)
    for key, value in (("emitted", 20), ("published", 6), ("dispatched", 6), ("dropped", 0)):
        assert got[(f"ringbus.{key}", (("bus", "md"),))] == value
    assert got[("ringbus.ring.lag.events", stage)] == 0
    assert ("ringbus.ring.lag.age", stage) not in got
    walls = [name for name, _ in got if name == "ringbus.handler.wall_duration"]
    assert walls == []                  # no async handler: no wall times
    bus.close()
    assert not any(name.startswith("ringbus.") for name, _ in _points(reader))
    provider.shutdown()


def test_a_bad_name_is_refused():
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        otel.register(ringbus.Bus(), "")
