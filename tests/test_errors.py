"""Error policies: isolation of Exception, log / raise / callable, BaseException at once."""
import logging

import pytest


class Boom(Exception):
    pass


# -- isolation and the default policy ("log") ----------------------------------------------

def test_exception_in_handler_does_not_stop_the_others(bus, tick, rec):
    bus.subscribe(tick, rec.handler("a"))
    bus.subscribe(tick, rec.handler("bad", fail=Boom("x")))
    bus.subscribe(tick, rec.handler("c"))
    bus.emit(tick, 1)
    assert rec.labels == ["a", "bad", "c"]


def test_default_policy_is_log_and_emit_returns_normally(bus, tick, rec, caplog):
    bus.subscribe(tick, rec.handler("bad", fail=Boom("x")))
    bus.subscribe(tick, rec.handler("ok"))
    with caplog.at_level(logging.ERROR, logger="ringbus"):
        n = bus.emit(tick, 1)
    assert n == 2        # the failing handler ran too
    assert rec.labels == ["bad", "ok"]


def test_default_policy_counts_handler_errors(bus, tick, rec, caplog):
    bus.subscribe(tick, rec.handler("bad", fail=Boom("x")))
    bus.subscribe(tick, rec.handler("bad2", fail=KeyError("y")))
    bus.subscribe(tick, rec.handler("ok"))
    with caplog.at_level(logging.ERROR, logger="ringbus"):
        bus.emit(tick, 1)
        bus.emit(tick, 2)
    assert bus.stats()["handler_errors"] == 4
    assert bus.stats()["handler_calls"] == 6


def test_default_policy_logs_on_ringbus_logger_with_traceback(bus, tick, caplog):
    def exploding_handler(payload):
        raise Boom("kaboom-42")

    bus.subscribe(tick, exploding_handler)
    with caplog.at_level(logging.DEBUG, logger="ringbus"):
        bus.emit(tick, "p")
    records = [r for r in caplog.records if r.name == "ringbus"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno >= logging.WARNING
    assert record.exc_info is not None
    assert record.exc_info[0] is Boom
    assert "Traceback" in caplog.text
    assert "kaboom-42" in caplog.text
    assert "exploding_handler" in caplog.text     # the frame of the failing handler


def test_log_policy_explicit(make_bus, rec, caplog):
    bus = make_bus(on_error="log")
    t = bus.event_type("t")
    bus.subscribe(t, rec.handler("bad", fail=Boom("x")))
    bus.subscribe(t, rec.handler("ok"))
    with caplog.at_level(logging.ERROR, logger="ringbus"):
        assert bus.emit(t, 1) == 2
    assert any(r.name == "ringbus" and r.exc_info for r in caplog.records)
    assert bus.stats()["handler_errors"] == 1


def test_bus_keeps_working_after_handler_errors(bus, tick, rec, caplog):
    bus.subscribe(tick, rec.handler("bad", fail=Boom("x")))
    with caplog.at_level(logging.CRITICAL + 1, logger="ringbus"):
        for i in range(5):
            bus.emit(tick, i)
    bus.subscribe(tick, rec.handler("ok"))
    with caplog.at_level(logging.CRITICAL + 1, logger="ringbus"):
        assert bus.emit(tick, 9) == 2
    assert rec.calls[-1] == ("ok", 9)


# -- on_error="raise" ------------------------------------------------------------------------

def test_raise_policy_raises_after_the_remaining_handlers_ran(make_bus, rec):
    bus = make_bus(on_error="raise")
    t = bus.event_type("t")
    err = Boom("first")
    bus.subscribe(t, rec.handler("a"))
    bus.subscribe(t, rec.handler("bad", fail=err))
    bus.subscribe(t, rec.handler("c"))
    with pytest.raises(Boom) as excinfo:
        bus.emit(t, 1)
    assert excinfo.value is err
    assert rec.labels == ["a", "bad", "c"]


def test_raise_policy_with_two_failing_handlers(make_bus, rec):
    bus = make_bus(on_error="raise")
    t = bus.event_type("t")
    first, second = Boom("first"), KeyError("second")
    bus.subscribe(t, rec.handler("ok1"))
    bus.subscribe(t, rec.handler("bad1", fail=first))
    bus.subscribe(t, rec.handler("ok2"))
    bus.subscribe(t, rec.handler("bad2", fail=second))
    bus.subscribe(t, rec.handler("ok3"))
    with pytest.raises(Boom) as excinfo:
        bus.emit(t, 1)
    assert excinfo.value is first
    others = list(excinfo.value.other_errors)
    assert len(others) == 1
    assert others[0] is second
    assert rec.labels == ["ok1", "bad1", "ok2", "bad2", "ok3"]


def test_raise_policy_first_means_first_in_dispatch_order(make_bus, rec):
    bus = make_bus(on_error="raise")
    t = bus.event_type("t")
    bus.subscribe(t, rec.handler("late", fail=KeyError("late")), priority=0)
    bus.subscribe(t, rec.handler("early", fail=Boom("early")), priority=5)
    with pytest.raises(Boom):
        bus.emit(t, 1)
    assert rec.labels == ["early", "late"]


def test_raise_policy_bus_works_after_raising(make_bus, rec):
    bus = make_bus(on_error="raise")
    t = bus.event_type("t")
    sub = bus.subscribe(t, rec.handler("bad", fail=Boom("x")))
    with pytest.raises(Boom):
        bus.emit(t, 1)
    sub.unsubscribe()
    bus.subscribe(t, rec.handler("ok"))
    assert bus.emit(t, 2) == 1
    assert rec.calls[-1] == ("ok", 2)


def test_raise_policy_without_errors_returns_count(make_bus):
    bus = make_bus(on_error="raise")
    t = bus.event_type("t")
    bus.subscribe(t, lambda p: None)
    assert bus.emit(t, 1) == 1


# -- on_error=callable -----------------------------------------------------------------------

def test_callable_policy_receives_type_payload_subscription_exception(make_bus, rec):
    seen = []
    bus = make_bus(on_error=lambda *args: seen.append(args))
    t = bus.event_type("t")
    err = Boom("x")
    payload = {"px": 101.5}
    bus.subscribe(t, rec.handler("ok1"))
    sub = bus.subscribe(t, rec.handler("bad", fail=err), name="bad")
    bus.subscribe(t, rec.handler("ok2"))
    assert bus.emit(t, payload) == 3
    assert rec.labels == ["ok1", "bad", "ok2"]
    assert len(seen) == 1
    event_type, got_payload, got_sub, exc = seen[0]
    assert event_type == t
    assert got_payload is payload
    assert got_sub is sub
    assert exc is err


def test_callable_policy_called_once_per_failure(make_bus, rec):
    seen = []
    bus = make_bus(on_error=lambda t, p, s, e: seen.append((s.name, type(e))))
    t = bus.event_type("t")
    bus.subscribe(t, rec.handler("a", fail=Boom()), name="a")
    bus.subscribe(t, rec.handler("b", fail=KeyError()), name="b")
    bus.emit(t, 0)
    assert seen == [("a", Boom), ("b", KeyError)]


def test_callable_policy_exception_has_its_traceback(make_bus):
    seen = []
    bus = make_bus(on_error=lambda t, p, s, e: seen.append(e))
    t = bus.event_type("t")

    def failing(payload):
        raise Boom("tb")

    bus.subscribe(t, failing)
    bus.emit(t, 0)
    assert seen[0].__traceback__ is not None


# -- BaseException ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["log", "raise", "callable"])
@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_propagates_at_once_and_stops_remaining_handlers(
        make_bus, rec, policy, exc_type):
    seen = []
    bus = make_bus(on_error=(lambda *a: seen.append(a)) if policy == "callable" else policy)
    t = bus.event_type("t")
    bus.subscribe(t, rec.handler("first"))
    bus.subscribe(t, rec.handler("interrupt", fail=exc_type()))
    bus.subscribe(t, rec.handler("never"))
    with pytest.raises(exc_type):
        bus.emit(t, 1)
    assert rec.labels == ["first", "interrupt"]
    assert seen == []


def test_keyboard_interrupt_wins_over_collected_errors_in_raise_mode(make_bus, rec):
    bus = make_bus(on_error="raise")
    t = bus.event_type("t")
    bus.subscribe(t, rec.handler("bad", fail=Boom()))
    bus.subscribe(t, rec.handler("interrupt", fail=KeyboardInterrupt()))
    bus.subscribe(t, rec.handler("never"))
    with pytest.raises(KeyboardInterrupt):
        bus.emit(t, 1)
    assert rec.labels == ["bad", "interrupt"]


def test_keyboard_interrupt_is_not_counted_or_logged_as_a_handler_error(bus, tick, caplog):
    def interrupt(payload):
        raise KeyboardInterrupt

    bus.subscribe(tick, interrupt)
    with caplog.at_level(logging.DEBUG, logger="ringbus"):
        with pytest.raises(KeyboardInterrupt):
            bus.emit(tick, 1)
    assert bus.stats()["handler_errors"] == 0
    assert not [r for r in caplog.records if r.name == "ringbus"]


def test_bus_works_after_keyboard_interrupt(bus, tick, rec):
    sub = bus.subscribe(tick, rec.handler("interrupt", fail=KeyboardInterrupt()))
    for _ in range(3):
        with pytest.raises(KeyboardInterrupt):
            bus.emit(tick, 1)
    sub.unsubscribe()
    bus.subscribe(tick, rec.handler("ok"))
    assert bus.emit(tick, 2) == 1
    assert rec.calls[-1] == ("ok", 2)


def test_nested_keyboard_interrupt_unwinds_every_level(bus, rec):
    outer = bus.event_type("outer")
    inner = bus.event_type("inner")

    def relay(payload):
        rec.calls.append(("relay", payload))
        bus.emit(inner, payload)
        rec.calls.append(("after-inner", payload))

    bus.subscribe(outer, relay)
    bus.subscribe(outer, rec.handler("outer-next"))
    bus.subscribe(inner, rec.handler("interrupt", fail=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        bus.emit(outer, 1)
    assert rec.labels == ["relay", "interrupt"]
