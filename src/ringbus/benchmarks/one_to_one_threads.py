"""``one_to_one_threads``: one producer thread hands events to one consumer thread.

ringbus: a Bus with ``producers="single"`` and its consumer thread (``bus.start()``); the
producer thread calls ``publish`` per event, or ``publish_many`` with chunks of payloads,
once per wait strategy of the consumer. The peers: ``queue.SimpleQueue`` (the reference),
``collections.deque`` + ``threading.Event`` and janus, each with a consumer thread of its
own (see :mod:`.handoff`). The handler records each payload; every run checks that all
events arrived, in order.

With the GIL, the producer and the consumer take turns: the figure is the cost of one
event on both sides, plus what the turns cost.
"""
from __future__ import annotations

from typing import Callable, Optional

from ringbus.benchmarks.handoff import (
    DEQUE, JANUS, QUEUE_KINDS, SIMPLEQUEUE, payload_lists, queue_contender, ring_contender,
    queue_peer_picked,
)
from ringbus.benchmarks.measure import Case
from ringbus.benchmarks.topology import Settings

NAME = "one_to_one_threads"


def ring_label(wait: str, many: bool = False) -> str:
    """The row label of ringbus with wait strategy ``wait`` (``publish_many`` if many)."""
    return f"ringbus {'publish_many ' if many else ''}{wait}"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``one_to_one_threads`` case."""
    lists = payload_lists(1, settings.thread_events)
    contenders = [queue_contender(SIMPLEQUEUE, SIMPLEQUEUE, QUEUE_KINDS[SIMPLEQUEUE],
                                  lists=lists)]
    for many in (False, True):
        for wait in settings.waits:
            call = f"publish_many({settings.chunk})" if many else "publish"
            contenders.append(ring_contender(
                ring_label(wait, many), f"ringbus {call}, wait={wait}", lists=lists,
                wait=wait, many=many, capacity=settings.capacity, chunk=settings.chunk))
    for kind in (DEQUE, JANUS):
        if queue_peer_picked(settings, kind):
            contenders.append(queue_contender(kind, kind, QUEUE_KINDS[kind], lists=lists))
    return Case(NAME, f"1 producer thread -> 1 consumer thread, "
                      f"{settings.thread_events:,} events", contenders,
                table="ring", rounds=settings.thread_rounds, reference=SIMPLEQUEUE)
