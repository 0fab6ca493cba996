"""Batch routing: group the rows of a batch by event type in compiled code.

One stable counting pass (histogram, prefix sums, scatter of row indices), then one gather
of the rows (``ndarray.take``, or the DataFrame's / Arrow batch's own take; none when the
rows are already grouped), then one dispatch per type present, in ascending id order, each
with a slice of the gathered rows. No Python loop over rows and no sort: the cost per row
is a few C operations.
"""
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from ringbus._dispatch cimport DispatchTable


def prepare(DispatchTable table not None, types, rows, bint copy=False, registry=None):
    """Check a batch and return it as (int64 ids, rows); raises before anything runs.

    ``rows``: a 1-D numpy array, or a pandas / polars DataFrame or an Arrow RecordBatch /
    Table (returned wrapped in a :class:`ringbus.frames.FrameRows`). ``types``: a column
    of ids or of event names (mapped with ``registry``'s names), or a ``str``: the name of
    that column in ``rows``. ``copy=True`` for queued batches: the caller may reuse what it
    passed once publish returns.
    """
    import numpy as np
    from ringbus import frames

    rows = frames.as_rows(rows)
    cdef bint framed = isinstance(rows, frames.FrameRows)
    if not framed and rows.ndim != 1:
        raise ValueError(f"rows must be a 1-D array, a DataFrame or an Arrow RecordBatch "
                         f"or Table, got {rows.ndim} dimensions")
    cdef Py_ssize_t n = len(rows) if framed else rows.shape[0]
    if isinstance(types, str):
        types = frames.column_of(rows, types)
    if not (isinstance(types, np.ndarray) and types.dtype.kind in "iu"):
        if registry is None:
            raise TypeError("types of names need a Bus (its names): pass ids")
        from ringbus import columns
        types = columns.event_ids(registry, types, arg="types")
    if types.ndim != 1:
        raise ValueError(f"types must be a 1-D array, got {types.ndim} dimensions")
    if types.shape[0] != n:
        raise ValueError(f"types and rows must have the same length, got {types.shape[0]} "
                         f"and {n}")
    if types.dtype.kind == "u" and types.dtype.itemsize >= 8:
        if n and types.max() > np.iinfo(np.int64).max:
            raise ValueError("types holds ids beyond the table")
    ids = np.array(types, dtype=np.int64, copy=True) if copy else \
        np.ascontiguousarray(types, dtype=np.int64)
    if n and (ids.min() < 0 or ids.max() >= table._size):
        bad = int(np.flatnonzero((ids < 0) | (ids >= table._size))[0])
        raise ValueError(f"types[{bad}] = {types[bad]} is not a registered event type id: "
                         f"expected 0 <= id < {table._size}")
    return ids, (rows.copy() if copy else rows)


def route(DispatchTable table not None, ids_array, rows):
    """Dispatch ``rows`` grouped by ``ids_array`` (from :func:`prepare`) through ``table``;
    returns the number of rows.

    Types run in ascending id order, each type's rows in their original order. Rows already
    grouped (each type's rows one contiguous run) are sliced where they are, zero-copy;
    otherwise they are gathered once, in grouped order, then sliced.
    """
    import numpy as np
    from ringbus.frames import FrameRows
    cdef const int64_t[::1] ids = ids_array
    cdef Py_ssize_t n = ids.shape[0]
    if n == 0:
        return 0
    cdef Py_ssize_t size = table._size
    cdef Py_ssize_t i, k, npresent = 0, bad = -1
    cdef int64_t t
    # counts[t]: rows of type t; after the prefix pass, the next free position of type t.
    cdef Py_ssize_t *counts = <Py_ssize_t *>calloc(size + 1, sizeof(Py_ssize_t))
    if counts == NULL:
        raise MemoryError()
    cdef Py_ssize_t[::1] order
    cdef Py_ssize_t[::1] run_start
    cdef bint framed = isinstance(rows, FrameRows)
    per_row = rows.per_row if framed else None
    try:
        with nogil:
            for i in range(n):
                t = ids[i]
                if t < 0 or t >= size:      # prepare() checked; the table cannot shrink
                    bad = i
                    break
                counts[t] += 1
        if bad >= 0:
            raise ValueError(f"ids[{bad}] = {ids[bad]} is outside the table")
        present = np.empty(size if size < n else n, dtype=np.intp)
        starts = np.empty_like(present)
        lengths = np.empty_like(present)
        _prefix(counts, size, present, starts, lengths, &npresent)
        for k in range(npresent):       # once per type: an id this bus never registered
            if table._slots[present[k]].count < 0:
                table.check_id(present[k])
        if npresent == 1:
            # One type: its run is the whole batch (the prefix pass set starts[0] = 0), with
            # no pass over the ids to find it.
            grouped = rows.rows if framed else rows
        elif _grouped(ids, npresent):
            # Already grouped: one run per type. Its rows stay where they are: each group is
            # a slice of the input at its run's start.
            run_start = starts
            _run_starts(ids, counts, size, present, npresent, run_start)
            grouped = rows.rows if framed else rows
        elif framed:
            order = np.empty(n, dtype=np.intp)
            _scatter_indices(ids, counts, order)
            grouped = rows.take(np.asarray(order))
        elif rows.dtype.hasobject or not rows.flags.c_contiguous:
            # Object rows need numpy to own the references: scatter indices, then take.
            order = np.empty(n, dtype=np.intp)
            _scatter_indices(ids, counts, order)
            grouped = rows.take(np.asarray(order))
        else:
            # Plain bytes: move each row once, straight to its group (16 sequential write
            # streams with 16 types), instead of an index scatter plus a random gather.
            grouped = np.empty_like(rows)
            _scatter_rows(ids, counts, rows.view(np.uint8).reshape(-1),
                          grouped.view(np.uint8).reshape(-1), rows.dtype.itemsize)
    finally:
        free(counts)
    if framed:
        part = rows.part
        for k in range(npresent):
            start = starts[k]
            table.dispatch_group(present[k], part(grouped, start, start + lengths[k]),
                                 lengths[k], per_row)
    else:
        for k in range(npresent):
            start = starts[k]
            table.dispatch_group(present[k], grouped[start:start + lengths[k]], lengths[k])
    return n


cdef bint _grouped(const int64_t[::1] ids, Py_ssize_t npresent) noexcept nogil:
    """Whether each type's rows form one run. Its own pass, not a count in the counting
    loop (a branch per row there cost 10% on random types): mixed ids show more runs than
    types within a few rows and stop it at once; only grouped ids are read to the end."""
    cdef Py_ssize_t i, runs = 1, n = ids.shape[0]
    for i in range(1, n):
        if ids[i] != ids[i - 1]:
            runs += 1
            if runs > npresent:
                return False
    return True


cdef int _scatter_indices(const int64_t[::1] ids, Py_ssize_t *counts,
                          Py_ssize_t[::1] order) except -1:
    """order[counts[t]++] = i: the row indices, grouped by type, stable."""
    cdef Py_ssize_t i, n = ids.shape[0]
    cdef int64_t t
    with nogil:
        for i in range(n):
            t = ids[i]
            order[counts[t]] = i
            counts[t] += 1
    return 0


cdef int _run_starts(const int64_t[::1] ids, Py_ssize_t *counts, Py_ssize_t size,
                     Py_ssize_t[::1] present, Py_ssize_t npresent,
                     Py_ssize_t[::1] starts) except -1:
    """For grouped ids: starts[k] = where the run of type present[k] begins in the input."""
    cdef Py_ssize_t i, k, n = ids.shape[0]
    with nogil:
        for k in range(npresent):
            counts[present[k]] = k          # type -> its index in `present`
        starts[counts[ids[0]]] = 0
        for i in range(1, n):
            if ids[i] != ids[i - 1]:
                starts[counts[ids[i]]] = i
    return 0


cdef int _scatter_rows(const int64_t[::1] ids, Py_ssize_t *counts,
                      const unsigned char[::1] src, unsigned char[::1] dst,
                      Py_ssize_t itemsize) except -1:
    cdef Py_ssize_t i, n = ids.shape[0]
    cdef int64_t t
    cdef const unsigned char *s = &src[0] if src.shape[0] else NULL
    cdef unsigned char *d = &dst[0] if dst.shape[0] else NULL
    if itemsize == 0:
        return 0
    with nogil:
        # Fixed sizes get a constant-size memcpy the compiler turns into moves.
        if itemsize == 16:
            for i in range(n):
                t = ids[i]
                memcpy(d + counts[t] * 16, s + i * 16, 16)
                counts[t] += 1
        elif itemsize == 8:
            for i in range(n):
                t = ids[i]
                memcpy(d + counts[t] * 8, s + i * 8, 8)
                counts[t] += 1
        else:
            for i in range(n):
                t = ids[i]
                memcpy(d + counts[t] * itemsize, s + i * itemsize, itemsize)
                counts[t] += 1
    return 0


cdef int _prefix(Py_ssize_t *counts, Py_ssize_t size, Py_ssize_t[::1] present,
                 Py_ssize_t[::1] starts, Py_ssize_t[::1] lengths,
                 Py_ssize_t *npresent) except -1 nogil:
    """Turn counts into start offsets; list the types present in ascending id order."""
    cdef Py_ssize_t t, c, pos = 0, k = 0
    for t in range(size):
        c = counts[t]
        if c:
            present[k] = t
            starts[k] = pos
            lengths[k] = c
            counts[t] = pos
            pos += c
            k += 1
    npresent[0] = k
    return 0
