"""The compiled split of a batch by an integer key field (ringbus._route.split_rows, used
by ``bus.subscribe_batch(T, workers)``): every row goes where ``worker_index`` sends its key
alone, in the batch's order, for every integer width, sign, byte layout (aligned or packed)
and worker count; layouts it cannot read fall back to numpy, with the same result."""
import numpy as np
import pytest

from ringbus._route import split_rows
from ringbus.workers import _int_key_layout, worker_index

INT_TYPES = ["<i8", "<i4", "<i2", "i1", "<u8", "<u4", "<u2", "u1", "?"]


def _rows(key_type, packed, count=3000, seed=7):
    rng = np.random.default_rng(seed)
    dtype = np.dtype([("pad", "u1"), ("key", key_type), ("n", "<i8")], align=not packed)
    rows = np.zeros(count, dtype)
    if key_type == "?":
        rows["key"] = rng.integers(0, 2, count).astype(bool)
    else:
        info = np.iinfo(key_type)
        rows["key"] = rng.integers(info.min, info.max, count, endpoint=True,
                                   dtype=np.dtype(key_type))
    rows["n"] = np.arange(count)
    return rows


def _expected(rows, n):
    owners = [worker_index(k, n) for k in rows["key"].tolist()]
    return [rows[[o == w for o in owners]] for w in range(n)]


@pytest.mark.parametrize("key_type", INT_TYPES)
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_each_row_goes_where_its_key_alone_would_go_in_order(key_type, packed, n):
    rows = _rows(key_type, packed)
    layout = _int_key_layout(rows, "key")
    assert layout is not None
    grouped, bounds = split_rows(rows, *layout, n)
    assert bounds[0] == 0 and bounds[-1] == len(rows) and len(bounds) == n + 1
    for w, want in enumerate(_expected(rows, n)):
        part = grouped[bounds[w]:bounds[w + 1]]
        assert len(part) == len(want), w
        for field in ("pad", "key", "n"):       # fields: numpy leaves padding unset
            assert np.array_equal(part[field], want[field]), (w, field)


@pytest.mark.parametrize("rows", [
    _rows("<i8", False).astype([("pad", "u1"), ("key", ">i8"), ("n", "<i8")]),  # big-endian
    _rows("<i8", False)[::2],                                                  # strided
    np.zeros(4, [("key", "<f8")]),                                             # not an int
])
def test_layouts_the_split_cannot_read_are_left_to_numpy(rows):
    assert _int_key_layout(rows, "key") is None


def test_a_bad_layout_is_refused_not_read_out_of_bounds():
    rows = _rows("<i8", False, count=10)
    with pytest.raises(ValueError, match="bad key layout"):
        split_rows(rows, rows.dtype.itemsize - 4, 8, True, 2)
    with pytest.raises(ValueError, match="bad key layout"):
        split_rows(rows, 0, 3, True, 2)
    with pytest.raises(ValueError, match="bad key layout"):
        split_rows(rows, 0, 8, True, 0)
