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
    bus.emit_batch(np.array([0, 1, 0, 1, 1], np.int64), np.arange(5))
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
