"""Property tests (issue 15): ringbus's groups equal pandas ``groupby``, polars ``group_by``
and plain Python on random frames: nulls in the payload columns, the dtypes those libraries
use, one group, many groups, types with no rows. Example counts are kept small: the whole
file runs in seconds."""
import datetime

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import ringbus  # noqa: E402

pytestmark = pytest.mark.pipelines

#: Registered in this order (ids 0..5); "ev.unused" never appears in a row.
NAMES = ["ev.d", "ev.a", "ev.c", "ev.b", "ev.e", "ev.unused"]
FAST = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def frames(draw):
    """A pandas DataFrame with an ``event`` column of names and payload columns of many
    dtypes, some with nulls."""
    n = draw(st.integers(0, 30))
    groups = draw(st.integers(1, 5))
    events = draw(st.lists(st.sampled_from(NAMES[:groups]), min_size=n, max_size=n))
    ints = draw(st.lists(st.integers(-2**40, 2**40), min_size=n, max_size=n))
    floats = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=n,
                           max_size=n))
    texts = draw(st.lists(st.one_of(st.none(), st.text("xyz", max_size=3)), min_size=n,
                          max_size=n))
    flags = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    days = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
    small = draw(st.lists(st.one_of(st.none(), st.integers(-100, 100)), min_size=n,
                          max_size=n))
    return pd.DataFrame({
        "event": pd.Series(events, dtype=object),
        "i64": pd.Series(ints, dtype="int64"),
        "f64": pd.Series([np.nan if f is None else f for f in floats], dtype="float64"),
        "f32": pd.Series([0.5 * i for i in range(n)], dtype="float32"),
        "text": pd.Series(texts, dtype=object),
        "flag": pd.Series(flags, dtype=bool),
        "when": pd.Series([datetime.datetime(2020, 1, 1) + datetime.timedelta(days=d)
                           for d in days], dtype="datetime64[ns]"),
        "i8": pd.Series([i % 100 for i in range(n)], dtype="int8"),
        "u32": pd.Series(range(n), dtype="uint32"),
        "nullable": pd.Series(small, dtype="Int64"),
        "cat": pd.Series(texts, dtype="category"),
    })


@pytest.fixture(autouse=True, scope="module")
def _ids_from_zero():
    # Written when each bus numbered its types from 0 (issue 15); ids are process-wide since
    # issue 13: this module has an id table of its own, NAMES first (ids 0..5).
    with ringbus.identity._isolated():
        _bus()
        yield


def _bus():
    bus = ringbus.Bus()
    for name in NAMES:
        bus.event_type(name)
    return bus


def _collect(bus):
    got = []
    for name in NAMES:
        bus.subscribe_batch(name, lambda t, rows: got.append((t, rows)), with_type=True)
    return got


@FAST
@given(frames(), st.sampled_from(["object", "str", "category"]))
def test_pandas_groups_equal_groupby(df, types_dtype):
    df = df.assign(event=df["event"].astype(types_dtype))
    bus = _bus()
    got = _collect(bus)
    assert bus.emit_batch("event", df) == len(df)
    want = {str(k): g for k, g in df.groupby("event", sort=False, observed=True)}
    assert [t for t, _ in got] == sorted(NAMES.index(k) for k in want)
    for t, rows in got:
        pd.testing.assert_frame_equal(rows, want[NAMES[t]])


@FAST
@given(frames())
def test_polars_groups_equal_group_by(df):
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(df)
    bus = _bus()
    got = _collect(bus)
    assert bus.emit_batch("event", frame) == len(df)
    want = {k[0]: g for k, g in frame.group_by("event", maintain_order=True)}
    assert [t for t, _ in got] == sorted(NAMES.index(k) for k in want)
    for t, rows in got:
        assert rows.equals(want[NAMES[t]], null_equal=True)


@FAST
@given(frames(), st.booleans())
def test_arrow_groups_equal_plain_python(df, table):
    pa = pytest.importorskip("pyarrow")
    frame = (pa.Table if table else pa.RecordBatch).from_pandas(df, preserve_index=False)
    bus = _bus()
    got = _collect(bus)
    per_event = []
    bus.subscribe("ev.a", per_event.append)
    assert bus.emit_batch("event", frame) == len(df)
    rows = frame.to_pylist()
    want = {}
    for row in rows:
        want.setdefault(row["event"], []).append(row)
    assert [t for t, _ in got] == sorted(NAMES.index(k) for k in want)
    for t, group in got:
        assert type(group) is type(frame)
        assert group.to_pylist() == want[NAMES[t]]
    assert per_event == want.get("ev.a", [])


@FAST
@given(frames())
def test_numpy_records_equal_plain_python(df):
    bus = _bus()
    got = _collect(bus)
    records = df[["i64", "f64", "flag"]].to_records(index=False)
    events = df["event"].to_numpy(dtype=object)
    assert bus.emit_batch(events, records) == len(df)
    want = {}
    for name, rec in zip(events, records.tolist()):
        want.setdefault(name, []).append(rec)
    assert [t for t, _ in got] == sorted(NAMES.index(k) for k in want)
    for t, group in got:
        assert group.dtype == records.dtype
        assert _no_nan(group.tolist()) == _no_nan(want[NAMES[t]])


def _no_nan(rows):
    """Rows with NaN as None: NaN != NaN would fail equal rows."""
    return [tuple(None if v != v else v for v in row) for row in rows]


@FAST
@given(st.lists(st.sampled_from(NAMES + ["new.x", "new.y"]), max_size=40),
       st.sampled_from(["list", "U", "object", "pandas str", "pandas category",
                        "arrow", "arrow dictionary", "polars", "polars categorical"]))
def test_event_types_of_equals_a_python_dict(names, kind):
    column = {
        "list": lambda: names,
        "U": lambda: np.array(names, dtype="U16"),
        "object": lambda: np.array(names, dtype=object),
        "pandas str": lambda: pd.Series(names, dtype="string"),
        "pandas category": lambda: pd.Series(names, dtype="category"),
        "arrow": lambda: pytest.importorskip("pyarrow").array(names, "string"),
        "arrow dictionary": lambda: pytest.importorskip("pyarrow").array(
            names, "string").dictionary_encode(),
        "polars": lambda: pytest.importorskip("polars").Series(names, dtype=str),
        "polars categorical": lambda: pytest.importorskip("polars").Series(
            names, dtype=str).cast(pytest.importorskip("polars").Categorical),
    }[kind]()
    bus = _bus()
    unknown = [n for n in dict.fromkeys(names) if n not in NAMES]
    if unknown:
        with pytest.raises(ValueError) as info:
            bus.event_types_of(column)
        assert all(repr(n) in str(info.value) for n in unknown)
        ids = bus.event_types_of(column, register=True)
        assert set(bus.event_types) == set(NAMES) | set(unknown)
    else:
        ids = bus.event_types_of(column)
    table = bus.event_types
    assert ids.tolist() == [table[n] for n in names]
