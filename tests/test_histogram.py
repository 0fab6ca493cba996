"""ringbus.Histogram (issue 14): percentiles within the stated relative error of the exact
nearest-rank percentiles of known distributions, exact below 64, merge as if recorded in one,
the range's overflow counted with max exact, bad input refused at the call."""
import math
import pickle
import random

import pytest

from ringbus import Histogram
from ringbus._histogram import RELATIVE_ERROR, TOP

QS = [0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100]


def _exact(values, p):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _check(h, values):
    for p in QS:
        want = _exact(values, p)
        got = h.percentile(p)
        assert abs(got - want) <= want * RELATIVE_ERROR, (p, got, want)
    assert (h.count, h.min, h.max, h.total) == (len(values), min(values), max(values),
                                                sum(values))


@pytest.mark.parametrize("name, draw", [
    ("uniform 20 ns - 10 ms", lambda r: r.randint(20, 10_000_000)),
    ("lognormal around 1 µs", lambda r: int(r.lognormvariate(7, 1.5))),
    ("exponential, mean 50 µs", lambda r: int(r.expovariate(1 / 50_000))),
    ("bimodal: 200 ns and 3 ms", lambda r: r.choice((r.randint(150, 250),
                                                     r.randint(2_900_000, 3_100_000)))),
    ("minutes", lambda r: r.randint(60 * 10**9, 600 * 10**9)),
])
def test_percentiles_are_within_the_relative_error_of_the_exact_ones(name, draw):
    rng = random.Random(name)
    values = [draw(rng) for _ in range(50_000)]
    h = Histogram()
    assert h.record_many(values) == len(values)
    _check(h, values)


def test_small_values_are_exact():
    h = Histogram()
    values = list(range(64)) * 3
    h.record_many(values)
    for p in QS:
        assert h.percentile(p) == _exact(values, p)


def test_merge_is_recording_both_in_one():
    rng = random.Random(3)
    a_values = [rng.randint(0, 10**7) for _ in range(20_000)]
    b_values = [rng.randint(10**5, 10**9) for _ in range(20_000)]
    a, b, both = Histogram(), Histogram(), Histogram()
    a.record_many(a_values)
    b.record_many(b_values)
    both.record_many(a_values + b_values)
    a.merge(b)
    assert a.snapshot() == both.snapshot()
    assert a.buckets() == both.buckets()
    _check(a, a_values + b_values)


def test_values_past_the_range_are_counted_and_max_stays_exact():
    h = Histogram()
    h.record_many([1_000, TOP - 1, TOP, TOP * 1000])
    assert h.overflow == 2
    assert h.max == TOP * 1000 and h.percentile(100) == TOP * 1000
    assert h.percentile(25) == 1_000


def test_empty_copy_reset_and_pickle():
    h = Histogram()
    assert h.snapshot() == {"count": 0, "min": None, "max": None, "mean": None, "p50": None,
                            "p90": None, "p99": None, "p99_9": None, "overflow": 0}
    assert h.percentile(50) == 0
    h.record_many([5, 500, 50_000])
    c = h.copy()
    h.reset()
    assert h.count == 0 and c.count == 3 and c.mean == pytest.approx(50_505 / 3)
    again = pickle.loads(pickle.dumps(c))
    assert again.snapshot() == c.snapshot() and again.buckets() == c.buckets()


@pytest.mark.parametrize("value, error", [(-1, ValueError), (2**64, ValueError),
                                          (1.5, TypeError), (True, TypeError),
                                          ("10", TypeError)])
def test_bad_values_are_refused_naming_what_was_expected(value, error):
    with pytest.raises(error, match="value must be"):
        Histogram().record(value)


@pytest.mark.parametrize("p", [0, -5, 100.5, float("nan")])
def test_bad_percentiles_are_refused(p):
    with pytest.raises(ValueError, match=r"p must be in \(0, 100\]"):
        Histogram().percentile(p)
