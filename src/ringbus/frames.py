"""The rows of a batch as the user has them: a pandas or polars DataFrame, an Arrow
RecordBatch or Table (a 1-D numpy array needs none of this).

Each kind is a small adapter the batch router drives the same way: one gather of the rows
in grouped order (``take(order)``), or none when the input is already grouped, then a
zero-copy slice per group in the kind the user gave (``part``), and, only for a type with
per-event subscribers, that group's rows as dicts (``per_row``). Nothing here loops over
rows in Python. The libraries are recognised by their types' module names and never
imported by ringbus itself: only objects the user made reach these adapters.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

__all__ = ["ColumnNotFound", "FrameRows", "as_rows", "column_of"]


class ColumnNotFound(KeyError, ValueError):
    """``types`` named a column the rows do not have (both a KeyError, as a mapping miss,
    and a ValueError, as a bad argument)."""

    def __str__(self) -> str:       # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class FrameRows(ABC):
    """A DataFrame-like batch: what the router needs of it (one subclass per library)."""

    __slots__ = ("rows", "n")
    kind = "rows"

    def __init__(self, rows: Any, n: int):
        self.rows, self.n = rows, n

    def __len__(self) -> int:
        return self.n

    @abstractmethod
    def columns(self) -> list[str]: ...

    @abstractmethod
    def column(self, name: str) -> Any: ...

    def copy(self) -> "FrameRows":
        """For publish_batch: rows the caller may change once publish returns."""
        return self

    @abstractmethod
    def take(self, order: Any) -> Any:
        """The rows in ``order`` (row indices, an intp array), as the user's kind."""

    @staticmethod
    @abstractmethod
    def part(rows: Any, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of ``rows`` (the user's kind), zero-copy."""

    @staticmethod
    @abstractmethod
    def per_row(rows: Any) -> Sequence[Any]:
        """``rows`` as one dict per row, for per-event subscribers."""

    def _missing(self, name: str) -> ColumnNotFound:
        shown = ", ".join(repr(c) for c in self.columns()[:20])
        return ColumnNotFound(f"types={name!r} is not a column of the rows ({self.kind}); "
                              f"the columns are: {shown}")


class PandasRows(FrameRows):
    """A pandas DataFrame; groups are DataFrames (original index kept), rows dicts."""

    __slots__ = ()
    kind = "pandas DataFrame"

    def columns(self) -> list[str]:
        return [str(c) for c in self.rows.columns]

    def column(self, name: str) -> Any:
        if name not in self.rows.columns:
            raise self._missing(name)
        col = self.rows[name]
        if type(col).__name__ != "Series":
            raise ValueError(f"types={name!r} names {len(col.columns)} columns of the "
                             f"DataFrame: column names must be unique")
        return col

    def copy(self) -> "PandasRows":
        # Under copy-on-write (always in pandas 3) a shallow copy is already a snapshot.
        import pandas as pd
        deep = int(pd.__version__.split(".")[0]) < 3
        return PandasRows(self.rows.copy(deep=deep), self.n)

    def take(self, order: Any) -> Any:
        return self.rows.take(order)

    @staticmethod
    def part(rows: Any, start: int, stop: int) -> Any:
        return rows.iloc[start:stop]

    @staticmethod
    def per_row(rows: Any) -> Sequence[Any]:
        return rows.to_dict("records")


class PolarsRows(FrameRows):
    """A polars DataFrame; groups are DataFrames, rows dicts."""

    __slots__ = ()
    kind = "polars DataFrame"

    def columns(self) -> list[str]:
        return list(self.rows.columns)

    def column(self, name: str) -> Any:
        if name not in self.rows.columns:
            raise self._missing(name)
        return self.rows.get_column(name)

    def copy(self) -> "PolarsRows":
        return PolarsRows(self.rows.clone(), self.n)     # shares the (immutable) buffers

    def take(self, order: Any) -> Any:
        return self.rows[order]

    @staticmethod
    def part(rows: Any, start: int, stop: int) -> Any:
        return rows.slice(start, stop - start)

    @staticmethod
    def per_row(rows: Any) -> Sequence[Any]:
        return rows.to_dicts()


class ArrowRows(FrameRows):
    """A pyarrow RecordBatch or Table (immutable: no copy to publish); groups are the same
    kind, rows dicts."""

    __slots__ = ()

    @property
    def kind(self) -> str:     # type: ignore[override]
        return f"pyarrow {type(self.rows).__name__}"

    def columns(self) -> list[str]:
        return list(self.rows.schema.names)

    def column(self, name: str) -> Any:
        index = self.rows.schema.get_field_index(name)
        if index < 0:
            if name in self.rows.schema.names:
                raise ValueError(f"types={name!r} names several columns of the "
                                 f"{self.kind}: column names must be unique")
            raise self._missing(name)
        return self.rows.column(index)

    def take(self, order: Any) -> Any:
        import pyarrow.compute as pc
        # The router made `order` from the rows' own count: no bounds to check (~15%).
        return pc.take(self.rows, order, boundscheck=False)

    @staticmethod
    def part(rows: Any, start: int, stop: int) -> Any:
        return rows.slice(start, stop - start)

    @staticmethod
    def per_row(rows: Any) -> Sequence[Any]:
        return rows.to_pylist()


def as_rows(rows: Any) -> Any:
    """A FrameRows for a DataFrame, RecordBatch or Table; anything else as a numpy array."""
    import numpy as np

    if isinstance(rows, np.ndarray):
        return rows
    cls = type(rows)
    module, name = cls.__module__, cls.__name__
    if module.startswith("pandas") and name == "DataFrame":
        return PandasRows(rows, len(rows))
    if module.startswith("polars"):
        if name == "DataFrame":
            return PolarsRows(rows, rows.height)
        if name == "LazyFrame":
            raise TypeError("rows is a polars LazyFrame: collect() it (or each chunk of it) "
                            "first")
    if module.startswith("pyarrow") and name in ("RecordBatch", "Table"):
        return ArrowRows(rows, rows.num_rows)
    return np.asarray(rows)


def column_of(rows: Any, name: str) -> Any:
    """The column ``name`` of the rows (a numpy structured array's field, or a frame's)."""
    if isinstance(rows, FrameRows):
        return rows.column(name)
    fields = rows.dtype.names
    if not fields or name not in fields:
        shown = ", ".join(repr(f) for f in fields or ())
        raise ColumnNotFound(
            f"types={name!r} is not a field of the rows (numpy dtype {rows.dtype}); "
            + (f"the fields are: {shown}" if fields else
               "a str types names a column: give rows with that column or field"))
    return rows[name]
