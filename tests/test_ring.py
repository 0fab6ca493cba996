"""Behaviour of the compiled ring buffer (ringbus._ring): publish, drain, consumer threads,
overflow policies, wait strategies, stages (pipelines) and input validation.

The ring is exercised directly with a Bus as its DispatchTable; wiring it into Bus.publish is
covered by the Bus's own tests.
"""
import _thread
import gc
import signal
import threading
import time
import weakref

import pytest

import ringbus
from ringbus._ring import RingBuffer, RingFull, Stage

PRODUCERS = ["single", "multi"]
WAITS = ["block", "spin", "yield", "sleep"]


class Payload:
    """A payload that can be weakly referenced, to watch the ring release it."""

    def __init__(self, n):
        self.n = n


def make_bus(handler=None):
    bus = ringbus.Bus()
    t = bus.event_type("e")
    got = []
    bus.subscribe(t, handler if handler is not None else got.append)
    return bus, t, got


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("capacity", [0, 1, 3, 6, 100, -4, 1 << 31])
def test_capacity_must_be_a_power_of_two_at_least_2(capacity):
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(capacity)


@pytest.mark.parametrize("kw, name", [
    ({"producers": "many"}, "producers"),
    ({"overflow": "wait"}, "overflow"),
    ({"wait": "busy"}, "wait"),
    ({"wait": None}, "wait"),
])
def test_unknown_policy_names_are_refused_by_name(kw, name):
    with pytest.raises(ValueError, match=name):
        RingBuffer(8, **kw)


def test_negative_or_nan_timeouts_are_refused():
    ring = RingBuffer(2)
    for bad in (-1, -0.5, float("nan")):
        with pytest.raises(ValueError, match="timeout"):
            ring.publish(0, None, timeout=bad)
        with pytest.raises(ValueError, match="timeout"):
            ring.publish_many(0, [1], timeout=bad)
    ring.start(make_bus()[0])
    with pytest.raises(ValueError, match="timeout"):
        ring.stop(timeout=-1)
    ring.stop()


def test_bad_event_types_and_max_events():
    ring = RingBuffer(4)
    with pytest.raises(ValueError, match="event_type"):
        ring.publish(-1)
    with pytest.raises(TypeError, match="event_type"):
        ring.publish("e")
    with pytest.raises(TypeError, match="event_type"):
        ring.publish(1.5)
    with pytest.raises(TypeError, match="event_type"):
        ring.publish(True)            # not an id, even though 1 could be one
    bus, t, got = make_bus()
    with pytest.raises(ValueError, match="max_events"):
        ring.drain(bus, max_events=-1)
    assert ring.pending == 0


def test_an_id_the_table_lacks_is_a_handler_error_at_drain_and_counts_as_consumed():
    # No event may stop a consumer (issue 8, defect 5): the unknown id goes to the table's
    # error policy (here "log": counted) and the drain goes on.
    bus, t, got = make_bus()
    ring = RingBuffer(4)
    ring.publish(t, "a")
    ring.publish(999, "b")
    ring.publish(t, "c")
    assert ring.drain(bus) == 3
    assert got == ["a", "c"]
    assert bus.stats()["handler_errors"] == 1


def test_stage_cannot_be_made_directly():
    with pytest.raises(TypeError):
        Stage()


# -- publish / drain -------------------------------------------------------------------------

@pytest.mark.parametrize("producers", PRODUCERS)
def test_publish_then_drain_is_fifo_and_counted(producers):
    bus, t, got = make_bus()
    ring = RingBuffer(8, producers=producers)
    for i in range(5):
        assert ring.publish(t, i) is True
    assert ring.pending == len(ring) == 5
    assert ring.drain(bus) == 5
    assert got == [0, 1, 2, 3, 4]
    for i in range(5, 25):           # wraps around the 8 slots several times
        ring.publish(t, i)
        if i % 3 == 0:
            ring.drain(bus)
    ring.drain(bus)
    assert got == list(range(25))
    s = ring.stats()
    assert (s["published"], s["dispatched"], s["dropped"], s["pending"]) == (25, 25, 0, 0)


def test_drain_max_events_goes_batch_by_batch():
    bus, t, got = make_bus()
    ring = RingBuffer(16)
    for i in range(10):
        ring.publish(t, i)
    assert ring.drain(bus, max_events=3) == 3
    assert ring.drain(bus, max_events=0) == 0
    assert ring.drain(bus, max_events=4) == 4
    assert ring.drain(bus) == 3
    assert ring.drain(bus) == 0
    assert got == list(range(10))


def test_payload_reference_is_released_once_dispatched():
    bus, t, _ = make_bus(lambda p: None)
    ring = RingBuffer(4)
    p = Payload(1)
    ref = weakref.ref(p)
    ring.publish(t, p)
    del p
    assert ref() is not None         # the ring holds it while queued
    ring.drain(bus)
    assert ref() is None             # ... and not a moment longer


def test_ring_frees_queued_payloads_when_it_dies():
    p = Payload(1)
    ref = weakref.ref(p)
    ring = RingBuffer(4)
    ring.publish(0, p)
    del p, ring
    gc.collect()
    assert ref() is None


def test_publish_many_fills_runs_of_slots():
    bus, t, got = make_bus()
    ring = RingBuffer(8, producers="single", overflow="drop")
    assert ring.publish_many(t, range(5)) == 5
    assert ring.publish_many(t, [5, 6, 7, 8, 9]) == 3      # 2 dropped, counted
    assert ring.dropped == 2
    ring.drain(bus)
    assert got == list(range(8))
    ring2 = RingBuffer(4, overflow="raise")
    with pytest.raises(RingFull) as info:
        ring2.publish_many(t, range(6))
    assert info.value.published == 4


def test_handler_publish_enqueues_behind_the_current_event():
    order = []
    bus = ringbus.Bus()
    a, b = bus.event_type("a"), bus.event_type("b")
    ring = RingBuffer(8)

    def on_a(p):
        order.append(("a", p))
        ring.publish(b, p)

    bus.subscribe(a, on_a)
    bus.subscribe(b, lambda p: order.append(("b", p)))
    ring.publish(a, 1)
    ring.publish(a, 2)
    assert ring.drain(bus) == 4
    assert order == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


def test_drain_from_a_handler_is_refused():
    bus = ringbus.Bus()
    t = bus.event_type("e")
    ring = RingBuffer(8)
    seen = []

    def h(p):
        try:
            ring.drain(bus)
        except RuntimeError as exc:
            seen.append(str(exc))

    bus.subscribe(t, h)
    ring.publish(t)
    ring.drain(bus)
    assert seen and "drain" in seen[0]


# -- overflow policies -----------------------------------------------------------------------

@pytest.mark.parametrize("producers", PRODUCERS)
def test_overflow_raise(producers):
    ring = RingBuffer(4, producers=producers, overflow="raise")
    for i in range(4):
        ring.publish(0, i)
    with pytest.raises(RingFull, match="full"):
        ring.publish(0, 4)
    assert ring.try_publish(0, 4) is False
    assert ring.pending == 4 and ring.dropped == 0


@pytest.mark.parametrize("producers", PRODUCERS)
def test_overflow_drop_counts_every_dropped_event(producers):
    bus, t, got = make_bus()
    ring = RingBuffer(4, producers=producers, overflow="drop")
    results = [ring.publish(t, i) for i in range(7)]
    assert results == [True] * 4 + [False] * 3
    assert ring.dropped == 3
    ring.drain(bus)
    assert got == [0, 1, 2, 3]
    assert ring.stats()["published"] == 4


@pytest.mark.parametrize("producers", PRODUCERS)
def test_overflow_block_times_out_with_ringfull(producers):
    ring = RingBuffer(2, producers=producers, overflow="block")
    ring.publish(0)
    ring.publish(0)
    with pytest.raises(RingFull, match="timeout"):
        ring.publish(0, None, timeout=0.05)
    with pytest.raises(RingFull):
        ring.publish(0, None, timeout=0)
    assert ring.pending == 2


@pytest.mark.parametrize("producers", PRODUCERS)
def test_blocked_producer_resumes_when_the_consumer_makes_room(producers):
    bus, t, got = make_bus()
    ring = RingBuffer(4, producers=producers, overflow="block")
    for i in range(4):
        ring.publish(t, i)
    done = threading.Event()

    def produce():
        for i in range(4, 12):
            ring.publish(t, i, timeout=30)
        done.set()

    th = threading.Thread(target=produce)
    th.start()
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        ring.drain(bus)
        time.sleep(0.001)
    th.join(30)
    ring.drain(bus)
    assert got == list(range(12))


def test_handler_publishing_into_the_full_ring_it_drains_gets_ringfull():
    bus = ringbus.Bus()
    t = bus.event_type("e")
    ring = RingBuffer(4, overflow="block", backlog=0)   # no follow-up backlog
    errors = []

    def h(p):
        if p == 0:
            # The slot of this very event is already free: one more fits ...
            ring.publish(t, "extra")
            # ... and then the ring is full, and only this thread could empty it.
            try:
                ring.publish(t, "too many")
            except RingFull as exc:
                errors.append(str(exc))

    bus.subscribe(t, h)
    for i in range(4):
        ring.publish(t, i)
    ring.drain(bus)
    assert len(errors) == 1 and "deadlock" in errors[0]
    assert ring.stats()["dispatched"] == 5


def test_consumer_thread_handler_publishing_into_its_full_ring_gets_ringfull():
    ring = RingBuffer(2, overflow="block", backlog=0)   # no follow-up backlog
    bus = ringbus.Bus(on_error=lambda *a: errors.append(a[-1]))
    t = bus.event_type("e")
    errors = []
    gate = threading.Event()

    def h(p):
        if p == "first":
            gate.wait(10)
            ring.publish(t, "x")      # ring full of "a", "b": room only if we go on
            ring.publish(t, "y")

    bus.subscribe(t, h)
    ring.start(bus)
    ring.publish(t, "first")
    ring.publish(t, "a")
    ring.publish(t, "b", timeout=10)
    gate.set()
    ring.stop(timeout=10)
    assert errors and isinstance(errors[0], RingFull) and "deadlock" in str(errors[0])


# -- exceptions and signals during drain ----------------------------------------------------

def test_baseexception_stops_at_an_event_boundary_and_nothing_is_lost():
    got = []

    def h(p):
        got.append(p)
        if p == 3:
            raise KeyboardInterrupt

    bus, t, _ = make_bus(h)
    ring = RingBuffer(16)
    for i in range(8):
        ring.publish(t, i)
    with pytest.raises(KeyboardInterrupt):
        ring.drain(bus)
    assert got == [0, 1, 2, 3]
    assert ring.stats()["dispatched"] == 4 and ring.pending == 4
    assert ring.drain(bus) == 4
    assert got == list(range(8))      # every event exactly once


def test_on_error_raise_propagates_after_the_event_and_keeps_the_rest():
    bus = ringbus.Bus(on_error="raise")
    t = bus.event_type("e")
    got = []

    def h(p):
        got.append(p)
        if p == 1:
            raise ValueError("boom")

    bus.subscribe(t, h)
    ring = RingBuffer(8)
    for i in range(4):
        ring.publish(t, i)
    with pytest.raises(ValueError, match="boom"):
        ring.drain(bus)
    assert ring.drain(bus) == 2
    assert got == [0, 1, 2, 3]


@pytest.fixture
def python_sigint_handler():
    # Python's own SIGINT handler, whatever an earlier test left installed (asyncio's runner
    # swallows a SIGINT while it believes its main task runs): the test below is about the
    # drain calling PyErr_CheckSignals, not about whose handler is in place.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_long_drain_of_c_handlers_checks_signals(python_sigint_handler):
    bus = ringbus.Bus()
    t = bus.event_type("e")
    u = bus.event_type("u")
    sink = []
    bus.subscribe(t, sink.append)                         # a C function: no eval loop
    bus.subscribe(u, lambda p: _thread.interrupt_main())  # "Ctrl-C" arrives here
    n = 20000
    ring = RingBuffer(32768)
    ring.publish(u)
    ring.publish_many(t, range(n))
    with pytest.raises(KeyboardInterrupt):
        ring.drain(bus)
    assert len(sink) < n              # interrupted part-way ...
    ring.drain(bus)
    assert sink == list(range(n))     # ... and the rest delivered exactly once


# -- consumer threads ------------------------------------------------------------------------

@pytest.mark.parametrize("wait", WAITS)
@pytest.mark.parametrize("producers", PRODUCERS)
def test_consumer_thread_delivers_everything_in_order(wait, producers):
    bus, t, got = make_bus()
    ring = RingBuffer(64, producers=producers, wait=wait)
    ring.start(bus)
    assert ring.started
    for i in range(5000):
        ring.publish(t, i)
    ring.stop(drain=True, timeout=30)
    assert not ring.started
    assert got == list(range(5000))
    assert ring.pending == 0


@pytest.mark.parametrize("wait", WAITS)
def test_stop_is_prompt_when_idle(wait):
    bus, t, got = make_bus()
    ring = RingBuffer(8, wait=wait)
    ring.start(bus)
    time.sleep(0.05)                  # let the consumer settle into its wait
    ring.stop(timeout=10)             # TimeoutError if it did not wake up
    ring.start(bus)                   # restartable
    ring.publish(t, 1)
    ring.stop(timeout=10)
    assert got == [1]


def test_stop_without_drain_leaves_the_rest_queued():
    entered, gate = threading.Event(), threading.Event()
    got = []

    def h(p):
        got.append(p)
        if p == 0:
            entered.set()
            gate.wait(10)

    bus, t, _ = make_bus(h)
    ring = RingBuffer(64)
    ring.start(bus)
    for i in range(10):
        ring.publish(t, i)
    assert entered.wait(10)           # the consumer is inside event 0
    threading.Timer(0.05, gate.set).start()
    ring.stop(drain=False, timeout=10)
    assert got[0] == 0 and len(got) < 10
    assert ring.pending == 10 - len(got)
    ring.drain(bus)
    assert got == list(range(10))


def test_running_context_manager_and_state_errors():
    bus, t, got = make_bus()
    ring = RingBuffer(8)
    with ring.running(bus):
        with pytest.raises(RuntimeError):
            ring.start(bus)
        with pytest.raises(RuntimeError, match="stop"):
            ring.drain(bus)
        ring.publish(t, "x")
    assert got == ["x"]
    ring.stop()                       # stopping a stopped ring is a no-op


def test_consumer_thread_stopped_by_an_exception_reports_it_on_stop():
    bus = ringbus.Bus(on_error="raise")
    t = bus.event_type("e")
    got = []

    def h(p):
        got.append(p)
        if p == 2:
            raise ValueError("handler failed")

    bus.subscribe(t, h)
    ring = RingBuffer(16)
    ring.start(bus)
    for i in range(6):
        ring.publish(t, i)
    deadline = time.monotonic() + 10
    while ring.stages["dispatch"].running and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(ValueError, match="handler failed"):
        ring.stop(timeout=10)
    assert got == [0, 1, 2] and ring.pending == 3
    ring.drain(bus)                   # the rest is still there, exactly once
    assert got == [0, 1, 2, 3, 4, 5]


# -- stages (pipelines) ----------------------------------------------------------------------

def test_diamond_pipeline_orders_stages_and_gates_on_the_last():
    seen = {"journal": [], "replicate": []}
    violations = []
    bus = ringbus.Bus()
    t = bus.event_type("e")
    ring = RingBuffer(16, wait="yield")
    j = ring.stage("journal", lambda et, p: seen["journal"].append(p), before="dispatch")
    r = ring.stage("replicate", lambda et, p: seen["replicate"].append(p), before="dispatch")
    got = []

    def logic(p):
        # Both upstream stages have processed this event before the subscribers see it.
        if j.sequence < p or r.sequence < p:
            violations.append(p)
        got.append(p)

    bus.subscribe(t, logic)
    assert ring.stages["dispatch"].after == ("journal", "replicate")
    ring.start(bus)
    for i in range(2000):
        ring.publish(t, i)
    ring.stop(timeout=30)
    assert violations == []
    assert seen["journal"] == seen["replicate"] == got == list(range(2000))


def test_pipeline_drain_on_this_thread_waits_for_upstream_stages():
    ring = RingBuffer(8)
    ring.stage("upstream", lambda et, p: None, before="dispatch")
    bus, t, got = make_bus()
    ring.publish(t, 1)
    assert ring.drain(bus) == 0       # the upstream stage has not run yet
    ring.start(bus)
    ring.stop()
    assert got == [1]


def test_stage_after_dispatch_and_batch_handlers():
    batches = []
    ring = RingBuffer(64, wait="block")
    ring.stage("audit", batches.append, after="dispatch", batch=True)
    bus, t, got = make_bus()
    ring.start(bus)
    for i in range(100):
        ring.publish(t, i)
    ring.stop(timeout=30)
    flat = [p for b in batches for (et, p) in b]
    assert flat == got == list(range(100))
    assert all(et == t for b in batches for (et, p) in b)


def test_several_last_stages_release_payloads_on_reuse():
    ring = RingBuffer(2)
    ring.stage("metrics", lambda et, p: None)   # a second last stage beside "dispatch"
    bus, t, got = make_bus(lambda p: None)
    p = Payload(1)
    ref = weakref.ref(p)
    ring.publish(t, p)
    del p
    ring.start(bus)
    ring.stop()
    assert ref() is not None          # nobody knows it was the last read ...
    ring.publish(t, None)
    ring.publish(t, None)             # ... until its slot is reused
    assert ref() is None
    ring.start(bus)
    ring.stop()


def test_stage_errors_are_logged_and_counted(caplog):
    def bad(et, p):
        raise ValueError("stage failed")

    ring = RingBuffer(8)
    st = ring.stage("bad", bad, before="dispatch")
    bus, t, got = make_bus()
    with caplog.at_level("ERROR", logger="ringbus"):
        ring.start(bus)
        ring.publish(t, 1)
        ring.publish(t, 2)
        ring.stop()
    assert st.errors == 2 and got == [1, 2]
    assert "stage failed" in caplog.text


def test_stage_graph_validation():
    ring = RingBuffer(8)
    a = ring.stage("a", lambda et, p: None)
    ring.stage("b", lambda et, p: None, after="a")
    with pytest.raises(ValueError, match="already exists"):
        ring.stage("a", lambda et, p: None)
    with pytest.raises(ValueError, match="no stage named"):
        ring.stage("c", lambda et, p: None, after="nope")
    with pytest.raises(ValueError, match="cycle"):
        ring.stage("c", lambda et, p: None, after="b", before=a)
    with pytest.raises(TypeError, match="callable"):
        ring.stage("c", 42)
    with pytest.raises(ValueError, match="on_error"):
        ring.stage("c", print, on_error="ignore")
    with pytest.raises(ValueError, match="name"):
        ring.stage("", print)
    other = RingBuffer(8)
    with pytest.raises(ValueError, match="another ring"):
        ring.stage("c", print, after=other.stages["dispatch"])
    ring.publish(0)
    with pytest.raises(RuntimeError, match="empty"):
        ring.stage("c", print)
    assert set(ring.stages) == {"dispatch", "a", "b"}


def test_stage_can_dispatch_through_another_table():
    other, t, other_got = make_bus()
    ring = RingBuffer(8)
    ring.stage("mirror", other, before="dispatch")
    bus, t2, got = make_bus()
    assert t == t2
    ring.start(bus)
    ring.publish(t, "x")
    ring.stop()
    assert other_got == ["x"] and got == ["x"]
