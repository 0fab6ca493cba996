"""Inline ``emit``: ringbus against the floor and its peers, one group per topology.

``pytest bench --benchmark-only``; times in ns per event (rounds of 1,000 events).
"""
import pytest

from ringbus.benchmarks import event_types, fan_out, no_subscriber, one_to_one
from ringbus.benchmarks.peers import FLOOR, PEERS

#: Every row a case can have; a row a case lacks (or a peer not installed) is skipped.
ROWS = [FLOOR] + [label for peer in PEERS for label, _ in peer.rows]


def _id(row: str) -> str:
    return row.replace(" ", "_")


@pytest.mark.parametrize("row", ROWS + [one_to_one.C_CALL], ids=_id)
def test_one_to_one(bench_row, row):
    bench_row(one_to_one.NAME, row)


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_fan_out_10(bench_row, row):
    bench_row(fan_out.NAME, row)


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_types_1000(bench_row, row):
    bench_row(event_types.name(1_000), row)


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_types_100000(bench_row, row):
    bench_row(event_types.name(100_000), row)


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_no_subscriber(bench_row, row):
    bench_row(no_subscriber.NAME, row)
