"""A column of event types, as the user has it, to one int64 array of ids.

The column may hold ids (any integer column) or event *names*: numpy ``str`` / object
arrays, a pandas string or Categorical column, an Arrow string or dictionary array, a polars
String, Categorical or Enum Series. Names go through one compiled pass (``ringbus._names``)
that asks the registry once per distinct name; a Categorical or dictionary column maps its
*categories* once, then its codes (``lut[codes]``).

pandas, polars and pyarrow are never imported here unless the column is one of theirs (told
by its type's module name), so that ``import ringbus`` and numpy batches never load them.
Imported lazily by the batch router: numpy itself stays optional for the rest of ringbus.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ringbus import _names

__all__ = ["event_ids", "Names"]

_I64 = np.dtype(np.int64)


class Names:
    """How one mapping resolves names the registry lacks: registers them, or collects them
    (distinct, in the order met) for the error that names them."""

    __slots__ = ("registry", "register", "arg", "unknown", "resolve", "known", "lenient")

    def __init__(self, registry: Any, register: bool, arg: str, lenient: bool = False):
        self.registry, self.register, self.arg = registry, register, arg
        # Categories: an unknown one is -1 in the table, an error only if a row uses it.
        self.lenient = lenient
        self.unknown: dict[str, None] = {}        # distinct, in the order met
        self.known: dict[str, int] = registry._names     # read-only here
        self.resolve: Callable[[str], int] = (registry.event_type if register
                                              else self._missing)

    def _missing(self, name: str) -> int:
        t = self.known.get(name)
        if t is not None:
            return t
        self.unknown[name] = None
        return -1

    def check(self, names: Optional[list] = None) -> None:
        """Raise for the unknown names met (or ``names``): ValueError naming them."""
        missing = list(self.unknown) if names is None else names
        if not missing or (self.lenient and names is None):
            return
        shown = ", ".join(repr(m) for m in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ValueError(
            f"{self.arg} holds {len(missing)} unknown event name(s): {shown}{more} "
            f"(register them with bus.event_type(name), or map with "
            f"bus.event_types_of(names, register=True))")


def event_ids(registry: Any, column: Any, *, register: bool = False,
              arg: str = "types") -> Any:
    """``column`` as a 1-D numpy array of ids: an integer column as it is (the caller checks
    its range), names mapped to int64 ids. Raises before returning for a null, a float or
    other non-id column (TypeError), or an unknown name (ValueError, unless ``register``)."""
    ctx = Names(registry, register, arg)
    ids = _ids(column, ctx)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{arg} must hold event type ids (integers) or names, got "
                        f"dtype {ids.dtype}")
    return ids


def _ids(column: Any, ctx: Names) -> Any:
    """An integer array (ids as given) or int64 ids of names (-1: an unknown category of a
    lenient mapping; otherwise an unknown name has raised)."""
    if isinstance(column, np.ndarray):
        return _numpy(column, ctx)
    module = type(column).__module__
    if module.startswith("pandas"):
        return _pandas(column, ctx)
    if module.startswith("polars"):
        return _polars(column, ctx)
    if module.startswith("pyarrow"):
        return _arrow(column, ctx)
    if isinstance(column, (list, tuple)):
        if not column:
            return np.empty(0, dtype=_I64)      # not numpy's float64 for []
        if isinstance(column[0], str):
            # A list of str: object cells, not numpy's fixed-width copy.
            return _numpy(np.array(column, dtype=object), ctx)
    return _numpy(np.asarray(column), ctx)


def _null_at(arg: str, position: int) -> ValueError:
    return ValueError(f"{arg}[{position}] is null: every row needs an event type (fill or "
                      f"drop the nulls first)")


def _float(arg: str, dtype: Any) -> TypeError:
    return TypeError(f"{arg} must hold event type ids (integers) or names, got {dtype}")


def _numpy(a: Any, ctx: Names) -> Any:
    if a.ndim != 1:
        raise ValueError(f"{ctx.arg} must be a 1-D array, got {a.ndim} dimensions")
    kind = a.dtype.kind
    if kind in "iu":
        return a
    out = np.empty(len(a), dtype=_I64)
    if kind == "O":
        _names.ids_of_objects(a if a.flags.c_contiguous else np.ascontiguousarray(a),
                              ctx.known, ctx.resolve, out)
    elif kind in "US":
        a = np.ascontiguousarray(a)
        if kind == "U" and not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        _names.ids_of_cells(a.view(np.uint8).reshape(-1) if a.size else
                            np.empty(0, np.uint8), a.dtype.itemsize, kind == "U",
                            ctx.resolve, out)
    else:
        raise _float(ctx.arg, f"dtype {a.dtype}")
    ctx.check()
    return out


def _through_lut(lut: Any, codes: Any, categories: Any, ctx: Names) -> Any:
    """Categories mapped once (``lut``, -1: unknown), then the codes: the ids; raises
    naming the unknown categories that rows use (unused ones do not matter)."""
    ids = lut.take(codes)
    if len(ids) and ids.min() < 0:
        used = np.unique(codes[ids < 0])
        ctx.check([str(categories[int(c)]) for c in used])
    return ids


def _categories_lut(categories: Any, ctx: Names) -> Any:
    return _ids(categories, Names(ctx.registry, ctx.register, ctx.arg, lenient=True))


def _pandas(column: Any, ctx: Names) -> Any:
    name = type(column).__name__
    if name in ("DataFrame",):
        raise TypeError(f"{ctx.arg} must be one column, got a DataFrame (give its name)")
    dtype = column.dtype
    if getattr(dtype, "name", None) == "category":
        cat = getattr(column, "array", column)      # a Series' / Index's Categorical
        codes = np.asarray(cat.codes)
        if len(codes) and codes.min() < 0:
            raise _null_at(ctx.arg, int(np.argmax(codes < 0)))
        lut = _categories_lut(np.asarray(cat.categories, dtype=object), ctx)
        return _through_lut(lut.astype(_I64, copy=False), codes, cat.categories, ctx)
    kind = getattr(dtype, "kind", "O")
    if kind not in "iuOSU":
        raise _float(ctx.arg, f"dtype {dtype}")
    nulls = np.asarray(column.isna())
    if nulls.any():
        raise _null_at(ctx.arg, int(np.argmax(nulls)))
    if kind in "iu":
        return np.asarray(column.to_numpy(dtype=np.int64))
    array = getattr(column, "array", column)
    if getattr(dtype, "storage", None) == "pyarrow" or type(dtype).__name__ == "ArrowDtype":
        to_arrow = getattr(array, "__arrow_array__", None)
        if to_arrow is not None:
            return _arrow(to_arrow(), ctx)
    return _numpy(np.asarray(column.to_numpy(dtype=object)), ctx)


def _arrow(column: Any, ctx: Names) -> Any:
    import pyarrow as pa        # the column is pyarrow's: it is imported already

    if isinstance(column, pa.ChunkedArray):
        parts = [_arrow(chunk, ctx) for chunk in column.chunks]
        if not parts:
            return np.empty(0, dtype=_I64)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p.astype(_I64, copy=False) for p in parts])
    if not isinstance(column, pa.Array):
        raise TypeError(f"{ctx.arg} must be one column, got {type(column).__name__} "
                        f"(give a column name, or an Array)")
    t = column.type
    types = pa.types
    if types.is_null(t):            # no values at all: nulls only, or no rows
        if len(column):
            raise _null_at(ctx.arg, 0)
        return np.empty(0, dtype=_I64)
    if types.is_floating(t) or not (types.is_integer(t) or types.is_string(t)
                                    or types.is_large_string(t) or types.is_dictionary(t)
                                    or types.is_string_view(t)):
        raise _float(ctx.arg, f"Arrow type {t}")
    if column.null_count:
        nulls = column.is_null().to_numpy(zero_copy_only=False)
        raise _null_at(ctx.arg, int(np.argmax(nulls)))
    if types.is_integer(t):
        return column.to_numpy(zero_copy_only=False)
    if types.is_dictionary(t):
        lut = _categories_lut(column.dictionary, ctx).astype(_I64, copy=False)
        codes = column.indices.to_numpy(zero_copy_only=False)
        return _through_lut(lut, codes, column.dictionary.to_pylist(), ctx)
    n = len(column)
    out = np.empty(n, dtype=_I64)
    if types.is_string_view(t):
        buffers = column.buffers()
        views = np.frombuffer(buffers[1], dtype=np.uint8)[column.offset * 16:
                                                          (column.offset + n) * 16]
        _names.ids_of_views(views, [np.frombuffer(b, dtype=np.uint8) if b is not None
                                    else np.empty(0, np.uint8) for b in buffers[2:]],
                            ctx.resolve, out)
        ctx.check()
        return out
    _, offsets, data = column.buffers()
    width = np.int64 if types.is_large_string(t) else np.int32
    offsets = np.frombuffer(offsets, dtype=width)[column.offset:column.offset + n + 1] \
        if n else np.zeros(1, dtype=width)
    _names.ids_of_utf8(offsets, np.frombuffer(data, dtype=np.uint8) if data is not None
                       and data.size else np.empty(0, np.uint8), ctx.resolve, out)
    ctx.check()
    return out


def _polars(column: Any, ctx: Names) -> Any:
    import polars as pl         # the column is polars': it is imported already

    if not isinstance(column, pl.Series):
        raise TypeError(f"{ctx.arg} must be one column, got {type(column).__name__} "
                        f"(give a column name, or a Series)")
    dtype = column.dtype
    if dtype.is_float() or not (dtype.is_integer() or dtype in (pl.String, pl.Categorical)
                                or isinstance(dtype, (pl.Enum, pl.Categorical))):
        raise _float(ctx.arg, f"polars dtype {dtype}")
    if column.null_count():
        raise _null_at(ctx.arg, int(np.argmax(column.is_null().to_numpy())))
    if dtype.is_integer():
        return column.to_numpy()
    if isinstance(dtype, pl.Enum):
        categories = dtype.categories.to_list()
        lut = _categories_lut(np.array(categories, dtype=object), ctx).astype(_I64)
        return _through_lut(lut, column.to_physical().to_numpy(), categories, ctx)
    try:
        # String views as polars holds them (no conversion); Categorical: a dictionary.
        arrow = column.to_arrow(compat_level=pl.CompatLevel.newest())
    except ImportError:                 # polars without pyarrow: Python str per row
        return _numpy(np.array(column.to_list(), dtype=object), ctx)
    return _arrow(arrow, ctx)
