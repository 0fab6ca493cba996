"""pytest-benchmark suites comparing ringbus with its peers, topology by topology.

Run them with ``pytest bench --benchmark-only``; they are not part of the default test run
(``testpaths = ["tests"]``). Each topology is one benchmark group: ringbus, the floor (direct
calls) and every installed peer, so pytest-benchmark's table compares them side by side.

One round is a loop of 1,000 events, so **a time in µs reads as ns per event**; the table is
printed in µs unless ``--benchmark-time-unit`` says otherwise. ``python -m ringbus bench``
measures the same loops with interleaved rounds and prints ratios and the issue's targets.
"""
from __future__ import annotations

import functools
import itertools
from typing import Callable

import pytest

from ringbus import benchmarks
from ringbus.benchmarks import event_types
from ringbus.benchmarks.measure import Case, Contender, rebind

EVENTS_PER_ROUND = 1_000
#: The types cases walk a long random sequence, a slice per round: rounds that repeated one
#: short slice would keep its few types in cache and hide what many types cost.
TYPES_SEQUENCE = 100_000
TYPE_COUNTS = (1_000, 100_000)


@functools.lru_cache(maxsize=None)
def case(name: str) -> Case:
    """Case ``name``, set up once per session (wiring 100,000 types takes seconds)."""
    is_types = name.startswith(event_types.PREFIX)
    settings = benchmarks.Settings(
        events=TYPES_SEQUENCE if is_types else EVENTS_PER_ROUND,
        fan_out_events=EVENTS_PER_ROUND, type_counts=TYPE_COUNTS)
    return benchmarks.build_case(name, settings)


def per_round(c: Contender) -> Callable[[], int]:
    """A callable that runs ``EVENTS_PER_ROUND`` events of ``c``'s loop per call."""
    assert c.loop is not None
    ks = c.loop.keywords.get("ks")
    if ks is None or len(ks) <= EVENTS_PER_ROUND:
        return c.loop
    slices = [rebind(c.loop, ks=ks[i:i + EVENTS_PER_ROUND])
              for i in range(0, len(ks) - EVENTS_PER_ROUND + 1, EVENTS_PER_ROUND)]
    next_slice = itertools.cycle(slices).__next__
    return lambda: next_slice()()


@pytest.fixture
def bench_row(benchmark):
    """``bench_row(case_name, row_label)``: benchmark that row, or skip saying why not."""
    def run(case_name: str, label: str) -> None:
        c = case(case_name).contender(label)
        if c is None:
            pytest.skip(f"{label} has no row in {case_name}")
        if c.loop is None:
            pytest.skip(f"{label}: {c.status}")
        benchmark.group = case_name
        benchmark.extra_info["events_per_round"] = EVENTS_PER_ROUND
        benchmark.extra_info["implementation"] = c.shown
        benchmark(per_round(c))
    return run


def pytest_benchmark_scale_unit(config, unit, benchmarks, best, worst, sort):
    """Print times in µs (= ns per event, at 1,000 events per round) unless told otherwise."""
    if unit == "seconds" and config.getoption("benchmark_time_unit", None) in (None, "auto"):
        return "u", 1e6
    return None
