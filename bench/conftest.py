"""pytest-benchmark suites comparing ringbus with its peers, topology by topology.

Run them with ``pytest bench --benchmark-only``; they are not part of the default test run
(``testpaths = ["tests"]``). Each topology is one benchmark group: ringbus, the reference
(the floor of direct calls, or queue.SimpleQueue for the ring cases) and every installed
peer, so pytest-benchmark's table compares them side by side.

Every group's times are printed **in ns per event** (per row in ``emit_batch_1m``): the
time of a round divided by the events it ran (``extra_info["events_per_round"]``: 1,000 for
the emit cases and ``one_thread_publish_drain``, 100,000 for the thread cases, 1,000,000
rows for ``emit_batch_1m``, its Python emit loop included: one scale per group), unless
``--benchmark-time-unit`` says otherwise. The latency group's times are just its paced runs;
its percentiles are in ``extra_info`` (``--benchmark-json``) and printed at the end.

A ring or batch row checks every round (all events arrived, in order) between rounds,
untimed; a row that loses events fails with the reason instead of reporting a time.
``python -m ringbus bench`` measures the same loops with interleaved rounds and prints
ratios and the issues' targets.
"""
from __future__ import annotations

import functools
import itertools
from typing import Callable

import pytest

from ringbus import benchmarks
from ringbus.benchmarks import (
    emit_batch, event_types, latency, one_thread, one_to_one_threads, three_to_one_threads,
)
from ringbus.benchmarks.measure import Case, CheckedRun, Contender, Failed, rebind
from ringbus.benchmarks.report import percentile

EVENTS_PER_ROUND = 1_000
#: The types cases walk a long random sequence, a slice per round: rounds that repeated one
#: short slice would keep its few types in cache and hide what many types cost.
TYPES_SEQUENCE = 100_000
TYPE_COUNTS = (1_000, 100_000)
#: Events per round of the thread cases and the latency case.
THREAD_EVENTS = 100_000
LATENCY_EVENTS = 2_000
#: Rounds of the rows that are checked between rounds (pytest-benchmark's pedantic mode).
CHECKED_ROUNDS = {
    one_thread.NAME: 200,
    one_to_one_threads.NAME: 5,
    three_to_one_threads.NAME: 5,
    latency.NAME: 3,
    emit_batch.NAME: 10,
}

_latencies: dict[tuple[str, str], list[float]] = {}


@functools.lru_cache(maxsize=None)
def case(name: str) -> Case:
    """Case ``name``, set up once per session (wiring 100,000 types takes seconds)."""
    is_types = name.startswith(event_types.PREFIX)
    settings = benchmarks.Settings(
        events=TYPES_SEQUENCE if is_types else EVENTS_PER_ROUND,
        fan_out_events=EVENTS_PER_ROUND, type_counts=TYPE_COUNTS,
        thread_events=THREAD_EVENTS, latency_events=LATENCY_EVENTS,
        loop_rows=benchmarks.Settings.batch_rows)
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


def _checked(benchmark, case_name: str, c: Contender) -> None:
    """Time ``run()`` alone, round by round, and ``check()`` each round before the next."""
    run: CheckedRun = c.loop
    ran = [False]
    checked = [0]
    observed = _latencies.setdefault((case_name, c.label), [])

    def check() -> None:
        if ran[0]:
            run.check()
            if c.observe is not None and checked[0] > 0:    # not the warm-up round's
                observed.extend(c.observe())
            checked[0] += 1

    def setup() -> None:
        check()
        ran[0] = True

    benchmark.pedantic(run.run, setup=setup, rounds=CHECKED_ROUNDS.get(case_name, 5),
                       warmup_rounds=1, iterations=1)
    check()
    if observed:
        v = sorted(observed)
        for q, key in ((0.5, "p50_us"), (0.99, "p99_us"), (0.999, "p99.9_us")):
            benchmark.extra_info[key] = round(percentile(v, q) / 1e3, 1)
        benchmark.extra_info["latency_events"] = len(v)


@pytest.fixture
def bench_row(benchmark):
    """``bench_row(case_name, row_label)``: benchmark that row, or skip saying why not."""
    def run(case_name: str, label: str) -> None:
        c = case(case_name).contender(label)
        if c is None:
            pytest.skip(f"{label} has no row in {case_name}")
        if c.loop is None:
            if c.status.startswith("FAILED"):
                pytest.fail(f"{label}: {c.status}")
            pytest.skip(f"{label}: {c.status}")
        benchmark.group = case_name
        benchmark.extra_info["events_per_round"] = (
            EVENTS_PER_ROUND if not isinstance(c.loop, CheckedRun) else c.events)
        benchmark.extra_info["implementation"] = c.shown
        try:
            if isinstance(c.loop, CheckedRun):
                _checked(benchmark, case_name, c)
            else:
                benchmark(per_round(c))
        except Failed as exc:
            c.loop = None
            c.status = f"FAILED: {exc}"
            pytest.fail(f"{label}: {exc}")
    return run


def pytest_benchmark_scale_unit(config, unit, benchmarks, best, worst, sort):
    """Print times in ns per event (per row), each group scaled by its events per round,
    unless told otherwise."""
    if unit == "seconds" and config.getoption("benchmark_time_unit", None) in (None, "auto"):
        per = {b.get("extra_info", {}).get("events_per_round") if isinstance(b, dict)
               else b.extra_info.get("events_per_round") for b in benchmarks}
        if len(per) == 1 and None not in per:
            return "n", 1e9 / per.pop()
        return "u", 1e6
    return None


def pytest_terminal_summary(terminalreporter):
    """The latency group's percentiles, which pytest-benchmark's table does not show."""
    rows = [(k, v) for k, v in _latencies.items() if v]
    if not rows:
        return
    terminalreporter.section("latency percentiles (µs, publish -> handler)")
    for (case_name, label), values in rows:
        v = sorted(values)
        p = [percentile(v, q) / 1e3 for q in (0.5, 0.99, 0.999)]
        terminalreporter.write_line(
            f"{label:32} p50 {p[0]:9.1f}  p99 {p[1]:9.1f}  p99.9 {p[2]:9.1f}  "
            f"({len(v):,} events)")
