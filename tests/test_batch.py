"""emit_batch / publish_batch / subscribe_batch through the public API."""
import pytest

np = pytest.importorskip("numpy")

import ringbus  # noqa: E402

TICK = np.dtype([("px", "f8"), ("qty", "i8")])


@pytest.fixture
def bus():
    return ringbus.Bus()


def test_batch_subscriber_gets_each_types_rows_contiguous_in_original_order(bus):
    a, b = bus.event_type("a"), bus.event_type("b")
    got = {}
    bus.subscribe_batch(a, lambda v: got.setdefault("a", v.copy()))
    bus.subscribe_batch(b, lambda v: got.setdefault("b", v.copy()))
    types = np.array([b, a, a, b, a])
    rows = np.array([(1.0, 1), (2.0, 2), (3.0, 3), (4.0, 4), (5.0, 5)], dtype=TICK)
    assert bus.emit_batch(types, rows) == 5
    assert got["a"]["qty"].tolist() == [2, 3, 5]
    assert got["b"]["qty"].tolist() == [1, 4]
    assert got["a"].dtype == TICK


def test_batch_handler_is_called_once_per_type_per_batch(bus):
    a = bus.event_type("a")
    calls = []
    bus.subscribe_batch(a, lambda v: calls.append(len(v)))
    bus.emit_batch(np.full(1000, a), np.arange(1000))
    assert calls == [1000]


def test_per_event_subscribers_receive_each_row_as_a_scalar(bus):
    a = bus.event_type("a")
    got = []
    bus.subscribe(a, got.append)
    bus.emit_batch(np.array([a, a]), np.array([(1.5, 7), (2.5, 8)], dtype=TICK))
    assert [int(r["qty"]) for r in got] == [7, 8]
    assert all(isinstance(r, np.void) for r in got)


def test_order_graph_applies_to_mixed_batch_and_per_event_handlers(bus):
    a = bus.event_type("a")
    log = []
    bus.subscribe(a, lambda r: log.append(("late", int(r))), priority=-5)
    bus.subscribe_batch(a, lambda v: log.append(("batch", v.tolist())), name="b")
    bus.subscribe(a, lambda r: log.append(("first", int(r))), priority=5)
    bus.subscribe(a, lambda r: log.append(("after-b", int(r))), after="b", priority=9)
    bus.emit_batch(np.array([a, a]), np.array([1, 2]))
    assert log == [("first", 1), ("first", 2), ("batch", [1, 2]),
                   ("after-b", 1), ("late", 1), ("after-b", 2), ("late", 2)]


def test_types_are_dispatched_in_ascending_id_order(bus):
    ids = [bus.event_type(n) for n in "abc"]
    seen = []
    for t in ids:
        bus.subscribe_batch(t, lambda v, t=t: seen.append(t))
    bus.emit_batch(np.array([ids[2], ids[0], ids[1], ids[2]]), np.arange(4))
    assert seen == sorted(ids)


def test_errors_in_batch_handlers_go_to_the_policy_and_others_run():
    errors = []
    bus = ringbus.Bus(on_error=lambda t, p, s, e: errors.append((t, type(e))))
    a = bus.event_type("a")
    got = []
    bus.subscribe_batch(a, lambda v: 1 / 0)
    bus.subscribe_batch(a, lambda v: got.append(len(v)))
    bus.emit_batch(np.array([a, a]), np.array([1, 2]))
    assert errors == [(a, ZeroDivisionError)]
    assert got == [2]
    assert bus.stats()["handler_errors"] == 1


def test_emit_does_not_call_batch_subscribers(bus):
    a = bus.event_type("a")
    calls = []
    bus.subscribe_batch(a, calls.append)
    assert bus.emit(a, 1) == 0
    assert calls == []


def test_batch_subscription_unsubscribes(bus):
    a = bus.event_type("a")
    calls = []
    sub = bus.subscribe_batch(a, calls.append)
    sub.unsubscribe()
    bus.emit_batch(np.array([a]), np.array([1]))
    assert calls == []
    assert bus.subscriptions(a) == ()


@pytest.mark.parametrize("types, rows, exc, word", [
    ([0, 99], [1, 2], ValueError, "types"),
    ([0, -1], [1, 2], ValueError, "types"),
    (np.array([0.0, 1.0]), [1, 2], TypeError, "integer"),
    ([0], [1, 2], ValueError, "length"),
    (np.zeros((2, 2), dtype=np.int64), [1, 2], ValueError, "1-D"),
    ([0, 0], np.zeros((2, 2)), ValueError, "1-D"),
])
def test_bad_batches_raise_before_any_handler_runs(bus, types, rows, exc, word):
    a = bus.event_type("a")
    calls = []
    bus.subscribe(a, calls.append)
    bus.subscribe_batch(a, calls.append)
    with pytest.raises(exc, match=word):
        bus.emit_batch(np.asarray(types), np.asarray(rows))
    with pytest.raises(exc, match=word):
        bus.publish_batch(np.asarray(types), np.asarray(rows))
    assert calls == []
    assert bus.pending == 0


def test_publish_batch_is_copied_and_dispatched_in_order_with_other_events(bus):
    a = bus.event_type("a")
    log = []
    bus.subscribe(a, lambda r: log.append(int(r)))
    types = np.array([a, a])
    rows = np.array([2, 3])
    bus.publish(a, 1)
    assert bus.publish_batch(types, rows)
    bus.publish(a, 4)
    rows[:] = -1                      # the queued batch is a copy
    bus.drain()
    assert log == [1, 2, 3, 4]


def test_publish_batch_through_the_consumer_thread(bus):
    a = bus.event_type("a")
    total = []
    bus.subscribe_batch(a, lambda v: total.append(int(v.sum())))
    with bus.running():
        for _ in range(100):
            bus.publish_batch(np.full(10, a), np.arange(10))
    assert sum(total) == 100 * 45


def test_empty_batch_is_fine(bus):
    bus.event_type("a")
    assert bus.emit_batch(np.array([], dtype=np.int64), np.array([])) == 0


@pytest.mark.parametrize("rows", [
    np.array(["w", "x", "y", "z"], dtype=object),          # references: numpy owns them
    np.arange(8)[::2],                                      # strided, not contiguous
    np.array([b"ab", b"cd", b"ef", b"gh"]),                 # 2-byte rows
    np.array([(1, 2, 3), (4, 5, 6), (7, 8, 9), (1, 1, 1)], dtype="i4,i4,i4"),
])
def test_rows_of_any_layout_are_grouped_in_original_order(bus, rows):
    a, b = bus.event_type("a"), bus.event_type("b")
    got = {}
    bus.subscribe_batch(a, lambda v: got.__setitem__("a", v.tolist()))
    bus.subscribe_batch(b, lambda v: got.__setitem__("b", v.tolist()))
    bus.emit_batch(np.array([a, b, a, b]), rows)
    expected = rows.tolist()
    assert got == {"a": [expected[0], expected[2]], "b": [expected[1], expected[3]]}
