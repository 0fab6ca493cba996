"""Lifetimes: bound methods held weakly by default, functions and lambdas strongly, weak=
overrides; no reference cycle through the bus keeps a handler alive."""
import gc
import logging
import weakref


class Listener:
    def __init__(self, log):
        self.log = log

    def on_tick(self, payload):
        self.log.append(("listener", payload))


class CallableHandler:
    def __init__(self, log):
        self.log = log

    def __call__(self, payload):
        self.log.append(("callable", payload))


def test_bound_method_is_held_weakly_by_default(bus, tick):
    log = []
    obj = Listener(log)
    probe = weakref.ref(obj)
    sub = bus.subscribe(tick, obj.on_tick)
    assert bus.emit(tick, 1) == 1
    del obj
    gc.collect()
    assert probe() is None                  # the bus did not keep it alive
    assert sub.active is False              # the subscription ended with it
    assert bus.emit(tick, 2) == 0           # no error, nothing ran
    assert log == [("listener", 1)]
    assert bus.subscriptions(tick) == ()
    assert bus.stats()["subscriptions"] == 0


def test_dead_bound_method_leaves_other_handlers_alone(bus, tick, rec):
    log = []
    obj = Listener(log)
    bus.subscribe(tick, rec.handler("before"), priority=1)
    bus.subscribe(tick, obj.on_tick)
    bus.subscribe(tick, rec.handler("after"), priority=-1)
    assert bus.emit(tick, 1) == 3
    del obj
    gc.collect()
    assert bus.emit(tick, 2) == 2
    assert rec.calls[-2:] == [("before", 2), ("after", 2)]
    assert bus.stats()["handler_errors"] == 0


def test_bound_method_subscription_handler_attribute(bus, tick):
    obj = Listener([])
    sub = bus.subscribe(tick, obj.on_tick)
    assert sub.handler == obj.on_tick
    del obj
    gc.collect()
    assert sub.handler is None


def test_bound_method_object_dying_mid_dispatch_is_skipped_quietly(bus, tick, rec, caplog):
    log = []
    holder = {"obj": Listener(log)}

    def drop(payload):
        rec.calls.append(("drop", payload))
        holder.clear()
        gc.collect()

    bus.subscribe(tick, drop, priority=1)
    sub = bus.subscribe(tick, holder["obj"].on_tick)
    assert bus.emit(tick, 1) == 1
    assert log == []
    assert not sub.active
    assert bus.stats()["handler_errors"] == 0
    assert not [r for r in caplog.records if r.name == "ringbus"]


def test_unsubscribe_after_weak_handler_died_is_fine(bus, tick):
    obj = Listener([])
    sub = bus.subscribe(tick, obj.on_tick)
    del obj
    gc.collect()
    sub.unsubscribe()
    sub.unsubscribe()
    assert not sub.active


def test_lambda_is_held_strongly_by_default(bus, tick):
    calls = []
    bus.subscribe(tick, lambda p: calls.append(p))
    gc.collect()
    assert bus.emit(tick, 1) == 1
    assert calls == [1]


def test_function_and_callable_object_are_held_strongly_by_default(bus, tick):
    log = []

    def local_function(payload):
        log.append(("function", payload))

    obj = CallableHandler(log)
    f_probe, o_probe = weakref.ref(local_function), weakref.ref(obj)
    bus.subscribe(tick, local_function)
    bus.subscribe(tick, obj)
    del local_function, obj
    gc.collect()
    assert f_probe() is not None and o_probe() is not None
    assert bus.emit(tick, 1) == 2
    assert log == [("function", 1), ("callable", 1)]


def test_weak_false_holds_a_bound_method_strongly(bus, tick):
    log = []
    obj = Listener(log)
    probe = weakref.ref(obj)
    sub = bus.subscribe(tick, obj.on_tick, weak=False)
    del obj
    gc.collect()
    assert probe() is not None
    assert sub.active
    assert bus.emit(tick, 1) == 1
    assert log == [("listener", 1)]
    sub.unsubscribe()
    del sub                                 # a Subscription keeps its .handler
    gc.collect()
    assert probe() is None                  # the bus released it once unsubscribed


def test_weak_true_holds_a_function_weakly(bus, tick):
    log = []

    def local_function(payload):
        log.append(payload)

    probe = weakref.ref(local_function)
    sub = bus.subscribe(tick, local_function, weak=True)
    assert bus.emit(tick, 1) == 1
    del local_function
    gc.collect()
    assert probe() is None
    assert not sub.active
    assert bus.emit(tick, 2) == 0
    assert log == [1]


def test_weak_true_holds_a_lambda_weakly(bus, tick):
    handler = lambda p: None  # noqa: E731
    sub = bus.subscribe(tick, handler, weak=True)
    assert bus.emit(tick, 1) == 1
    del handler
    gc.collect()
    assert not sub.active
    assert bus.emit(tick, 1) == 0


def test_weak_true_holds_a_callable_object_weakly(bus, tick):
    obj = CallableHandler([])
    probe = weakref.ref(obj)
    sub = bus.subscribe(tick, obj, weak=True)
    del obj
    gc.collect()
    assert probe() is None
    assert not sub.active


def test_on_decorator_accepts_weak(bus, tick):
    log = []
    obj = Listener(log)
    bus.on(tick, weak=False)(obj.on_tick)
    probe = weakref.ref(obj)
    del obj
    gc.collect()
    assert probe() is not None
    assert bus.emit(tick, 1) == 1


def test_unsubscribe_releases_a_strong_handler(bus, tick):
    obj = CallableHandler([])
    probe = weakref.ref(obj)
    sub = bus.subscribe(tick, obj)
    del obj
    sub.unsubscribe()
    del sub                                 # a Subscription keeps its .handler
    gc.collect()
    assert probe() is None


def test_many_weak_subscriptions_die_without_leaking_subscriptions(bus, tick):
    objs = [Listener([]) for _ in range(50)]
    for o in objs:
        bus.subscribe(tick, o.on_tick)
    assert bus.stats()["subscriptions"] == 50
    del objs, o
    gc.collect()
    assert bus.stats()["subscriptions"] == 0
    assert bus.emit(tick, 1) == 0


# -- dropping the bus ------------------------------------------------------------------------

def test_del_bus_frees_its_handlers(make_bus):
    bus = make_bus()
    t = bus.event_type("t")
    obj = CallableHandler([])
    probe = weakref.ref(obj)
    bus.subscribe(t, obj)
    bus.emit(t, 1)
    del obj, bus
    gc.collect()
    assert probe() is None


def test_del_bus_frees_a_handler_that_refers_to_the_bus(make_bus):
    # The common re-entrant shape: a handler that keeps the bus to emit on it.
    bus = make_bus()
    t = bus.event_type("t")
    other = bus.event_type("other")

    class Relay:
        def __init__(self, bus):
            self.bus = bus

        def __call__(self, payload):
            self.bus.emit(other, payload)

    relay = Relay(bus)
    probe = weakref.ref(relay)
    bus_probe = weakref.ref(bus)
    bus.subscribe(t, relay)
    bus.emit(t, 1)
    del relay, bus
    gc.collect()
    assert probe() is None, "a reference cycle through the bus keeps the handler alive"
    assert bus_probe() is None


def _bus_with_a_closure_handler(make_bus):
    """A bus whose handler closes over the bus itself; returns weak probes only."""
    bus = make_bus()
    t = bus.event_type("t")

    class Marker:
        pass

    marker = Marker()

    def handler(payload):
        if payload:
            bus.emit(t, payload - 1)
        return marker

    bus.subscribe(t, handler)
    bus.emit(t, 2)
    return weakref.ref(marker), weakref.ref(bus)


def test_del_bus_frees_a_closure_handler_that_refers_to_the_bus(make_bus):
    marker_probe, bus_probe = _bus_with_a_closure_handler(make_bus)
    gc.collect()
    assert marker_probe() is None, "a reference cycle through the bus keeps the handler alive"
    assert bus_probe() is None


def test_del_bus_frees_a_self_unsubscribing_handler(make_bus):
    bus = make_bus()
    t = bus.event_type("t")
    obj = CallableHandler([])
    probe = weakref.ref(obj)
    holder = {}
    holder["sub"] = bus.subscribe(t, obj)
    obj.sub = holder["sub"]          # handler -> subscription -> handler
    del obj, bus, holder
    gc.collect()
    assert probe() is None


def test_subscription_outliving_its_bus_is_harmless(make_bus):
    bus = make_bus()
    t = bus.event_type("t")
    sub = bus.subscribe(t, lambda p: None)
    del bus
    gc.collect()
    sub.unsubscribe()
    sub.unsubscribe()
    assert not sub.active


def test_emitted_payload_is_not_retained(bus, tick):
    class Payload:
        pass

    bus.subscribe(tick, lambda p: None)
    payload = Payload()
    probe = weakref.ref(payload)
    bus.emit(tick, payload)
    del payload
    gc.collect()
    assert probe() is None


def test_failed_payload_and_exception_are_not_retained(make_bus, caplog):
    bus = make_bus(on_error="log")
    t = bus.event_type("t")

    class Payload:
        pass

    def fail(payload):
        raise ValueError("x")

    bus.subscribe(t, fail)
    payload = Payload()
    probe = weakref.ref(payload)
    with caplog.at_level(logging.CRITICAL + 1, logger="ringbus"):
        bus.emit(t, payload)
    del payload
    caplog.clear()
    gc.collect()
    assert probe() is None
