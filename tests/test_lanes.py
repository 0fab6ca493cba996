"""Priority lanes (Bus.add_lane): routing, the priority rule and its starvation bound, each
lane's own capacity and overflow, FIFO per producer per lane under threads, the three
consumers (thread, drain, event loop), stop/close, and bad input."""
import asyncio
import threading
import time

import pytest

import ringbus
from ringbus import Bus, Lane, RingFull

from stress import scaled


def _bus(**kw):
    bus = Bus(**kw)
    md = bus.event_type("lanes.md")
    order = bus.event_type("lanes.order")
    return bus, md, order


def _recorder(bus, *types):
    got = []
    for t in types:
        bus.subscribe(t, lambda p, t=t: got.append((t, p)))
    return got


# -- routing ------------------------------------------------------------------------------

def test_a_bus_has_the_default_lane_until_one_is_added():
    bus, md, order = _bus()
    (lane,) = bus.lanes
    assert lane.name == "default" and lane.priority == 0 and lane.ring is bus.ring
    assert bus.lane_of(md) is lane
    assert bus.publish(md, 1, lane="default")
    assert bus.drain() == 1


def test_events_go_to_the_call_s_lane_else_the_type_s_else_default():
    bus, md, order = _bus()
    control = bus.add_lane("control", priority=10, capacity=64, types=[order])
    assert isinstance(control, Lane)
    assert [x.name for x in bus.lanes] == ["control", "default"]
    assert bus.lane_of(order) is control and bus.lane_of(md).name == "default"
    bus.publish(md, "m1")
    bus.publish(order, "o1")
    bus.publish(md, "m2", lane="control")
    bus.publish(md, "m3", lane=control)
    bus.publish(order, "o2", lane="default")
    assert control.pending == 3 and bus.lanes[1].pending == 2 and bus.pending == 5
    bus.set_lane(order, "default")
    bus.publish(order, "o3")
    assert bus.lanes[1].pending == 3


def test_every_publish_verb_routes_by_lane():
    bus, md, order = _bus()
    control = bus.add_lane("control", priority=1, capacity=64, types=[order])
    assert bus.try_publish(order, 1)
    assert bus.publish_many(order, [2, 3]) == 2
    assert bus.publish_many(md, [4], lane="control") == 1
    assert bus.try_publish(md, 5, lane=control)
    assert bus.publish_conflated(order, "k", 6)
    assert control.pending == 6 and bus.lanes[1].pending == 0

    async def main():
        assert await bus.publish_async(order, 7)
        assert await bus.publish_async(md, 8)
    asyncio.run(main())
    assert control.pending == 7 and bus.lanes[1].pending == 1


def test_a_request_goes_in_its_type_s_lane():
    bus, md, order = _bus()
    control = bus.add_lane("control", priority=1, capacity=64, types=[order])
    bus.subscribe(order, lambda p: p * 2)
    fut = bus.request(order, 21, timeout=5)
    assert control.pending == 1 and bus.lanes[1].pending == 0
    bus.drain()
    assert fut.result(1) == 42


# -- the priority rule ----------------------------------------------------------------------

def test_drain_takes_the_higher_lane_first_and_each_lane_in_order():
    bus, md, order = _bus()
    bus.add_lane("control", priority=5, capacity=64, types=[order])
    got = _recorder(bus, md, order)
    for i in range(5):
        bus.publish(md, i)
    for i in range(3):
        bus.publish(order, i)
    assert bus.drain() == 8
    assert got == [(order, 0), (order, 1), (order, 2)] + [(md, i) for i in range(5)]


def test_a_higher_lane_event_waits_at_most_for_the_batch_in_hand():
    # A handler of the market-data lane publishes an order: it is dispatched right after the
    # current market-data batch (batch=4), not after the whole backlog.
    bus, md, order = _bus()
    control = bus.add_lane("control", priority=5, capacity=64, types=[order])
    bus.lanes[1].batch = 4
    got = _recorder(bus, md, order)
    bus.subscribe(md, lambda p: p == 1 and bus.publish(order, "o"))
    for i in range(20):
        bus.publish(md, i)
    bus.drain()
    assert got.index((order, "o")) == 4
    assert [p for t, p in got if t == md] == list(range(20))
    assert control.stats()["dispatched"] == 1


def test_a_lower_lane_is_served_after_patience_turns_of_higher_lanes():
    bus, md, order = _bus()
    bus.add_lane("control", priority=5, capacity=256, batch=2, types=[order])
    bus.lanes[1].patience = 3
    bus.lanes[1].batch = 1
    got = _recorder(bus, md, order)
    for i in range(40):
        bus.publish(order, i)
    for i in range(4):
        bus.publish(md, i)
    bus.drain()
    kinds = "".join("o" if t == order else "m" for t, _ in got)
    # 3 control turns of 2, then one market-data event, and again, until md is done.
    assert kinds.startswith("oooooom" * 4)
    assert [p for t, p in got if t == order] == list(range(40))
    assert [p for t, p in got if t == md] == list(range(4))


def test_three_lanes_in_priority_order():
    bus = Bus()
    a, b, c = (bus.event_type(f"lanes3.{x}") for x in "abc")
    bus.add_lane("high", priority=10, types=[a])
    bus.add_lane("low", priority=-10, types=[c])
    got = _recorder(bus, a, b, c)
    for t in (c, b, a, c, b, a):
        bus.publish(t, None)
    bus.drain()
    assert [t for t, _ in got] == [a, a, b, b, c, c]


def test_drain_max_events_spans_lanes():
    bus, md, order = _bus()
    bus.add_lane("control", priority=5, capacity=64, types=[order])
    got = _recorder(bus, md, order)
    for i in range(3):
        bus.publish(md, i)
        bus.publish(order, i)
    assert bus.drain(max_events=4) == 4
    assert got == [(order, 0), (order, 1), (order, 2), (md, 0)]
    assert bus.pending == 2


# -- capacity and overflow per lane -------------------------------------------------------

def test_each_lane_has_its_own_capacity_and_overflow_policy():
    bus, md, order = _bus(capacity=4, overflow="drop")
    control = bus.add_lane("control", priority=1, capacity=2, overflow="raise", types=[order])
    for i in range(6):
        bus.publish(md, i)
    assert bus.stats()["lanes"]["default"]["dropped"] == 2
    bus.publish(order, 0)
    bus.publish(order, 1)
    with pytest.raises(RingFull):
        bus.publish(order, 2)
    assert control.stats()["dropped"] == 0
    assert bus.stats()["dropped"] == 2
    assert bus.drain() == 6


def test_a_blocking_lane_waits_for_the_one_consumer():
    bus, md, order = _bus()
    control = bus.add_lane("control", priority=1, capacity=2, overflow="block", types=[order])
    got = _recorder(bus, order)
    with bus.running():
        for i in range(200):
            assert bus.publish(order, i, timeout=5)
    assert [p for _, p in got] == list(range(200))
    assert control.stats()["dropped"] == 0


def test_a_handler_publishing_into_its_full_lane_uses_the_backlog():
    bus, md, order = _bus()
    bus.add_lane("control", priority=1, capacity=2, backlog=8, types=[order])
    got = _recorder(bus, order)
    bus.subscribe(md, lambda p: [bus.publish(order, (p, k)) for k in range(5)])
    bus.publish(md, 0)
    bus.drain()
    assert [p for _, p in got] == [(0, k) for k in range(5)]


# -- threads ---------------------------------------------------------------------------------

def test_fifo_per_producer_per_lane_and_nothing_lost_under_threads():
    n = scaled(20000)
    bus, md, order = _bus(capacity=256)
    bus.add_lane("control", priority=1, capacity=64, batch=16, types=[order])
    seen = {}

    def handler(t):
        def h(p):
            seen.setdefault((t, p[0]), []).append(p[1])
        return h
    bus.subscribe(md, handler(md))
    bus.subscribe(order, handler(order))

    def produce(tag):
        for i in range(n):
            bus.publish(md if i % 4 else order, (tag, i))

    with bus.running():
        threads = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    for k in range(3):
        assert seen[(md, k)] == [i for i in range(n) if i % 4]
        assert seen[(order, k)] == [i for i in range(n) if not i % 4]
    s = bus.stats()
    assert s["dispatched"] == s["published"] == 3 * n and s["pending"] == 0


def test_the_consumer_thread_parks_and_any_lane_wakes_it():
    bus, md, order = _bus(wait="block")
    bus.add_lane("control", priority=1, capacity=64, types=[order])
    got = []
    done = threading.Event()
    bus.subscribe(order, lambda p: (got.append(p), done.set()))
    with bus.running():
        time.sleep(0.05)            # parked by now
        bus.publish(order, "x")
        assert done.wait(5)
    assert got == ["x"]


def test_stop_drains_every_lane_and_stop_now_leaves_them_queued():
    bus, md, order = _bus()
    bus.add_lane("control", priority=1, capacity=1024, types=[order])
    got = _recorder(bus, md, order)
    gate = threading.Event()
    bus.subscribe(md, lambda p: gate.wait(5), priority=1)
    bus.start()
    for i in range(50):
        bus.publish(md, i)
        bus.publish(order, i)
    gate.set()
    bus.stop(drain=True)
    assert len(got) == 100 and bus.pending == 0
    gate.clear()
    bus.start()
    bus.publish(md, "blocked")
    time.sleep(0.02)
    for i in range(10):
        bus.publish(order, i)
    threading.Timer(0.05, gate.set).start()
    bus.stop(drain=False)
    assert bus.pending >= 10
    assert bus.drain() == bus.stats()["dispatched"] - 101 or bus.pending == 0


def test_a_consumer_ended_by_base_exception_releases_waiting_producers():
    bus, md, order = _bus()
    control = bus.add_lane("control", priority=1, capacity=2, types=[order])

    class Boom(BaseException):
        pass

    def boom(p):
        raise Boom()
    bus.subscribe(md, boom)
    bus.start()
    bus.publish(md, 1)
    deadline = time.monotonic() + 5
    while bus.ring._is_consumer_gone() is False and time.monotonic() < deadline:
        time.sleep(0.005)
    bus.publish(order, 1)
    bus.publish(order, 2)
    with pytest.raises(ringbus.ConsumerGone):
        bus.publish(order, 3, timeout=2)
    with pytest.raises(Boom):
        bus.stop()
    assert control.pending == 2
    bus.drain()
    assert control.pending == 0


def test_close_drains_every_lane():
    bus, md, order = _bus()
    bus.add_lane("control", priority=1, capacity=64, types=[order])
    got = _recorder(bus, md, order)
    bus.start()
    for i in range(100):
        bus.publish(md, i)
    bus.publish(order, "o")
    assert bus.close() == 0
    assert len(got) == 101


def test_close_reports_what_is_queued_in_every_lane():
    bus, md, order = _bus()
    bus.add_lane("control", priority=1, capacity=64, types=[order])
    bus.publish(md, 1)
    bus.publish(order, 2)
    with pytest.warns(RuntimeWarning, match="2 event"):
        assert bus.close() == 2


# -- the event loop ------------------------------------------------------------------------

def test_the_loop_consumer_takes_the_higher_lane_first():
    bus, md, order = _bus()
    bus.add_lane("control", priority=1, capacity=64, types=[order])
    got = _recorder(bus, md, order)

    async def main():
        for i in range(300):
            bus.publish(md, i)
        bus.publish(order, "o")
        task = bus.attach(batch=100)
        while bus.pending:
            await asyncio.sleep(0.001)
        bus.publish(order, "o2")        # wakes the loop through the control lane
        while bus.pending:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(main())
    assert got[0] == (order, "o") and got[-1] == (order, "o2")
    assert [p for t, p in got if t == md] == list(range(300))


# -- metrics --------------------------------------------------------------------------------

def test_stats_and_metrics_per_lane():
    bus, md, order = _bus(metrics=True)
    bus.add_lane("control", priority=1, capacity=64, types=[order])
    bus.subscribe(order, lambda p: None)
    bus.publish(order, 1)
    bus.publish(md, 2)
    s = bus.stats()
    assert s["lanes"]["control"]["published"] == 1 and s["lanes"]["default"]["pending"] == 1
    m = bus.metrics()
    assert m["lanes"]["control"]["fill"] == 1 and m["lanes"]["control"]["priority"] == 1
    bus.drain()
    m = bus.metrics()
    assert m["lanes"]["control"]["dispatched"] == 1
    delays = {d["event_name"]: d["delay_ns"]["count"] for d in m["publish_to_handle"]}
    assert delays["lanes.order"] == 1


# -- bad input --------------------------------------------------------------------------------

def test_bad_lanes_are_refused_naming_the_argument():
    bus, md, order = _bus()
    with pytest.raises(TypeError, match="name"):
        bus.add_lane(3, priority=1)
    with pytest.raises(ValueError, match="default"):
        bus.add_lane("default", priority=1)
    with pytest.raises(ValueError, match="priority"):
        bus.add_lane("x", priority=0)
    with pytest.raises(TypeError, match="priority"):
        bus.add_lane("x", priority="high")
    with pytest.raises(ValueError, match="capacity"):
        bus.add_lane("x", priority=1, capacity=1000)
    with pytest.raises(ValueError, match="overflow"):
        bus.add_lane("x", priority=1, overflow="spill")
    with pytest.raises(ValueError, match="batch"):
        bus.add_lane("x", priority=1, batch=0)
    with pytest.raises(TypeError, match="patience"):
        bus.add_lane("x", priority=1, patience=1.5)
    assert len(bus.lanes) == 1
    bus.add_lane("x", priority=1)
    with pytest.raises(ValueError, match="no lane named 'y'"):
        bus.publish(md, 1, lane="y")
    with pytest.raises(TypeError, match="lane must be"):
        bus.publish(md, 1, lane=3)
    other = Bus()
    with pytest.raises(ValueError, match="not a lane of this bus"):
        bus.publish(md, 1, lane=other.lanes[0])
    with pytest.raises(ValueError, match="no lane named"):
        bus.set_lane(md, "nope")
    assert bus.pending == 0


def test_a_bus_without_lanes_refuses_another_bus_s_lanes_and_unknown_names():
    bus, md, order = _bus()
    other = Bus()
    other.add_lane("x", priority=1)
    for lane in other.lanes:                # its "default" too: another ring
        with pytest.raises(ValueError, match="not a lane of this bus"):
            bus.publish(md, 1, lane=lane)
    with pytest.raises(ValueError, match="no lane named 'x'"):
        bus.try_publish(md, 1, lane="x")
    with pytest.raises(TypeError, match="lane must be"):
        bus.publish_many(md, [1], lane=object())
    assert bus.publish(md, 1, lane=bus.lanes[0]) and bus.pending == 1


def test_lanes_and_stages_do_not_mix_and_lanes_change_only_while_idle():
    bus, md, order = _bus()
    bus.stage("journal", lambda t, p: None, before="dispatch")
    with pytest.raises(ValueError, match="stages"):
        bus.add_lane("x", priority=1)
    bus2, md2, _ = _bus()
    lane = bus2.add_lane("x", priority=1)
    with pytest.raises(ValueError, match="lanes"):
        bus2.stage("journal", lambda t, p: None)
    with bus2.running():
        with pytest.raises(RuntimeError, match="consumed"):
            bus2.add_lane("y", priority=2)
        with pytest.raises(RuntimeError, match="consumed"):
            lane.batch = 4
    lane.batch = 4
    assert lane.batch == 4


def test_at_most_eight_lanes():
    bus = Bus()
    for i in range(1, 8):
        bus.add_lane(f"l{i}", priority=i, capacity=2)
    with pytest.raises(ValueError, match="at most 8"):
        bus.add_lane("l8", priority=8)


def test_a_flood_of_the_higher_lane_does_not_starve_the_lower_one():
    # A producer thread floods the control lane for as long as the test runs; the market-data
    # events published meanwhile are all dispatched, in order, while the flood goes on.
    bus, md, order = _bus(capacity=1024)
    bus.add_lane("control", priority=1, capacity=256, batch=8, patience=2, types=[order])
    got_md = []
    md_done = threading.Event()
    n = scaled(2000)

    def on_md(p):
        got_md.append(p)
        if len(got_md) == n:
            md_done.set()
    bus.subscribe(md, on_md)
    orders = [0]
    bus.subscribe(order, lambda p: orders.__setitem__(0, orders[0] + 1))
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            bus.publish_many(order, range(64), timeout=1)
    with bus.running():
        th = threading.Thread(target=flood)
        th.start()
        try:
            while orders[0] < 1000:             # the flood is on
                time.sleep(0.001)
            for i in range(n):
                bus.publish(md, i)
            assert md_done.wait(30), f"market data starved: {len(got_md)} of {n}"
            assert th.is_alive()                # still flooding when the last md arrived
        finally:
            stop.set()
            th.join()
    assert got_md == list(range(n))
