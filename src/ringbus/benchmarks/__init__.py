"""ringbus's benchmarks: ``python -m ringbus bench`` and the suites in ``bench/``.

One module per topology, each building a :class:`~.measure.Case`, all timed in one run,
interleaved, and reported as medians and ratios of medians:

- inline ``emit`` (:mod:`.one_to_one`, :mod:`.fan_out`, :mod:`.event_types`,
  :mod:`.no_subscriber`): ringbus, the floor (direct calls) and the peers (a dict-of-lists
  dispatcher, blinker, pyee, psygnal, pypubsub);
- the ring (issue 3): :mod:`.one_thread` (publish then drain on one thread),
  :mod:`.one_to_one_threads`, :mod:`.three_to_one_threads` (thread handoff) and
  :mod:`.latency`, against ``queue.SimpleQueue``, ``collections.deque`` + ``threading.Event``
  and janus (:mod:`.handoff`);
- numpy batches (issue 4): :mod:`.emit_batch`, against an ``np.argsort`` baseline;
- pipelines (issue 15): :mod:`.pipelines`, DataFrames and Arrow batches routed by a name
  column (a public dataset, and 1M synthetic rows) against pandas ``groupby``, polars
  ``partition_by``, Arrow ``sort_indices`` and numpy ``argsort``; names to ids against
  ``Series.map(dict)`` and polars ``cast(Enum)``;
- across processes (issue 10): :mod:`.xproc_records`, :mod:`.xproc_messages` and
  :mod:`.xproc_latency`, one producer process -> this process, against a pure-Python
  shared-memory ring, ``multiprocessing.Pipe`` and ``Queue``, faster-fifo and iceoryx2
  (:mod:`.xproc`, :mod:`.xproc_channels`). A script that runs them needs the
  ``if __name__ == "__main__":`` guard (the producer process is spawned);
- worker processes (issue 11): :mod:`.workers` (``workers_cpu``, ``workers_tiny``,
  ``workers_latency``), ``ringbus.Workers`` against ``multiprocessing.Pool`` and
  ``ProcessPoolExecutor`` on the same work (:mod:`.work`); the same guard;
- bridges (issue 12): :mod:`.bridges`, NatsBridge and RedisBridge against nats-py,
  FastStream and redis-py on servers started for the run (skipped, saying why, without
  them).

>>> from ringbus.benchmarks import Settings, run, render
>>> report = run(Settings(events=200, fan_out_events=50, rounds=1, type_counts=(10,)),
...              only=["one_to_one"])
>>> "ringbus Bus.emit" in render(report)
True
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

from ringbus.benchmarks import (
    bridges, emit_batch, event_types, fan_out, lanes, latency, metrics, no_subscriber, one_thread,
    one_to_one,
    one_to_one_threads, pipelines, routing, three_to_one_threads, workers, xproc_latency,
    xproc_messages, xproc_records,
)
from ringbus.benchmarks.handoff import QUEUE_PEER_NAMES
from ringbus.benchmarks.measure import Case, Contender, compile_loop, run_rounds
from ringbus.benchmarks.peers import PEER_NAMES as EMIT_PEER_NAMES
from ringbus.benchmarks.report import Report, environment, render
from ringbus.benchmarks.targets import TARGETS, evaluate
from ringbus.benchmarks.topology import Settings

__all__ = ["Settings", "Report", "case_names", "build_case", "run", "render", "PEER_NAMES"]

#: Every name ``--only`` accepts to pick peers: the emit peers, then the queue peers (the
#: floor, ringbus and queue.SimpleQueue always run).
PEER_NAMES: tuple[str, ...] = EMIT_PEER_NAMES + QUEUE_PEER_NAMES

_LOOP_OVERHEAD = "loop_overhead"

#: The cases with a fixed name, after the emit ones, in table order: module by case name.
#: Issue 4's RecordRing case (a nogil C-API producer thread -> a batch consumer, records/s,
#: vs the object ring's per-event path) goes here once RecordRing exists: a module like
#: emit_batch.py with NAME and build(settings, progress) -> Case(table="batch" or "ring"),
#: its targets in targets.py (marked there), and a test in bench/test_batch_bench.py.
_FIXED = {
    one_thread.NAME: one_thread,
    one_to_one_threads.NAME: one_to_one_threads,
    three_to_one_threads.NAME: three_to_one_threads,
    latency.NAME: latency,
    emit_batch.NAME: emit_batch,
    xproc_records.NAME: xproc_records,
    xproc_messages.NAME: xproc_messages,
    xproc_latency.NAME: xproc_latency,
}
_WORKER_CASES = workers.NAMES
_EMIT_FIXED = {one_to_one.NAME: one_to_one, fan_out.NAME: fan_out,
               no_subscriber.NAME: no_subscriber}


def case_names(settings: Settings) -> list[str]:
    """The cases a full run measures, in table order."""
    return ([one_to_one.NAME, fan_out.NAME]
            + [event_types.name(k) for k in settings.type_counts]
            + [no_subscriber.NAME] + list(routing.NAMES) + list(metrics.NAMES) + list(_FIXED)
            + list(lanes.NAMES)
            + list(pipelines.NAMES) + list(_WORKER_CASES) + list(bridges.NAMES))


def build_case(name: str, settings: Settings,
               progress: Optional[Callable[[str], None]] = None) -> Case:
    """Set up case ``name`` (one of :func:`case_names`): wire every peer, compile loops."""
    module = _EMIT_FIXED.get(name) or _FIXED.get(name)
    if module is not None:
        return module.build(settings, progress)
    if name in _WORKER_CASES:
        return workers.build(name, settings, progress)
    if name in metrics.NAMES:
        return metrics.build(name, settings, progress)
    if name in bridges.NAMES:
        return bridges.build(name, settings, progress)
    if name in routing.NAMES:
        return routing.build(name, settings, progress)
    if name in lanes.NAMES:
        return lanes.build(name, settings, progress)
    if name in pipelines.NAMES:
        return pipelines.build(name, settings, progress)
    if name.startswith(event_types.PREFIX) and name[len(event_types.PREFIX):].isdigit():
        return event_types.build(settings, int(name[len(event_types.PREFIX):]), progress)
    raise ValueError(f"unknown benchmark case {name!r}; known: {', '.join(case_names(settings))}")


def _loop_overhead_case(settings: Settings) -> Case:
    xs = list(range(settings.events))
    empty = Contender("empty loop", "for x in xs: pass",
                      compile_loop("pass", "x", "xs", {"xs": xs}, "empty"), settings.events)
    return Case(_LOOP_OVERHEAD, "the loop alone", [empty], shown_in_table=False)


def run(settings: Optional[Settings] = None, only: Optional[Iterable[str]] = None,
        progress: Optional[Callable[[str], None]] = None) -> Report:
    """Build the cases (all, or those named in ``only``), measure them together, report.

    Nothing is asserted: the issue's targets come back as outcomes in the report.
    """
    settings = settings or Settings()
    started = time.perf_counter()
    names = case_names(settings)
    if only is not None:
        wanted = list(only)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f"unknown benchmark case(s) {', '.join(unknown)}; "
                             f"known: {', '.join(names)}")
        names = [n for n in names if n in wanted]
    env = environment()
    cases: list[Case] = []
    try:
        for name in names:
            if progress is not None:
                progress(f"setting up {name}")
            cases.append(build_case(name, settings, progress))
        # The loop's own cost matters to the emit table only.
        overhead = (_loop_overhead_case(settings) if any(c.table == "emit" for c in cases)
                    else None)
        # Cases with the same number of rounds (and group) are interleaved.
        by_rounds: dict[tuple[int, str], list[Case]] = {}
        for case in cases + ([overhead] if overhead is not None else []):
            by_rounds.setdefault((case.rounds or settings.rounds, case.group), []).append(case)
        for (rounds, _), group in by_rounds.items():
            if progress is not None and len(by_rounds) > 1:
                progress(f"{', '.join(c.name for c in group if c.shown_in_table)}: "
                         f"{rounds} rounds")
            run_rounds(group, rounds, settings.warmup, progress)
    finally:
        # The process cases' producer processes and shared segments go, even on Ctrl-C.
        for case in cases:
            close = getattr(case, "close", None)
            if close is not None:
                close()
    report = Report(settings, cases, [], env,
                    loop_overhead=overhead.contenders[0].median if overhead else None)
    report.outcomes = evaluate(report.values(), TARGETS)
    report.seconds = time.perf_counter() - started
    return report
