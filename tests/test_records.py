"""RecordRing: fixed-size records published without Python objects, dispatched to batch
handlers as zero-copy numpy views. Behaviour through the public API, and bad input."""
import gc
import os
import threading
import time
import warnings

import pytest

try:
    import numpy as np     # at module level: .ci/sanitize leaves such files out of its leak check
except ImportError:        # pragma: no cover
    pytest.skip("numpy is needed for record rings", allow_module_level=True)

import ringbus
from ringbus import RecordRing, RingFull

TICK = np.dtype([("seq", "<i8"), ("price", "<f8")])


def ticks(lo, hi):
    return np.array([(i, i + 0.5) for i in range(lo, hi)], dtype=TICK)


class Collector:
    """A batch handler that keeps copies of what it saw."""

    def __init__(self):
        self.views = []

    def __call__(self, view):
        self.views.append(view.copy())

    @property
    def seqs(self):
        return [int(s) for v in self.views for s in v["seq"]]


# -- publishing and draining --------------------------------------------------------------

def test_publish_forms_and_drain_in_order():
    ring = RecordRing(TICK, 16)
    got = Collector()
    ring.subscribe(got)
    src = ticks(0, 4)
    assert ring.publish((0, 0.5)) is True                 # a tuple of field values
    assert ring.publish(src[1]) is True                   # a numpy void (array row)
    assert ring.publish(src[2:3]) is True                 # a 1-record array
    assert ring.publish(np.array(src[3])) is True         # a 0-d array
    assert ring.drain() == 4
    assert len(got.views) == 1
    np.testing.assert_array_equal(got.views[0], src)
    assert ring.published == ring.dispatched == 4
    assert ring.pending == 0 == len(ring)


def test_view_is_a_zero_copy_read_only_array_of_the_dtype():
    ring = RecordRing(TICK, 8)
    seen = []

    def handler(view):
        seen.append((type(view), view.dtype, view.shape, view.flags.writeable,
                     view.base is not None))
        with pytest.raises(ValueError):
            view["price"][0] = 1.0                        # the ring's slots are read-only

    ring.subscribe(handler)
    ring.publish_many(ticks(0, 3))
    ring.drain()
    assert seen == [(np.ndarray, TICK, (3,), False, True)]


def test_publish_many_array_and_sequence():
    ring = RecordRing(TICK, 64)
    got = Collector()
    ring.subscribe(got)
    assert ring.publish_many(ticks(0, 10)) == 10
    assert ring.publish_many([(10, 10.5), (11, 11.5)]) == 2
    assert ring.publish_many(ticks(0, 0)) == 0
    assert ring.publish_many(ticks(0, 20)[::2]) == 10     # not contiguous: copied first
    assert ring.drain() == 22
    assert got.seqs == list(range(12)) + list(range(0, 20, 2))


def test_wrap_around_hands_two_views_in_order():
    ring = RecordRing(TICK, 8)
    got = Collector()
    ring.subscribe(got)
    ring.publish_many(ticks(0, 6))
    ring.drain()
    ring.publish_many(ticks(6, 12))                       # slots 6, 7, then 0..3
    assert ring.drain() == 6
    assert [len(v) for v in got.views] == [6, 2, 4]
    assert got.seqs == list(range(12))
    assert ring.stats()["batches"] == 3


def test_drain_max_records():
    ring = RecordRing(TICK, 16)
    got = Collector()
    ring.subscribe(got)
    ring.publish_many(ticks(0, 10))
    assert ring.drain(max_records=0) == 0
    assert ring.drain(max_records=3) == 3
    assert ring.pending == 7
    assert ring.drain(4) == 4
    assert ring.drain() == 3
    assert got.seqs == list(range(10))
    assert ring.drain() == 0


def test_plain_dtype_and_padded_struct_dtype():
    ring = RecordRing(np.float64, 8)
    got = []
    ring.subscribe(lambda v: got.extend(v.tolist()))
    ring.publish(1.5)
    ring.publish(np.float64(2.5))
    ring.publish_many(np.array([3.5, 4.5]))
    ring.drain()
    assert got == [1.5, 2.5, 3.5, 4.5]

    aligned = np.dtype([("flag", "u1"), ("value", "<f8")], align=True)   # a C struct
    assert aligned.itemsize == 16
    ring = RecordRing(aligned, 4)
    out = []
    ring.subscribe(lambda v: out.extend(v.tolist()))
    ring.publish((1, 2.0))
    ring.drain()
    assert out == [(1, 2.0)]
    assert ring.record_size == 16


def test_handlers_run_in_subscription_order_and_unsubscribe():
    ring = RecordRing(TICK, 8)
    order = []
    a = ring.subscribe(lambda v: order.append(("a", len(v))))

    @ring.subscribe
    def b(view):
        order.append(("b", len(view)))

    assert ring.handlers == (a, b)
    ring.publish_many(ticks(0, 2))
    ring.drain()
    assert order == [("a", 2), ("b", 2)]
    assert ring.unsubscribe(a) is True
    assert ring.unsubscribe(a) is False
    ring.publish((5, 5.0))
    ring.drain()
    assert order[-1] == ("b", 1) and len(order) == 3


def test_subscribing_during_a_batch_takes_effect_from_the_next():
    ring = RecordRing(TICK, 8)
    late = Collector()

    def first(view):
        if not ring.handlers[1:]:
            ring.subscribe(late)

    ring.subscribe(first)
    ring.publish_many(ticks(0, 3))
    ring.drain()
    assert late.views == []
    ring.publish((3, 3.5))
    ring.drain()
    assert late.seqs == [3]


def test_records_without_handlers_are_dispatched_to_nobody():
    ring = RecordRing(TICK, 8)
    ring.publish_many(ticks(0, 5))
    assert ring.drain() == 5
    assert ring.stats() == {"published": 5, "dispatched": 5, "dropped": 0, "abandoned": 0,
                            "redelivered": 0, "pending": 0, "batches": 1, "errors": 0}


# -- flow control -------------------------------------------------------------------------

def test_try_publish_on_a_full_ring():
    ring = RecordRing(TICK, 4)
    assert [ring.try_publish((i, 0.0)) for i in range(6)] == [True] * 4 + [False] * 2
    assert ring.dropped == 0
    assert ring.pending == 4


def test_overflow_drop_counts():
    ring = RecordRing(TICK, 4, overflow="drop")
    got = Collector()
    ring.subscribe(got)
    assert [ring.publish((i, 0.0)) for i in range(5)] == [True] * 4 + [False]
    assert ring.publish_many(ticks(10, 13)) == 0
    assert ring.dropped == 4
    ring.drain(max_records=2)
    assert ring.publish_many(ticks(20, 25)) == 2
    assert ring.dropped == 7
    ring.drain()
    assert got.seqs == [0, 1, 2, 3, 20, 21]


def test_overflow_raise():
    ring = RecordRing(TICK, 4, overflow="raise")
    ring.publish_many(ticks(0, 3))
    with pytest.raises(RingFull) as info:
        ring.publish_many(ticks(3, 6))
    assert info.value.published == 1
    with pytest.raises(RingFull, match="overflow='raise'"):
        ring.publish((9, 9.0))
    assert ring.published == 4


def test_block_with_timeout_raises_ringfull():
    ring = RecordRing(TICK, 4)                            # overflow="block"
    ring.publish_many(ticks(0, 4))
    t0 = time.monotonic()
    with pytest.raises(RingFull, match="timeout"):
        ring.publish((4, 4.0), timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    with pytest.raises(RingFull):
        ring.publish_many(ticks(4, 6), timeout=0)
    # Under "drop" a timeout is a grace period: wait, then drop (tests/test_overflow_rule.py).
    dropping = RecordRing(TICK, 2, overflow="drop")
    dropping.publish_many(ticks(0, 2))
    assert dropping.publish((2, 2.0), timeout=0.01) is False
    assert dropping.dropped == 1


def test_blocked_publisher_proceeds_when_the_consumer_makes_room():
    ring = RecordRing(TICK, 4)
    got = Collector()
    ring.subscribe(got)
    ring.publish_many(ticks(0, 4))
    done = threading.Event()

    def producer():
        ring.publish_many(ticks(4, 10), timeout=10)
        done.set()

    th = threading.Thread(target=producer)
    th.start()
    while not done.is_set():
        ring.drain()
        time.sleep(0.001)
    th.join()
    ring.drain()
    assert got.seqs == list(range(10))


@pytest.mark.parametrize("threaded", [False, True])
def test_handler_publishing_into_its_full_ring_gets_ringfull(threaded):
    ring = RecordRing(TICK, 4, on_error="raise")
    errors = []

    def handler(view):
        try:
            for i in range(8):
                ring.publish((100 + i, 0.0))
        except RingFull as exc:
            errors.append(exc)
            raise

    ring.subscribe(handler)
    ring.publish_many(ticks(0, 2))
    if threaded:
        ring.start()
        with pytest.raises(RingFull, match="deadlock"):
            ring.stop(timeout=10)
    else:
        with pytest.raises(RingFull, match="deadlock"):
            ring.drain()
    assert len(errors) == 1


# -- errors -------------------------------------------------------------------------------

def test_on_error_log_counts_and_other_handlers_still_run(caplog):
    ring = RecordRing(TICK, 8)
    got = Collector()
    ring.subscribe(lambda v: 1 / 0)
    ring.subscribe(got)
    ring.publish_many(ticks(0, 3))
    with caplog.at_level("ERROR", logger="ringbus"):
        assert ring.drain() == 3
    assert got.seqs == [0, 1, 2]
    assert ring.errors == 1
    assert "ZeroDivisionError" in caplog.text


def test_on_error_raise_after_the_runs_handlers_ran():
    ring = RecordRing(TICK, 8, on_error="raise")
    got = Collector()
    ring.subscribe(lambda v: 1 / 0)
    ring.subscribe(got)
    ring.publish_many(ticks(0, 3))
    with pytest.raises(ZeroDivisionError):
        ring.drain()
    assert got.seqs == [0, 1, 2]
    assert ring.dispatched == 3 and ring.pending == 0


def test_on_error_callable():
    calls = []
    ring = RecordRing(TICK, 8, on_error=lambda h, view, exc: calls.append(
        (h, view["seq"].tolist(), type(exc))))
    bad = ring.subscribe(lambda v: [][0])
    ring.publish_many(ticks(0, 2))
    ring.drain()
    assert calls == [(bad, [0, 1], IndexError)]


def test_base_exception_stops_at_the_batch_and_keeps_later_records():
    ring = RecordRing(TICK, 8)
    got = Collector()
    state = {}

    def handler(view):
        got(view)
        if state.pop("interrupt", False):
            raise KeyboardInterrupt

    ring.subscribe(handler)
    ring.publish_many(ticks(0, 6))
    ring.drain()
    ring.publish_many(ticks(6, 10))                       # wraps: runs [6, 7] and [0, 1]
    state["interrupt"] = True
    with pytest.raises(KeyboardInterrupt):
        ring.drain()
    assert got.seqs == list(range(8))
    assert ring.pending == 2                              # the second run stayed queued
    assert ring.drain() == 2
    assert got.seqs == list(range(10))                    # each record once


def test_drain_guards():
    ring = RecordRing(TICK, 8)
    inner = []

    def handler(view):
        with pytest.raises(RuntimeError, match="drain"):
            ring.drain()
        inner.append(True)

    ring.subscribe(handler)
    ring.publish((1, 1.0))
    ring.drain()
    assert inner == [True]
    with pytest.raises(ValueError, match="max_records"):
        ring.drain(max_records=-1)
    ring.start()
    try:
        with pytest.raises(RuntimeError, match="stop"):
            ring.drain()
        with pytest.raises(RuntimeError, match="already started"):
            ring.start()
    finally:
        ring.stop()


def test_kept_view_warns_once():
    ring = RecordRing(TICK, 8)
    kept = []
    ring.subscribe(kept.append)
    ring.publish_many(ticks(0, 2))
    with pytest.warns(RuntimeWarning, match="copy"):
        ring.drain()
    ring.publish((2, 2.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ring.drain()


DERIVED = {
    "field": lambda v: v["seq"],
    "slice": lambda v: v[1:],
    "element_field": lambda v: v[0:1]["price"],
    "retyped": lambda v: v.view(np.uint8),
    "reshaped": lambda v: v.reshape(-1, 1),
    "base": lambda v: v.base,
    "memoryview": lambda v: memoryview(v),
}


@pytest.mark.parametrize("derive", list(DERIVED.values()), ids=list(DERIVED))
def test_an_array_derived_from_the_view_and_kept_warns(derive):
    """The view's slots are overwritten once the handler returns: so is every array derived
    from it without a copy, which the warning must catch too."""
    ring = RecordRing(TICK, 8)
    kept = []
    ring.subscribe(lambda view: kept.append(derive(view)))
    ring.publish_many(ticks(0, 2))
    with pytest.warns(RuntimeWarning, match="derived"):
        ring.drain()


def test_copies_and_temporaries_do_not_warn():
    ring = RecordRing(TICK, 8)
    kept = []

    def handler(view):
        kept.append(view.copy())
        kept.append(view["seq"].copy())
        kept.append(view["price"].sum())
        kept.append(view["seq"].tolist())
        kept.append(np.asarray(view["price"]) * 2)      # a new array
        tmp = view[1:]["seq"]                          # derived, dropped before returning
        kept.append(int(tmp[0]))

    ring.subscribe(handler)
    ring.publish_many(ticks(0, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ring.drain() == 3
    ring.publish_many(ticks(3, 6))
    assert kept[0]["seq"].tolist() == [0, 1, 2]          # the copies did not change


def test_a_kept_view_keeps_the_memory_alive():
    ring = RecordRing(TICK, 8)
    kept = []
    ring.subscribe(kept.append)
    ring.publish_many(ticks(0, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ring.drain()
    del ring
    gc.collect()
    assert kept[0]["seq"].tolist() == [0, 1, 2]           # memory still valid


# -- the consumer thread ------------------------------------------------------------------

@pytest.mark.parametrize("wait", ["block", "spin", "yield", "sleep"])
@pytest.mark.parametrize("producers", ["single", "multi"])
def test_consumer_thread(wait, producers):
    ring = RecordRing(TICK, 64, producers=producers, wait=wait)
    got = Collector()
    ring.subscribe(got)
    with ring.running():
        assert ring.started
        for lo in range(0, 1000, 100):
            ring.publish_many(ticks(lo, lo + 100))
        ring.publish((1000, 0.0))
    assert not ring.started
    assert got.seqs == list(range(1001))
    assert ring.pending == 0


def test_stop_without_drain_leaves_records_queued():
    ring = RecordRing(TICK, 64)
    release = threading.Event()
    got = Collector()

    def slow(view):
        got(view)
        release.wait(10)

    ring.subscribe(slow)
    ring.start()
    ring.publish((0, 0.0))
    while not got.views:
        time.sleep(0.001)
    ring.publish_many(ticks(1, 10))
    threading.Timer(0.05, release.set).start()
    ring.stop(drain=False, timeout=10)
    assert got.seqs == [0]
    assert ring.pending == 9
    assert ring.drain() == 9


def test_stop_reraises_what_ended_the_consumer_thread():
    ring = RecordRing(TICK, 8, on_error="raise")
    ring.subscribe(lambda v: 1 / 0)
    ring.start()
    ring.publish((0, 0.0))
    with pytest.raises(ZeroDivisionError):
        ring.stop(timeout=10)
    assert not ring.started
    ring.stop()                                           # stopped: nothing to do


def test_stop_from_the_consumer_thread_is_refused():
    ring = RecordRing(TICK, 8, on_error="raise")
    ring.subscribe(lambda v: ring.stop())
    ring.start()
    ring.publish((0, 0.0))
    with pytest.raises(RuntimeError, match="wait for itself"):
        ring.stop(timeout=10)


# -- construction and bad input -----------------------------------------------------------

def test_attributes_and_repr():
    ring = RecordRing(TICK, 32, producers="single", overflow="drop", wait="yield")
    assert (ring.dtype, ring.capacity, ring.record_size) == (TICK, 32, 16)
    assert (ring.producers, ring.overflow, ring.wait) == ("single", "drop", "yield")
    assert "RecordRing" in repr(ring) and "capacity=32" in repr(ring)
    assert RecordRing("<i4,<f4", 2).dtype == np.dtype("<i4,<f4")    # any dtype spec


@pytest.mark.parametrize("dtype", [42, "not-a-type", {"names": 1}])
def test_not_a_dtype(dtype):
    with pytest.raises(TypeError, match="dtype"):
        RecordRing(dtype, 8)


@pytest.mark.parametrize("dtype", [object, np.dtype([("a", "<i8"), ("b", "O")]),
                                   np.dtype([("inner", [("x", "O")])])])
def test_object_dtypes_are_refused(dtype):
    with pytest.raises(TypeError, match="Python objects"):
        RecordRing(dtype, 8)


def test_subarray_and_empty_dtypes_are_refused():
    with pytest.raises(TypeError, match="subarray"):
        RecordRing(np.dtype(("<f8", (3,))), 8)
    with pytest.raises(ValueError, match="at least one byte"):
        RecordRing(np.dtype([]), 8)


@pytest.mark.parametrize("capacity", [0, 1, 3, 12, -4, 1 << 31])
def test_capacity_must_be_a_power_of_two(capacity):
    with pytest.raises(ValueError, match="power of two"):
        RecordRing(TICK, capacity)


def test_capacity_bytes_limit():
    with pytest.raises(ValueError, match="GiB"):
        RecordRing(np.dtype("V4096"), 1 << 30)


@pytest.mark.parametrize("kwargs, match", [
    ({"producers": "many"}, "producers"),
    ({"overflow": "wait"}, "overflow"),
    ({"wait": "busy"}, "wait"),
    ({"on_error": "ignore"}, "on_error"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RecordRing(TICK, 8, **kwargs)


@pytest.mark.parametrize("record, exc, match", [
    ((1,), ValueError, "does not fit"),                           # too few fields
    ((1, 2.0, 3), ValueError, "does not fit"),                    # too many
    (("x", 1.0), ValueError, "does not fit"),
    (None, TypeError, "tuple of its 2 field values"),
    (5, TypeError, "tuple of its 2 field values"),                # numpy would broadcast it
    ([1, 2.0], TypeError, "tuple of its 2 field values"),
    (ticks(0, 2), ValueError, "publish_many"),                    # several records
    (((1, 1.0), (2, 2.0)), TypeError, "does not fit"),
    (np.zeros(1, dtype="<i8"), TypeError, "dtype"),               # another dtype
    (np.zeros(1, dtype=[("seq", "<i4"), ("price", "<f8")])[0], TypeError, "dtype"),
])
def test_wrong_record_shape_is_refused_and_nothing_is_published(record, exc, match):
    ring = RecordRing(TICK, 8)
    with pytest.raises(exc, match=match):
        ring.publish(record)
    with pytest.raises(exc, match=match):
        ring.try_publish(record)
    assert ring.published == 0


@pytest.mark.parametrize("records, exc, match", [
    (np.zeros((2, 2), dtype=TICK), ValueError, "1-D"),
    (np.zeros(3, dtype="<f8"), TypeError, "astype"),
    ([(1,), (2,)], ValueError, "do not fit"),
    ([(1, 1.0), ("x", 2.0)], ValueError, "do not fit"),
    (5, TypeError, "sequence of records"),
    ([1, 2, 3], TypeError, "tuples of its 2 field values"),       # numpy would broadcast them
    (np.zeros(2, dtype=TICK)[0], TypeError, "use publish"),       # one record
])
def test_bad_publish_many_input(records, exc, match):
    ring = RecordRing(TICK, 8)
    with pytest.raises(exc, match=match):
        ring.publish_many(records)
    assert ring.published == 0


@pytest.mark.parametrize("timeout", [-1, float("nan"), "1"])
def test_bad_timeout(timeout):
    ring = RecordRing(TICK, 8)
    with pytest.raises((ValueError, TypeError)):
        ring.publish((1, 1.0), timeout=timeout)
    assert ring.published == 0


def test_handler_must_be_callable():
    ring = RecordRing(TICK, 8)
    with pytest.raises(TypeError, match="callable"):
        ring.subscribe(42)


def test_get_include_has_the_c_api():
    inc = ringbus.get_include()
    assert os.path.isfile(os.path.join(inc, "ringbus_records.h"))
    assert os.path.isfile(os.path.join(inc, "records.pxd"))
    assert "RecordRing" in ringbus.__all__ and "get_include" in ringbus.__all__
