"""Per-subscription metrics (issue 14): off by default and free of meters, on with
Bus(metrics=True) or enable_metrics(); calls, errors and call times per subscription that
agree with the bus's own counters, under threads too; plain-data snapshots; reset."""
import json
import logging
import threading
import time

import numpy as np
import pytest

import ringbus


def _busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_off_by_default_nothing_is_metered():
    bus = ringbus.Bus()
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    bus.emit(t, 1)
    m = bus.metrics()
    assert m["enabled"] is False and m["handlers"] == []
    assert "metrics are off" in bus.metrics_report()


def test_calls_errors_and_times_per_subscription():
    bus = ringbus.Bus(metrics=True, on_error=lambda *a: None)
    t = bus.event_type("md.tick")
    bus.subscribe(t, lambda x: _busy(200e-6), name="slow")
    bus.subscribe(t, lambda x: 1 / (x % 4), name="div", after="slow")
    for i in range(40):
        bus.emit(t, i)
    slow, div = bus.metrics()["handlers"]
    assert (slow["subscription"], slow["event_name"], slow["calls"], slow["errors"]) == \
        ("slow", "md.tick", 40, 0)
    assert (div["subscription"], div["calls"], div["errors"]) == ("div", 40, 10)
    # Times are at least what the handler spent (the histogram's error and the clock's
    # calibration aside); no upper bound is asserted (a shared machine).
    assert slow["time_ns"]["count"] == 40
    assert slow["time_ns"]["min"] >= 200_000 * 0.95
    assert slow["time_ns"]["p50"] >= 200_000 * 0.95
    assert div["time_ns"]["p50"] < slow["time_ns"]["p50"]
    assert bus.stats()["handler_errors"] == 10
    json.dumps(bus.metrics())                # plain data


def test_enable_later_meters_existing_subscriptions_and_disable_keeps_the_counts():
    bus = ringbus.Bus()
    t = bus.event_type("t")
    sub = bus.subscribe(t, lambda x: None, name="h")
    bus.emit(t, 0)
    bus.enable_metrics()
    for i in range(5):
        bus.emit(t, i)
    bus.disable_metrics()
    bus.emit(t, 99)
    (h,) = bus.metrics()["handlers"]
    assert (h["subscription"], h["calls"]) == ("h", 5)
    bus.enable_metrics()
    bus.emit(t, 1)
    assert bus.metrics()["handlers"][0]["calls"] == 6
    bus.reset_metrics()
    h = bus.metrics()["handlers"][0]
    assert h["calls"] == 0 and h["time_ns"]["count"] == 0 and h["time_ns"]["p50"] is None
    sub.unsubscribe()
    assert bus.metrics()["handlers"] == []


def test_batch_handlers_are_metered_per_group():
    bus = ringbus.Bus(metrics=True)
    a, b = bus.event_type("a"), bus.event_type("b")
    got = []
    bus.subscribe_batch(a, got.append, name="rows")
    bus.subscribe(b, lambda row: None, name="each")
    bus.emit_batch(np.array([a, b, a, b, b], np.int64), np.arange(5))
    by_name = {h["subscription"]: h for h in bus.metrics()["handlers"]}
    assert by_name["rows"]["calls"] == 1 and by_name["rows"]["batch"] is True
    assert by_name["each"]["calls"] == 3


def test_per_subscription_calls_add_up_to_handler_calls_under_threads():
    bus = ringbus.Bus(metrics=True, capacity=1024)
    ts = [bus.event_type(f"t{i}") for i in range(3)]
    seen = [0, 0, 0]

    def handler(i):
        def h(x):
            seen[i] += 1
        return h
    for i, t in enumerate(ts):
        bus.subscribe(t, handler(i), name=f"h{i}")
        bus.subscribe(t, lambda x: None, name=f"n{i}")
    n = 20_000

    def produce(i):
        for k in range(n):
            bus.publish(ts[i], k)
    with bus.running():
        threads = [threading.Thread(target=produce, args=(i,)) for i in range(3)]
        for th in threads:
            th.start()
        for k in range(n // 2):
            bus.emit(ts[k % 3], k)           # this thread dispatches too
        for th in threads:
            th.join()
    m = bus.metrics()
    calls = sum(h["calls"] for h in m["handlers"])
    assert calls == m["counters"]["handler_calls"] == 2 * (3 * n + n // 2)
    assert all(h["time_ns"]["count"] == h["calls"] for h in m["handlers"])


def test_report_is_a_table_of_every_metered_subscription():
    bus = ringbus.Bus(metrics=True)
    t = bus.event_type("orders.new")
    bus.subscribe(t, lambda x: None, name="gateway")
    bus.emit(t, 1)
    report = bus.metrics_report()
    lines = report.splitlines()
    assert lines[0].split()[:4] == ["subscription", "event", "calls", "errors"]
    assert any(line.startswith("gateway") and "orders.new" in line for line in lines)
    assert lines[-1].startswith("ring: 0 of 65,536 queued")


def test_bad_metrics_argument_is_refused():
    with pytest.raises(TypeError, match="metrics must be True or False"):
        ringbus.Bus(metrics="yes")


def test_handler_errors_are_logged_with_structured_fields(caplog):
    bus = ringbus.Bus()
    t = bus.event_type("orders.new")
    bus.subscribe(t, lambda x: 1 / 0, name="risk")
    with caplog.at_level(logging.ERROR, logger="ringbus"):
        bus.emit(t, {"qty": 5})
    (record,) = [r for r in caplog.records if r.name == "ringbus"]
    assert (record.ringbus_event_type, record.ringbus_event_name,
            record.ringbus_subscription) == (t, "orders.new", "risk")
    assert record.exc_info[0] is ZeroDivisionError


def test_ring_high_water_and_producers_waits_are_measured_and_reset():
    bus = ringbus.Bus(capacity=64, metrics=True)
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: _busy(200e-6))
    for i in range(50):
        bus.publish(t, i)
    bus.drain()
    ring = bus.metrics()["ring"]
    assert ring["high_water"] == 50 and ring["stages_high_water"] == {"dispatch": 50}
    assert ring["blocked_waits"] == 0
    with bus.running():                   # a slow consumer: 300 events through 64 slots
        for i in range(300):
            bus.publish(t, i)
    ring = bus.metrics()["ring"]
    assert ring["blocked_waits"] > 0 and ring["blocked_seconds"] > 0
    assert 50 <= ring["high_water"] <= 64
    bus.reset_metrics()
    ring = bus.metrics()["ring"]
    assert (ring["high_water"], ring["blocked_waits"], ring["blocked_seconds"]) == (0, 0, 0.0)


def test_the_watchdog_reports_a_slow_handler_once_with_its_stack(caplog):
    bus = ringbus.Bus()
    t = bus.event_type("orders.new")
    done = threading.Event()

    def gateway(order):
        if order == "slow":
            _busy(0.3)                   # a slow call, not interrupted
            done.set()
    bus.subscribe(t, gateway, name="gateway")
    bus.subscribe(t, lambda x: None, name="fast")
    dog = bus.enable_watchdog(threshold=0.05)
    with caplog.at_level(logging.WARNING, logger="ringbus"):
        with bus.running():
            for i in range(1000):
                bus.publish(t, i)
            bus.publish(t, "slow")
            assert done.wait(10)
            time.sleep(0.1)
    slow = [r for r in caplog.records if "slow handler" in r.getMessage()]
    assert dog.reported == 1 and len(slow) == 1
    record = slow[0]
    assert (record.ringbus_subscription, record.ringbus_event_name) == ("gateway", "orders.new")
    assert "in gateway" in record.getMessage() and "_busy" in record.getMessage()
    bus.close()
    assert not dog._thread.is_alive()     # closing the bus stopped it


def test_the_watchdog_is_quiet_when_handlers_are_fast(caplog):
    bus = ringbus.Bus()
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    dog = bus.enable_watchdog(threshold=0.05)
    with caplog.at_level(logging.WARNING, logger="ringbus"):
        with bus.running():
            for i in range(200_000):
                bus.publish(t, i)
    assert dog.reported == 0
    bus.disable_watchdog()
    with pytest.raises(ValueError, match="threshold must be"):
        bus.enable_watchdog(threshold=0)
