"""The ring (issue 3): queued publish on one thread, thread handoff, latency; ringbus against
queue.SimpleQueue, collections.deque + threading.Event and janus, one group per topology.

``pytest bench --benchmark-only``; times in ns per event (rounds of 1,000 events on one
thread, of 100,000 across threads); the latency percentiles print at the end.
"""
import pytest

from ringbus.benchmarks import latency, one_thread, one_to_one_threads, three_to_one_threads
from ringbus.benchmarks.handoff import DEQUE, JANUS, SIMPLEQUEUE

WAITS = ("block", "yield", "spin", "sleep")
ring_label = one_to_one_threads.ring_label


def _id(row: str) -> str:
    return row.replace(" ", "_")


@pytest.mark.parametrize("row", [one_thread.RINGBUS, one_thread.RINGBUS_MANY, SIMPLEQUEUE,
                                 DEQUE], ids=_id)
def test_one_thread_publish_drain(bench_row, row):
    bench_row(one_thread.NAME, row)


@pytest.mark.parametrize("row", [SIMPLEQUEUE] + [ring_label(w) for w in WAITS]
                         + [ring_label(w, True) for w in WAITS] + [DEQUE, JANUS], ids=_id)
def test_one_to_one_threads(bench_row, row):
    bench_row(one_to_one_threads.NAME, row)


@pytest.mark.parametrize("row", [SIMPLEQUEUE, ring_label(three_to_one_threads.WAIT),
                                 ring_label(three_to_one_threads.WAIT, True), DEQUE], ids=_id)
def test_three_to_one_threads(bench_row, row):
    bench_row(three_to_one_threads.NAME, row)


@pytest.mark.parametrize("row", [latency.label(SIMPLEQUEUE), latency.label(SIMPLEQUEUE, True)]
                         + [latency.label(f"ringbus {w}") for w in WAITS]
                         + [latency.label("ringbus block", True)], ids=_id)
def test_latency(bench_row, row):
    bench_row(latency.NAME, row)
