"""request() with a handler but no consumer running and no timeout would wait forever: the
user gets a clear signal (a RuntimeWarning and a warning on the ``ringbus`` logger after a
grace period; with a timeout, the TimeoutError says nothing dispatched it)."""
import asyncio
import logging
import time
import warnings

import pytest

import ringbus
from ringbus import aio


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(aio, "UNSERVED_REQUEST_GRACE", 0.05)


def _wait_for(cond, limit=5.0):
    deadline = time.monotonic() + limit
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def test_request_outside_a_loop_with_no_consumer_warns(short_grace, caplog):
    bus = ringbus.Bus()
    q = bus.event_type("aio.unserved.q")
    bus.subscribe(q, lambda p: p + 1)
    with caplog.at_level(logging.WARNING, logger="ringbus"), warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the timer thread's warning; the log is checked
        fut = bus.request(q, 1)
        assert _wait_for(lambda: any("never dispatched" in r.getMessage()
                                     for r in caplog.records))
    msg = next(r.getMessage() for r in caplog.records if "never dispatched" in r.getMessage())
    assert "no consumer is running" in msg and "bus.attach()" in msg and "bus.drain()" in msg
    # It is a hint, not a failure: a later drain still answers it.
    bus.drain()
    assert fut.result(timeout=5) == 2


def test_request_in_a_loop_with_no_consumer_warns(short_grace):
    bus = ringbus.Bus()
    q = bus.event_type("aio.unserved.loop")
    bus.subscribe(q, lambda p: p * 2)

    async def main():
        fut = bus.request(q, 21)
        with pytest.warns(RuntimeWarning, match="no consumer is running"):
            await asyncio.sleep(0.3)
        bus.attach()
        try:
            return await asyncio.wait_for(fut, 5)
        finally:
            bus.detach()
            await asyncio.sleep(0)
    assert asyncio.run(main()) == 42


def test_no_warning_when_a_drain_follows(short_grace, caplog):
    bus = ringbus.Bus()
    q = bus.event_type("aio.unserved.drained")
    bus.subscribe(q, lambda p: p)
    with caplog.at_level(logging.WARNING, logger="ringbus"):
        fut = bus.request(q, 7)
        bus.drain()
        assert fut.result(timeout=5) == 7
        time.sleep(0.2)
    assert not [r for r in caplog.records if "never dispatched" in r.getMessage()]


def test_no_warning_with_consumer_threads(short_grace, caplog):
    bus = ringbus.Bus()
    q = bus.event_type("aio.unserved.threads")
    bus.subscribe(q, lambda p: p)
    with caplog.at_level(logging.WARNING, logger="ringbus"), bus.running():
        assert bus.request(q, 3).result(timeout=5) == 3
        time.sleep(0.2)
    assert not [r for r in caplog.records if "never dispatched" in r.getMessage()]


def test_timeout_error_says_nothing_dispatched_it():
    bus = ringbus.Bus()
    q = bus.event_type("aio.unserved.timeout")
    bus.subscribe(q, lambda p: p)
    fut = bus.request(q, 1, timeout=0.05)
    with pytest.raises(TimeoutError, match="never dispatched: no consumer is running"):
        fut.result(timeout=5)
    bus.drain()     # the queued request is served and finds itself answered: no error
