"""``three_to_one_threads``: three producer threads hand events to one consumer thread.

The multi-producer path: ringbus with ``producers="multi"`` (slots claimed atomically),
``publish`` per event and ``publish_many`` in chunks, against ``queue.SimpleQueue`` (and a
``collections.deque`` + ``threading.Event``) with three producer threads. Each producer
sends its own run of payloads; every run checks that the handler got all of them, each
producer's in order.
"""
from __future__ import annotations

from typing import Callable, Optional

from ringbus.benchmarks.handoff import (
    DEQUE, QUEUE_KINDS, SIMPLEQUEUE, payload_lists, queue_contender, ring_contender,
    queue_peer_picked,
)
from ringbus.benchmarks.measure import Case
from ringbus.benchmarks.one_to_one_threads import ring_label
from ringbus.benchmarks.topology import Settings

NAME = "three_to_one_threads"
PRODUCERS = 3
WAIT = "block"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``three_to_one_threads`` case."""
    per = max(1, settings.thread_events // PRODUCERS)
    lists = payload_lists(PRODUCERS, per)
    contenders = [queue_contender(SIMPLEQUEUE, SIMPLEQUEUE, QUEUE_KINDS[SIMPLEQUEUE],
                                  lists=lists)]
    for many in (False, True):
        call = f"publish_many({settings.chunk})" if many else "publish"
        contenders.append(ring_contender(
            ring_label(WAIT, many), f"ringbus {call}, producers=multi, wait={WAIT}",
            lists=lists, wait=WAIT, many=many, capacity=settings.capacity,
            chunk=settings.chunk))
    if queue_peer_picked(settings, DEQUE):
        contenders.append(queue_contender(DEQUE, DEQUE, QUEUE_KINDS[DEQUE], lists=lists))
    return Case(NAME, f"{PRODUCERS} producer threads -> 1 consumer thread, "
                      f"{per * PRODUCERS:,} events", contenders,
                table="ring", rounds=settings.thread_rounds, reference=SIMPLEQUEUE)
