"""Pipelines (issue 15): DataFrames and Arrow batches routed by a name column, one handler
call per group, in chunks of 10,000 and 100,000 rows (the NYC flights of 2013 and 1,000,000
synthetic rows), against pandas groupby, polars partition_by, Arrow sort_indices and numpy
argsort; and names to ids against Series.map(dict) and polars cast(Enum).

``pytest bench --benchmark-only -k pipelines``; times in ns per row.
"""
import pytest

from ringbus.benchmarks import pipelines


def _id(row: str) -> str:
    return row.replace(" ", "_")


@pytest.mark.parametrize("row", [label for label, _ in pipelines.ROWS], ids=_id)
@pytest.mark.parametrize("case", pipelines.NAMES[:-1])
def test_pipelines(bench_row, case, row):
    bench_row(case, row)


@pytest.mark.parametrize("row", [label for label, _ in pipelines.NAME_ROWS], ids=_id)
def test_names_1m(bench_row, row):
    bench_row(pipelines.NAMES_CASE, row)
