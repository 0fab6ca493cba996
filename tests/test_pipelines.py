"""Data pipelines (issue 15): names mapped in bulk, DataFrames and Arrow batches as rows,
batch handlers told their group. Each library's tests skip without it."""
import functools
import importlib
import subprocess
import sys

import pytest

np = pytest.importorskip("numpy")

import ringbus  # noqa: E402

pytestmark = pytest.mark.pipelines

NAMES = ["md.tick", "md.trade", "md.quote"]


@pytest.fixture(autouse=True)
def _ids_from_zero():
    # These tests were written when each bus numbered its types from 0 (issue 15); ids are
    # process-wide since issue 13, so each runs in an id table of its own.
    with ringbus.identity._isolated():
        yield


@pytest.fixture
def bus():
    bus = ringbus.Bus()
    for name in NAMES:
        bus.event_type(name)
    return bus


def _pd():
    return pytest.importorskip("pandas")


def _pl():
    return pytest.importorskip("polars")


def _pa():
    return pytest.importorskip("pyarrow")


# -- nothing imported unless used ------------------------------------------------------------

def test_import_and_a_numpy_batch_load_no_dataframe_library():
    code = (
        "import sys, numpy as np, ringbus\n"
        "bus = ringbus.Bus(); t = bus.event_type('a')\n"
        "bus.subscribe_batch(t, len)\n"
        "bus.emit_batch(np.zeros(3, dtype=np.int64), np.arange(3))\n"
        "bus.emit_batch(np.array(['a', 'a']), np.arange(2))\n"
        "bus.event_types_of(['a'])\n"
        "loaded = [m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules]\n"
        "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


# -- names in bulk ------------------------------------------------------------------------------

def _kinds(plain, **by_library):
    """[(label, factory)]: ``plain`` as they are, then each library's (label, make(module,
    ...)) rows, left out when the library is not installed."""
    out = list(plain)
    for library, rows in by_library.items():
        try:
            module = importlib.import_module(library)
        except ImportError:
            continue
        out += [(label, functools.partial(make, module)) for label, make in rows]
    return out


def _name_columns():
    """(label, factory(names list) -> column) for every kind of names column."""
    return _kinds(
        [("list", list), ("numpy U", np.array), ("numpy S", lambda v: np.array(v, "S")),
         ("numpy object", lambda v: np.array(v, dtype=object))],
        pandas=[("pandas object", lambda pd, v: pd.Series(v, dtype=object)),
                ("pandas str", lambda pd, v: pd.Series(v, dtype="string")),
                ("pandas category", lambda pd, v: pd.Series(v, dtype="category")),
                ("pandas Categorical", lambda pd, v: pd.Categorical(v))],
        pyarrow=[("arrow string", lambda pa, v: pa.array(v)),
                 ("arrow large_string", lambda pa, v: pa.array(v, pa.large_string())),
                 ("arrow string_view", lambda pa, v: pa.array(v, pa.string_view())),
                 ("arrow dictionary", lambda pa, v: pa.array(v).dictionary_encode()),
                 ("arrow chunked", lambda pa, v: pa.chunked_array([v[:2], v[2:]], pa.string())),
                 ("arrow sliced", lambda pa, v: pa.array(["x"] + v + ["y"]).slice(1, len(v)))],
        polars=[("polars String", lambda pl, v: pl.Series(v)),
                ("polars Categorical", lambda pl, v: pl.Series(v).cast(pl.Categorical)),
                ("polars Enum", lambda pl, v: pl.Series(v).cast(pl.Enum(NAMES[::-1])))])


COLUMNS = _name_columns()


@pytest.mark.parametrize("make", [m for _, m in COLUMNS], ids=[n for n, _ in COLUMNS])
def test_event_types_of_maps_every_kind_of_names_column(bus, make):
    names = ["md.trade", "md.tick", "md.trade", "md.quote", "md.tick", "md.tick"]
    ids = bus.event_types_of(make(names))
    assert ids.dtype == np.int64
    assert ids.tolist() == [bus.event_type(n) for n in names]


@pytest.mark.parametrize("make", [m for _, m in COLUMNS], ids=[n for n, _ in COLUMNS])
def test_emit_batch_takes_a_names_column_as_types(bus, make):
    names = ["md.quote", "md.tick", "md.quote", "md.trade"]
    got = []
    for name in NAMES:
        bus.subscribe_batch(name, lambda t, rows: got.append((t, rows.tolist())),
                            with_type=True)
    assert bus.emit_batch(make(names), np.arange(4)) == 4
    assert got == [(0, [1]), (1, [3]), (2, [0, 2])]


def test_long_names_and_many_distinct_names_map_through_the_byte_table():
    bus = ringbus.Bus()
    names = [f"pipeline.stage.{i:04d}.with.a.long.name" for i in range(300)]
    ids = [bus.event_type(n) for n in names]
    rng = np.random.default_rng(1)
    pick = rng.integers(0, len(names), 5_000)
    column = [names[i] for i in pick]
    want = np.asarray(ids)[pick].tolist()
    assert bus.event_types_of(column).tolist() == want
    assert bus.event_types_of(np.array(column)).tolist() == want
    pa = pytest.importorskip("pyarrow")
    assert bus.event_types_of(pa.array(column, pa.string_view())).tolist() == want
    assert bus.event_types_of(pa.array(column, pa.large_string())).tolist() == want


def test_unknown_names_raise_naming_them_unless_registered(bus):
    with pytest.raises(ValueError, match=r"'md\.nope'.*'md\.also'") as info:
        bus.event_types_of(["md.tick", "md.nope", "md.also", "md.nope"])
    assert "2 unknown" in str(info.value)
    assert "md.nope" not in bus.event_types
    ids = bus.event_types_of(["md.tick", "md.nope", "md.also", "md.nope"], register=True)
    known = bus.event_types         # ids are process-wide (issue 13): not from 0 per bus
    assert ids.tolist() == [known["md.tick"], known["md.nope"], known["md.also"],
                            known["md.nope"]]


def test_emit_batch_never_registers_a_name(bus):
    bus.subscribe_batch("md.tick", lambda rows: pytest.fail("ran"))
    with pytest.raises(ValueError, match="md.typo"):
        bus.emit_batch(["md.tick", "md.typo"], np.arange(2))
    assert "md.typo" not in bus.event_types


def test_a_category_no_row_uses_may_be_unknown(bus):
    pd = _pd()
    col = pd.Categorical(["md.tick", "md.quote"], categories=["md.quote", "zz", "md.tick"])
    assert bus.event_types_of(col).tolist() == [0, 2]
    with pytest.raises(ValueError, match="'zz'"):
        bus.event_types_of(pd.Categorical(["zz"], categories=["md.quote", "zz"]))


def test_integer_columns_of_every_kind_are_ids(bus):
    assert bus.event_types_of([2, 0]).tolist() == [2, 0]
    pd, pa, pl = _pd(), _pa(), _pl()
    assert bus.event_types_of(pd.Series([1, 2], dtype="Int64")).tolist() == [1, 2]
    assert bus.event_types_of(pa.array([2, 1], pa.uint8())).tolist() == [2, 1]
    assert bus.event_types_of(pl.Series([0, 2], dtype=pl.Int16)).tolist() == [0, 2]
    with pytest.raises(ValueError, match="not a registered event type id"):
        bus.event_types_of([5])


def _null_columns():
    return _kinds(
        [("object None", lambda: np.array(["md.tick", None], dtype=object)),
         ("object NaN", lambda: np.array(["md.tick", float("nan")], dtype=object))],
        pandas=[("pandas str", lambda pd: pd.Series(["md.tick", None], dtype="string")),
                ("pandas category", lambda pd: pd.Series(["md.tick", None], dtype="category")),
                ("pandas Int64", lambda pd: pd.Series([0, None], dtype="Int64"))],
        pyarrow=[("arrow string", lambda pa: pa.array(["md.tick", None])),
                 ("arrow dictionary", lambda pa: pa.array(["md.tick", None]).dictionary_encode()),
                 ("arrow int", lambda pa: pa.array([0, None]))],
        polars=[("polars String", lambda pl: pl.Series(["md.tick", None])),
                ("polars Enum", lambda pl: pl.Series(["md.tick", None], dtype=pl.Enum(NAMES))),
                ("polars Int", lambda pl: pl.Series([0, None]))])


NULLS = _null_columns()


@pytest.mark.parametrize("make", [m for _, m in NULLS], ids=[n for n, _ in NULLS])
def test_a_null_in_the_types_column_raises_before_any_handler(bus, make):
    bus.subscribe_batch("md.tick", lambda rows: pytest.fail("ran"))
    bus.subscribe("md.tick", lambda row: pytest.fail("ran"))
    with pytest.raises(ValueError, match=r"types\[1\] is null"):
        bus.emit_batch(make(), np.arange(2))
    assert bus.stats()["handler_calls"] == 0


def _float_columns():
    return _kinds(
        [("numpy", lambda: np.array([0.0, 1.0])), ("list", lambda: [0.0, 1.0])],
        pandas=[("pandas", lambda pd: pd.Series([0.0, 1.0]))],
        pyarrow=[("arrow", lambda pa: pa.array([0.0, 1.0]))],
        polars=[("polars", lambda pl: pl.Series([0.0, 1.0]))])


FLOATS = _float_columns()


@pytest.mark.parametrize("make", [m for _, m in FLOATS], ids=[n for n, _ in FLOATS])
def test_a_float_types_column_raises_before_any_handler(bus, make):
    bus.subscribe_batch("md.tick", lambda rows: pytest.fail("ran"))
    with pytest.raises(TypeError, match="types must hold event type ids"):
        bus.emit_batch(make(), np.arange(2))


def test_event_types_of_checks_register(bus):
    with pytest.raises(TypeError, match="register"):
        bus.event_types_of(["md.tick"], register="yes")


# -- rows as the user has them --------------------------------------------------------------------

def _frame(kind, data):
    """``data`` (a dict of lists) as a frame of ``kind``."""
    if kind == "pandas":
        return _pd().DataFrame(data)
    if kind == "polars":
        return _pl().DataFrame(data)
    pa = _pa()
    return pa.table(data) if kind == "arrow table" else pa.RecordBatch.from_pydict(data)


def _as_lists(kind, frame):
    """A frame as {column: list}, whatever its kind."""
    if kind == "pandas":
        return {c: frame[c].tolist() for c in frame.columns}
    if kind == "polars":
        return frame.to_dict(as_series=False)
    return frame.to_pydict()


FRAMES = ["pandas", "polars", "arrow batch", "arrow table"]
FRAME_TYPES = {"pandas": "DataFrame", "polars": "DataFrame", "arrow batch": "RecordBatch",
               "arrow table": "Table"}


@pytest.mark.parametrize("kind", FRAMES)
def test_batch_handlers_get_their_group_as_the_same_kind_in_original_order(bus, kind):
    data = {"event": ["md.trade", "md.tick", "md.trade", "md.tick", "md.trade"],
            "px": [1.5, 2.5, 3.5, 4.5, 5.5], "qty": [1, 2, 3, 4, 5]}
    frame = _frame(kind, data)
    got = []
    for name in NAMES:
        bus.subscribe_batch(name, lambda t, rows: got.append((t, rows)), with_type=True)
    assert bus.emit_batch("event", frame) == 5
    assert [t for t, _ in got] == [0, 1]            # ascending ids, no call for md.quote
    for t, rows in got:
        assert type(rows).__name__ == FRAME_TYPES[kind]
        assert type(rows).__module__.split(".")[0] == type(frame).__module__.split(".")[0]
    assert _as_lists(kind, got[0][1]) == {"event": ["md.tick"] * 2, "px": [2.5, 4.5],
                                          "qty": [2, 4]}
    assert _as_lists(kind, got[1][1]) == {"event": ["md.trade"] * 3,
                                          "px": [1.5, 3.5, 5.5], "qty": [1, 3, 5]}


@pytest.mark.parametrize("kind", FRAMES)
def test_per_event_handlers_get_each_row_of_a_frame_as_a_dict(bus, kind):
    frame = _frame(kind, {"event": ["md.trade", "md.tick", "md.trade"], "qty": [1, 2, 3]})
    got = []
    bus.subscribe("md.trade", got.append)
    bus.subscribe("md.tick", lambda t, row: got.append((t, row)), with_type=True)
    bus.emit_batch("event", frame)
    assert got == [(0, {"event": "md.tick", "qty": 2}),
                   {"event": "md.trade", "qty": 1}, {"event": "md.trade", "qty": 3}]


@pytest.mark.parametrize("kind", FRAMES)
def test_types_may_be_ids_or_a_names_column_given_apart_from_the_frame(bus, kind):
    frame = _frame(kind, {"qty": [1, 2, 3]})
    got = []
    bus.subscribe_batch("md.quote", lambda rows: got.append(_as_lists(kind, rows)["qty"]))
    bus.emit_batch(np.array([2, 0, 2]), frame)
    bus.emit_batch(["md.quote", "md.quote", "md.tick"], frame)
    assert got == [[1, 3], [1, 2]]


@pytest.mark.parametrize("kind", FRAMES)
def test_grouped_rows_are_sliced_in_place(bus, kind):
    n = 6
    frame = _frame(kind, {"event": ["md.trade"] * 3 + ["md.tick"] * 3,
                          "qty": list(range(n))})
    got = {}
    for name in NAMES:
        bus.subscribe_batch(name, lambda t, rows: got.__setitem__(t, rows), with_type=True)
    bus.emit_batch("event", frame)
    tick, trade = got[0], got[1]
    assert _as_lists(kind, tick)["qty"] == [3, 4, 5]
    assert _as_lists(kind, trade)["qty"] == [0, 1, 2]
    if kind == "pandas":
        assert np.shares_memory(tick["qty"].to_numpy(), frame["qty"].to_numpy())
    elif kind == "polars":
        assert np.shares_memory(tick["qty"].to_numpy(), frame["qty"].to_numpy())
    else:
        column = frame.column("qty")
        chunk = column.chunk(0) if kind == "arrow table" else column
        slice_ = tick.column("qty")
        slice_ = slice_.chunk(0) if kind == "arrow table" else slice_
        assert slice_.buffers()[1].address == chunk.buffers()[1].address


def test_grouped_numpy_rows_are_views_of_the_batch(bus):
    rows = np.arange(6)
    got = {}
    bus.subscribe_batch("md.trade", lambda v: got.setdefault("trade", v))
    bus.emit_batch(np.array([1, 1, 1, 2, 2, 2]), rows)
    assert got["trade"].tolist() == [0, 1, 2] and np.shares_memory(got["trade"], rows)


def test_a_numpy_structured_field_names_the_types(bus):
    rows = np.array([("md.tick", 1), ("md.quote", 2), ("md.tick", 3)],
                    dtype=[("event", "U16"), ("qty", "i8")])
    got = []
    bus.subscribe_batch("md.tick", lambda v: got.append(v["qty"].tolist()))
    bus.emit_batch("event", rows)
    assert got == [[1, 3]]
    with pytest.raises(KeyError, match="'missing' is not a field"):
        bus.emit_batch("missing", rows)


@pytest.mark.parametrize("kind", FRAMES)
def test_bad_frames_raise_before_any_handler(bus, kind):
    frame = _frame(kind, {"event": ["md.tick", "md.trade"], "px": [1.0, 2.0]})
    bus.subscribe_batch("md.tick", lambda rows: pytest.fail("ran"))
    with pytest.raises(KeyError, match="'nope' is not a column.*'event', 'px'"):
        bus.emit_batch("nope", frame)
    with pytest.raises(ValueError, match="'nope' is not a column"):
        bus.emit_batch("nope", frame)
    with pytest.raises(TypeError, match="must hold event type ids .integers. or names"):
        bus.emit_batch("px", frame)
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        bus.emit_batch(np.array([0, 0, 0]), frame)
    with pytest.raises(ValueError, match="same length, got 1 and 2"):
        bus.emit_batch(["md.tick"], frame)
    nulls = _frame(kind, {"event": ["md.tick", None], "px": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"types\[1\] is null"):
        bus.emit_batch("event", nulls)
    with pytest.raises(ValueError, match="unknown event name"):
        bus.emit_batch("event", _frame(kind, {"event": ["md.tick", "zz"]}))


def test_a_polars_lazyframe_is_refused(bus):
    pl = _pl()
    with pytest.raises(TypeError, match="collect"):
        bus.emit_batch("event", pl.LazyFrame({"event": ["md.tick"]}))


@pytest.mark.parametrize("kind", FRAMES)
def test_publish_batch_queues_a_frame_the_caller_may_change(kind):
    with ringbus.Bus() as bus:
        tick = bus.event_type("md.tick")
        frame = _frame(kind, {"event": ["md.tick", "md.tick"], "qty": [1, 2]})
        got = []
        bus.subscribe_batch(tick, lambda rows: got.append(_as_lists(kind, rows)["qty"]))
        assert bus.publish_batch("event", frame)
        if kind == "pandas":
            frame.loc[0, "qty"] = 99        # after publish: not what the consumer sees
        bus.drain()
        assert got == [[1, 2]]


def test_empty_frames_call_nobody(bus):
    pd = _pd()
    bus.subscribe_batch("md.tick", lambda rows: pytest.fail("ran"))
    frame = pd.DataFrame({"event": pd.Series([], dtype=object), "qty": []})
    assert bus.emit_batch("event", frame) == 0


# -- with_type ----------------------------------------------------------------------------------

def test_with_type_tells_one_handler_which_type_it_got(bus):
    got = []

    class Sink:
        def on_rows(self, t, rows):
            got.append(("method", t, rows.tolist()))

    def fn(t, rows):
        got.append(("fn", t, len(rows)))

    sink = Sink()
    for name in NAMES:
        bus.subscribe_batch(name, sink.on_rows, with_type=True)        # held weakly
        bus.subscribe_batch(name, fn, with_type=True, weak=True)
    bus.emit_batch(np.array([2, 0, 2]), np.arange(3))
    assert got == [("method", 0, [1]), ("fn", 0, 1), ("method", 2, [0, 2]), ("fn", 2, 2)]
    del sink, fn
    got.clear()
    bus.emit_batch(np.array([2, 0, 2]), np.arange(3))
    assert got == [] and bus.subscriptions("md.tick") == ()


def test_with_type_on_per_event_handlers_big_ids_included():
    bus = ringbus.Bus()
    ids = [bus.event_type(f"t{i}") for i in range(1000)]
    big, small = ids[999], ids[5]
    got = []

    @bus.on(big, with_type=True)
    def both(t, payload):
        got.append((t, payload))

    bus.subscribe(small, both, with_type=True)
    bus.emit(big, "a")
    bus.emit(small, "b")
    bus.publish(big, "c")
    bus.drain()
    assert got == [(big, "a"), (small, "b"), (big, "c")]


def test_with_type_is_checked_at_subscribe(bus):
    with pytest.raises(TypeError, match="two positional arguments"):
        bus.subscribe_batch("md.tick", lambda rows: None, with_type=True)
    with pytest.raises(TypeError, match="with_type must be True or False"):
        bus.subscribe_batch("md.tick", lambda t, rows: None, with_type=1)

    async def coro(t, p):
        pass
    with pytest.raises(TypeError, match="with_type=True takes a plain function"):
        bus.subscribe("md.tick", coro, with_type=True)
    assert bus.subscriptions("md.tick") == ()


def test_a_with_type_handler_error_goes_to_the_policy_with_the_rows():
    seen = []
    bus = ringbus.Bus(on_error=lambda t, payload, sub, exc: seen.append((t, payload.tolist(),
                                                                          str(exc))))
    t = bus.event_type("a")

    def boom(event_type, rows):
        raise RuntimeError(f"bad {event_type}")
    bus.subscribe_batch(t, boom, with_type=True)
    bus.emit_batch(np.array([t, t]), np.arange(2))
    assert seen == [(t, [0, 1], f"bad {t}")]
