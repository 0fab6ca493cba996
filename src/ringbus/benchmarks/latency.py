"""``latency``: how long an event takes from ``publish`` to its handler, on another thread.

One producer thread publishes one event every ``latency_period_us`` (30 µs): it stamps
``time.perf_counter_ns()`` into the payload, publishes, and busy-waits until the period has
passed, so events are not queued up behind one another by the producer itself. The
consumer thread's handler records the clock minus the stamp. The percentiles are over all
events of all timed rounds.

With the GIL this measures mostly the GIL: the consumer sees the event at once (it waits
without the GIL) but may run its handler only once the producer lets go of the GIL, and a
busy producer lets go only when the interpreter's switch interval (5 ms by default) forces
it. Hence the rows with ``sys.setswitchinterval(0.0005)``; SimpleQueue, whose consumer
waits the same way, for comparison.
"""
from __future__ import annotations

from typing import Callable, Optional

from ringbus.benchmarks.handoff import QUEUE_KINDS, SIMPLEQUEUE, queue_contender, ring_contender
from ringbus.benchmarks.measure import Case
from ringbus.benchmarks.topology import Settings

NAME = "latency"
#: The shorter switch interval of the extra rows, in seconds.
SWITCH_INTERVAL = 0.0005
_SWITCH = f"switch {SWITCH_INTERVAL * 1e3:g}ms"


def label(base: str, switch: bool = False) -> str:
    """Row label: ``base`` (``simplequeue``, ``ringbus block``...) with the switch interval
    suffix if ``switch``."""
    return f"{base} {_SWITCH}" if switch else base


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``latency`` case."""
    paced = (settings.latency_events, settings.latency_period_us * 1e3)
    setsw = f", sys.setswitchinterval({SWITCH_INTERVAL:g})"
    contenders = [
        queue_contender(SIMPLEQUEUE, label(SIMPLEQUEUE), QUEUE_KINDS[SIMPLEQUEUE], lists=[],
                        paced=paced),
        queue_contender(SIMPLEQUEUE, label(SIMPLEQUEUE, True), QUEUE_KINDS[SIMPLEQUEUE] + setsw,
                        lists=[], paced=paced, switch_interval=SWITCH_INTERVAL),
    ]
    for wait in settings.waits:
        contenders.append(ring_contender(label(f"ringbus {wait}"), f"ringbus, wait={wait}",
                                         lists=[], wait=wait, capacity=settings.capacity,
                                         paced=paced))
    wait = "block" if "block" in settings.waits else settings.waits[0]
    contenders.append(ring_contender(label(f"ringbus {wait}", True),
                                     f"ringbus, wait={wait}{setsw}", lists=[], wait=wait,
                                     capacity=settings.capacity, paced=paced,
                                     switch_interval=SWITCH_INTERVAL))
    return Case(NAME, f"publish -> handler on the consumer thread, 1 event every "
                      f"{settings.latency_period_us:g} µs, {settings.latency_events:,} "
                      f"events per round", contenders,
                table="latency", rounds=settings.thread_rounds, reference=SIMPLEQUEUE)
