"""ringbus's benchmarks: ``python -m ringbus bench`` and the suites in ``bench/``.

One module per topology (:mod:`.one_to_one`, :mod:`.fan_out`, :mod:`.event_types`,
:mod:`.no_subscriber`), each building a :class:`~.measure.Case` of ringbus, the floor
(direct calls) and the peers (a dict-of-lists dispatcher, blinker, pyee, psygnal, pypubsub),
all timed in one run, interleaved, and reported as medians and ratios of medians.

>>> from ringbus.benchmarks import Settings, run, render
>>> report = run(Settings(events=200, fan_out_events=50, rounds=1, type_counts=(10,)),
...              only=["one_to_one"])
>>> "ringbus Bus.emit" in render(report)
True
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

from ringbus.benchmarks import event_types, fan_out, no_subscriber, one_to_one
from ringbus.benchmarks.measure import Case, Contender, compile_loop, run_rounds
from ringbus.benchmarks.peers import PEER_NAMES
from ringbus.benchmarks.report import Report, environment, render
from ringbus.benchmarks.targets import TARGETS, evaluate
from ringbus.benchmarks.topology import Settings

__all__ = ["Settings", "Report", "case_names", "build_case", "run", "render", "PEER_NAMES"]

_LOOP_OVERHEAD = "loop_overhead"


def case_names(settings: Settings) -> list[str]:
    """The cases a full run measures, in table order."""
    return ([one_to_one.NAME, fan_out.NAME]
            + [event_types.name(k) for k in settings.type_counts]
            + [no_subscriber.NAME])


def build_case(name: str, settings: Settings,
               progress: Optional[Callable[[str], None]] = None) -> Case:
    """Set up case ``name`` (one of :func:`case_names`): wire every peer, compile loops."""
    if name == one_to_one.NAME:
        return one_to_one.build(settings, progress)
    if name == fan_out.NAME:
        return fan_out.build(settings, progress)
    if name == no_subscriber.NAME:
        return no_subscriber.build(settings, progress)
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
    cases = []
    for name in names:
        if progress is not None:
            progress(f"setting up {name}")
        cases.append(build_case(name, settings, progress))
    overhead = _loop_overhead_case(settings)
    run_rounds(cases + [overhead], settings.rounds, settings.warmup, progress)
    report = Report(settings, cases, [], env, loop_overhead=overhead.contenders[0].median)
    report.outcomes = evaluate(report.medians(), TARGETS)
    report.seconds = time.perf_counter() - started
    return report
