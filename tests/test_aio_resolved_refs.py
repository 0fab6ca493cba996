"""request() and expect() made outside an event loop: once resolved, they hold nothing of the
caller's (payload, predicate, closures) any more, however long their timeout still runs."""
import gc
import weakref

import ringbus


class Payload:
    pass


def test_request_answered_early_frees_its_payload():
    bus = ringbus.Bus()
    quote = bus.event_type("aio.refs.quote")
    bus.subscribe(quote, lambda p: "px")
    payload = Payload()
    gone = weakref.ref(payload)
    fut = bus.request(quote, payload, timeout=3600)
    del payload
    bus.drain()
    assert fut.result(timeout=5) == "px"
    gc.collect()
    assert gone() is None, "the answered request's payload is still held (by its timer)"


def test_expect_resolved_early_frees_its_predicate():
    bus = ringbus.Bus()
    fill = bus.event_type("aio.refs.fill")

    class Predicate:
        def __call__(self, payload):
            return payload == "mine"

    predicate = Predicate()
    gone = weakref.ref(predicate)
    fut = bus.expect(fill, predicate, timeout=3600)
    del predicate
    bus.emit(fill, "other")
    bus.emit(fill, "mine")
    assert fut.result(timeout=5) == "mine"
    gc.collect()
    # The caller still holds the future; the predicate must not ride along with it.
    assert gone() is None, "the resolved expect's predicate is still held"
    assert not bus.subscriptions(fill)


def test_expect_cancelled_frees_its_predicate():
    bus = ringbus.Bus()
    fill = bus.event_type("aio.refs.fill2")
    predicate = lambda p: True       # noqa: E731
    gone = weakref.ref(predicate)
    fut = bus.expect(fill, predicate, timeout=3600)
    del predicate
    assert fut.cancel()
    gc.collect()
    assert gone() is None
    assert not bus.subscriptions(fill)


def test_many_early_answers_do_not_pile_up_timer_rows():
    from ringbus import aio
    bus = ringbus.Bus()
    quote = bus.event_type("aio.refs.many")
    bus.subscribe(quote, lambda p: p)
    for i in range(1000):
        fut = bus.request(quote, i, timeout=3600)
        bus.drain()
        assert fut.result(timeout=5) == i
    # Rows of cancelled timeouts are compacted away, not kept for an hour.
    assert len(aio._timers._heap) < 200


def test_timeout_still_fires():
    bus = ringbus.Bus()
    quote = bus.event_type("aio.refs.late")
    def take_and_never_answer(payload):
        ringbus.current_request()       # taken: the request stays open until its timeout
    bus.subscribe(quote, take_and_never_answer)
    fut = bus.request(quote, 1, timeout=0.05)
    bus.drain()
    try:
        fut.result(timeout=5)
    except TimeoutError:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected TimeoutError")
