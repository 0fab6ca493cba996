"""Queueing metrics (issue 14): the ring stamps each event's publish time while metrics are
on; the dispatch stage records, per event type, the delay until it takes the event, apart
from handler time; the ring reports its lag in events and in time; an async handler's
coroutine time to completion is kept apart from its time on the consumer."""
import asyncio
import threading
import time

import pytest

import ringbus


def _delays(bus):
    return {d["event_name"]: d for d in bus.metrics()["publish_to_handle"]}


def test_delay_is_the_time_an_event_waited_in_the_ring_not_its_handlers_time():
    bus = ringbus.Bus(metrics=True)
    old, new = bus.event_type("old"), bus.event_type("new")
    bus.subscribe(old, lambda x: None)
    bus.subscribe(new, lambda x: None)
    for i in range(50):
        bus.publish(old, i)
    time.sleep(0.03)
    for i in range(50):
        bus.publish(new, i)
    before = time.perf_counter_ns()
    assert bus.drain() == 100
    waited_at_most = time.perf_counter_ns() - before
    d = _delays(bus)
    assert d["old"]["events"] == 50 and d["new"]["events"] == 50
    assert d["old"]["delay_ns"]["count"] == 50
    # Published >= 30 ms before the drain: each waited that long (the histogram's error
    # is 1/64, downwards at most).
    assert d["old"]["delay_ns"]["min"] >= 0.03e9 * (1 - 1 / 64)
    # Published just before it: each waited less than the sleep.
    assert d["new"]["delay_ns"]["max"] < 0.03e9
    assert d["new"]["delay_ns"]["max"] <= d["old"]["delay_ns"]["min"]
    assert d["old"]["delay_ns"]["max"] <= 10e9          # a sane clock, not a wrapped one
    assert waited_at_most > 0


def test_a_slow_handler_delays_the_events_behind_it():
    bus = ringbus.Bus(metrics=True)
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: time.sleep(0.002) if x == 0 else None)
    for i in range(10):
        bus.publish(t, i)
    bus.drain()
    (d,) = bus.metrics()["publish_to_handle"]
    # Events 1..9 waited behind event 0's 2 ms handler; event 0 did not.
    assert d["delay_ns"]["count"] == 10
    assert d["delay_ns"]["p50"] >= 0.002e9 * (1 - 1 / 64)
    assert d["delay_ns"]["min"] < 0.002e9


def test_only_events_published_while_metrics_are_on_are_stamped():
    bus = ringbus.Bus()
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    for i in range(5):
        bus.publish(t, i)
    bus.enable_metrics()
    for i in range(7):
        bus.publish(t, i)
    bus.publish_many(t, range(3))
    bus.drain()
    assert _delays(bus)["t"]["events"] == 10
    bus.disable_metrics()
    for i in range(4):
        bus.publish(t, i)
    bus.enable_metrics()            # stamps from here: the 4 above stay unstamped
    bus.publish(t, 0)
    bus.drain()
    assert _delays(bus)["t"]["events"] == 11
    bus.reset_metrics()
    assert _delays(bus)["t"]["events"] == 0
    assert _delays(bus)["t"]["delay_ns"]["count"] == 0


def test_off_no_delay_is_recorded():
    bus = ringbus.Bus()
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    bus.publish(t, 1)
    bus.drain()
    assert bus.metrics()["publish_to_handle"] == []


def test_lag_in_events_and_in_time_then_none_once_caught_up():
    bus = ringbus.Bus(metrics=True)
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    ring = bus.metrics()["ring"]
    assert (ring["lag_events"], ring["lag_seconds"]) == (0, None)
    for i in range(20):
        bus.publish(t, i)
    time.sleep(0.02)
    ring = bus.metrics()["ring"]
    assert ring["lag_events"] == 20
    assert ring["lag_seconds"] >= 0.02 * (1 - 1 / 64)
    assert ring["stages_lag"]["dispatch"] == {"events": 20,
                                              "age_seconds": ring["lag_seconds"]}
    bus.drain(max_events=15)
    ring = bus.metrics()["ring"]
    assert ring["lag_events"] == 5 and ring["lag_seconds"] >= 0.02 * (1 - 1 / 64)
    bus.drain()
    ring = bus.metrics()["ring"]
    assert (ring["lag_events"], ring["lag_seconds"]) == (0, None)
    assert "the oldest for -" in bus.metrics_report()


def test_lag_age_is_unknown_for_events_published_with_metrics_off():
    bus = ringbus.Bus()
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    bus.publish(t, 1)
    bus.enable_metrics()
    bus.publish(t, 2)
    ring = bus.metrics()["ring"]
    assert ring["lag_events"] == 2 and ring["lag_seconds"] is None
    bus.drain(max_events=1)
    assert bus.metrics()["ring"]["lag_seconds"] is not None
    bus.drain()


def test_lag_per_stage():
    bus = ringbus.Bus(metrics=True)
    t = bus.event_type("t")
    bus.subscribe(t, lambda x: None)
    seen = []
    bus.stage("journal", lambda typ, payload: seen.append(payload), before="dispatch")
    for i in range(3):
        bus.publish(t, i)
    lag = bus.metrics()["ring"]["stages_lag"]
    assert lag["journal"]["events"] == 3 and lag["dispatch"]["events"] == 3
    assert lag["journal"]["age_seconds"] is not None
    with bus.running():             # a stage runs on its own thread
        pass                        # stop() drains
    lag = bus.metrics()["ring"]["stages_lag"]
    assert lag["journal"]["events"] == 0 and lag["dispatch"]["events"] == 0
    assert seen == [0, 1, 2]
    assert _delays(bus)["t"]["events"] == 3


def test_delays_add_up_to_dispatched_events_with_producer_threads_and_a_consumer_thread():
    bus = ringbus.Bus(metrics=True, capacity=256)
    types = [bus.event_type(f"t{i}") for i in range(3)]
    counts = [0, 0, 0]

    def count(i):
        def h(x):
            counts[i] += 1
        return h
    for i, t in enumerate(types):
        bus.subscribe(t, count(i))
    n = 3000

    def produce(t):
        for i in range(n):
            bus.publish(t, i)
        bus.publish_many(t, range(100))
    with bus.running():
        threads = [threading.Thread(target=produce, args=(t,)) for t in types]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    d = _delays(bus)
    assert counts == [n + 100] * 3
    assert [d[f"t{i}"]["events"] for i in range(3)] == counts
    assert sum(x["delay_ns"]["count"] for x in d.values()) == bus.stats()["dispatched"]


def test_an_async_handlers_wall_time_is_apart_from_its_time_on_the_consumer():
    async def main():
        bus = ringbus.Bus(metrics=True)
        t = bus.event_type("order")

        async def gateway(x):
            await asyncio.sleep(0.01)

        def sync(x):
            pass
        bus.subscribe(t, gateway, name="gateway", concurrent=4)
        bus.subscribe(t, sync, name="sync")
        bus.attach()
        try:
            for i in range(8):
                bus.publish(t, i)
            for _ in range(200):
                await asyncio.sleep(0.005)
                h = {x["subscription"]: x for x in bus.metrics()["handlers"]}
                if h["gateway"]["wall_ns"]["count"] == 8:
                    break
            return h, bus.metrics_report()
        finally:
            bus.detach()
            bus.close()
    h, report = asyncio.run(main())
    gw = h["gateway"]
    assert gw["is_async"] and gw["calls"] == 8
    assert gw["wall_ns"]["count"] == 8
    assert gw["wall_ns"]["min"] >= 0.01e9 * (1 - 1 / 64)
    # Started as a task: the consumer spent far less than the sleep on each call.
    assert gw["time_ns"]["p50"] < 0.01e9
    assert h["sync"]["wall_ns"] is None and not h["sync"]["is_async"]
    assert "async, to completion" in report


def test_async_wall_time_from_a_thread_without_a_loop_and_when_off():
    bus = ringbus.Bus()
    t = bus.event_type("t")

    async def h(x):
        await asyncio.sleep(0.001)
    sub = bus.subscribe(t, h, name="h")
    bus.emit(t, 1)                      # metrics off: nothing kept, no wrapper
    bus.enable_metrics()
    bus.emit(t, 2)                      # no running loop: run to completion here
    (m,) = bus.metrics()["handlers"]
    assert m["calls"] == 1 and m["wall_ns"]["count"] == 1
    assert m["wall_ns"]["min"] >= 0.001e9 * (1 - 1 / 64)
    bus.disable_metrics()
    bus.emit(t, 3)
    (m,) = bus.metrics()["handlers"]
    assert m["calls"] == 1 and m["wall_ns"]["count"] == 1
    bus.reset_metrics()
    (m,) = bus.metrics()["handlers"]
    assert m["wall_ns"]["count"] == 0
    assert sub.active


def test_an_async_handler_that_raises_is_timed_and_its_error_counted():
    errors = []
    bus = ringbus.Bus(metrics=True, on_error=lambda *a: errors.append(a[3]))
    t = bus.event_type("t")

    async def h(x):
        await asyncio.sleep(0)
        raise ValueError(x)
    bus.subscribe(t, h)
    bus.emit(t, 1)
    (m,) = bus.metrics()["handlers"]
    assert m["wall_ns"]["count"] == 1
    assert [str(e) for e in errors] == ["1"]
