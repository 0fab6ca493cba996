"""Batches (issue 4): ``emit_batch`` of 1,000,000 16-byte rows across 16 types to batch
handlers, against the numpy argsort baseline, a Python loop of ``emit`` (on 100,000 rows)
and ``rows.copy()``.

``pytest bench --benchmark-only``; times in ns per row.
"""
import pytest

from ringbus.benchmarks import emit_batch


def _id(row: str) -> str:
    return row.replace(" ", "_")


@pytest.mark.parametrize("row", [label for label, _ in emit_batch.ROWS], ids=_id)
def test_emit_batch_1m(bench_row, row):
    bench_row(emit_batch.NAME, row)


# RecordRing (issue 4, to come): a ``test_record_ring_<topology>`` here, parametrized over
# the rows of its case module (a nogil C-API producer thread -> batch consumer, and the
# object ring's per-event path), once ringbus.benchmarks has that case (see its __init__).
