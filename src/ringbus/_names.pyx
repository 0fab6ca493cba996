"""Event names to ids in bulk: one compiled pass over a column of names.

Three layouts of a column, one pass each, each asking Python only once per *distinct* name
(``resolve(name) -> id or -1``, the registry's look-up):

- Python ``str`` objects (a numpy object array): the registry's dict, read with its cached
  hash, plus the previous row's answer when the same object repeats;
- UTF-8 bytes with offsets (an Arrow ``string`` / ``large_string`` array, zero-copy);
- fixed-width cells (numpy ``U`` / ``S`` arrays).

The byte layouts go through a small open-addressing table keyed by the bytes themselves
(pointers into the caller's buffers, valid for the pass), so no ``str`` is made per row.
Rows whose name is unknown get -1; the caller names them in its error.
"""
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_CheckExact, PyUnicode_Check
from libc.stdint cimport int32_t, int64_t, intptr_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    object PyUnicode_FromKindAndData(int kind, const void *buffer, Py_ssize_t size)
    Py_ssize_t PyLong_AsSsize_t(PyObject *o) except? -1
    int PyUnicode_4BYTE_KIND


cdef struct NameSlot:
    const char *key         # NULL: empty slot; else into the caller's buffer
    Py_ssize_t length
    uint64_t hash
    # The two words _words() reads: for a key of <= 16 bytes they hold every byte, so
    # equal words and length are equal keys (no memcmp call on the common path).
    uint64_t w0, w1
    int64_t id              # -1: looked up, unknown


cdef class _ByteNames:
    """Bytes -> id for one pass; grows at half load (distinct names are few)."""
    cdef NameSlot *slots
    cdef size_t mask
    cdef size_t used

    def __cinit__(self):
        self.mask = 255
        self.used = 0
        self.slots = <NameSlot *>calloc(self.mask + 1, sizeof(NameSlot))
        if self.slots == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.slots)

    cdef int64_t add(self, NameSlot *s, const char *key, Py_ssize_t length, uint64_t h,
                     uint64_t w0, uint64_t w1, object resolve, bint ucs4) except -2:
        """The slow path of _lookup: a key met for the first time is decoded, given to
        ``resolve`` (once) and put in the empty slot ``s``; returns its id."""
        if ucs4:
            name = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, key, length // 4)
        else:
            name = PyUnicode_DecodeUTF8(key, length, "strict")
        cdef int64_t found = _resolve(resolve, name)
        s.key, s.length, s.hash, s.w0, s.w1, s.id = key, length, h, w0, w1, found
        self.used += 1
        if self.used * 4 > self.mask:       # a quarter full: probes rarely go past one slot
            self._grow()
        return found

    cdef int _grow(self) except -1:
        cdef size_t old_mask = self.mask, i, j
        cdef NameSlot *old = self.slots
        cdef NameSlot *fresh = <NameSlot *>calloc((old_mask + 1) * 2, sizeof(NameSlot))
        if fresh == NULL:
            raise MemoryError()
        self.slots, self.mask = fresh, old_mask * 2 + 1
        for i in range(old_mask + 1):
            if old[i].key != NULL:
                j = old[i].hash & self.mask
                while fresh[j].key != NULL:
                    j = (j + 1) & self.mask
                fresh[j] = old[i]
        free(old)
        return 0


cdef inline uint64_t _rotl(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t _words(const char *p, Py_ssize_t n, uint64_t *w0,
                            uint64_t *w1) noexcept nogil:
    """Hash ``n`` bytes at ``p`` a word at a time; ``w0``/``w1``: two words that hold all of
    a key of <= 16 bytes (overlapping loads of its head and tail; for >16 its last 16).

    Names are short: a byte-at-a-time hash (a multiply chain per byte) cost more than the
    rest of the pass. Not keyed, so not proof against crafted collisions: a column's
    distinct names are expected to be few (event types), and each is probed per row."""
    cdef uint64_t a = 0, b = 0, h = <uint64_t>n * 0x9E3779B97F4A7C15ULL
    cdef uint32_t x, y
    cdef Py_ssize_t m = n
    while m > 16:
        memcpy(&a, p, 8)
        memcpy(&b, p + 8, 8)
        h = _rotl((h ^ (a * 0xC2B2AE3D27D4EB4FULL)) * 0x9E3779B97F4A7C15ULL, 31) ^ b
        p += 16
        m -= 16
    if n > 16:
        memcpy(&a, p + m - 16, 8)
        memcpy(&b, p + m - 8, 8)
    elif m >= 8:
        memcpy(&a, p, 8)
        memcpy(&b, p + m - 8, 8)
    elif m >= 4:
        memcpy(&x, p, 4)
        memcpy(&y, p + m - 4, 4)
        a, b = x, y
    elif m > 0:
        a = (<uint64_t><unsigned char>p[0] | (<uint64_t><unsigned char>p[m >> 1] << 8)
             | (<uint64_t><unsigned char>p[m - 1] << 16))
        b = 0
    w0[0], w1[0] = a, b
    h ^= a * 0xC2B2AE3D27D4EB4FULL
    h ^= _rotl(b * 0x165667B19E3779F9ULL, 29)
    h ^= h >> 32
    h *= 0x9E3779B97F4A7C15ULL
    h ^= h >> 29
    return h


cdef inline int64_t _lookup(_ByteNames table, const char *key, Py_ssize_t length,
                            object resolve, bint ucs4=False) except -2:
    """The id of ``key`` (-1: unknown). Inline, the probe included: the per-row path makes
    no call (a method would go through the class's vtable); only a new key leaves it."""
    cdef uint64_t w0, w1
    cdef uint64_t h = _words(key, length, &w0, &w1)
    cdef size_t i = h & table.mask
    cdef NameSlot *s
    while True:
        s = &table.slots[i]
        if s.key == NULL:
            return table.add(s, key, length, h, w0, w1, resolve, ucs4)
        if (s.hash == h and s.length == length and s.w0 == w0 and s.w1 == w1
                and (length <= 16 or memcmp(s.key, key, length) == 0)):
            return s.id
        i = (i + 1) & table.mask


cdef int64_t _resolve(object resolve, object name) except -2:
    cdef int64_t v = resolve(name)
    return v if v >= 0 else -1


def ids_of_objects(object column, dict names, object resolve, int64_t[::1] out):
    """``out[i]`` = the id of ``column[i]`` (a 1-D object array of ``str``); -1: unknown.

    ``names``: name -> id (read here, per row); ``resolve(name)``: called for a name that
    ``names`` lacks (it may register it: it returns the id, or -1). A row that is not a
    ``str`` raises: None or NaN as a null (ValueError), anything else as a TypeError.
    """
    if column.dtype.kind != "O" or column.ndim != 1 or not column.flags.c_contiguous:
        raise TypeError("column must be a contiguous 1-D object array")
    cdef Py_ssize_t i, n = column.shape[0]
    if out.shape[0] < n:
        raise ValueError("out is shorter than column")
    # The cells, borrowed: `column` holds them for the pass (read-only arrays too, which a
    # typed memoryview refuses).
    cdef PyObject **cells = <PyObject **><intptr_t>column.__array_interface__["data"][0]
    cdef PyObject *prev = NULL
    cdef PyObject *item
    cdef PyObject *found
    cdef int64_t prev_id = -1, v
    for i in range(n):
        item = cells[i]
        if item == prev:
            out[i] = prev_id
            continue
        obj = <object>item
        if not PyUnicode_CheckExact(obj) and not PyUnicode_Check(obj):
            _not_a_name(obj, i)
        found = PyDict_GetItem(names, obj)
        if found != NULL:
            v = PyLong_AsSsize_t(found)
        else:
            v = _resolve(resolve, obj)
        out[i] = v
        prev, prev_id = item, v
    return n


cdef int _not_a_name(object obj, Py_ssize_t i) except -1:
    if obj is None or (isinstance(obj, float) and obj != obj):
        raise ValueError(f"types[{i}] is null ({obj!r}): every row needs an event name")
    raise TypeError(f"types[{i}] is {type(obj).__name__} {obj!r}, expected an event name "
                    f"(str)")


def ids_of_utf8(object offsets, const unsigned char[::1] data, object resolve,
                int64_t[::1] out):
    """``out[i]`` = the id of the UTF-8 name ``data[offsets[i]:offsets[i + 1]]``; -1:
    unknown. ``offsets``: int32 or int64, ``len(out) + 1`` of them (an Arrow string or
    large_string array's, already moved to its slice's offset)."""
    cdef const int32_t[::1] o32
    cdef const int64_t[::1] o64
    cdef Py_ssize_t i, n = out.shape[0], start, end
    cdef const char *base = <const char *>&data[0] if data.shape[0] else <const char *>""
    cdef _ByteNames table = _ByteNames()
    if offsets.dtype.itemsize == 4:
        o32 = offsets
        for i in range(n):
            start, end = o32[i], o32[i + 1]
            out[i] = _lookup(table, base + start, end - start, resolve)
    else:
        o64 = offsets
        for i in range(n):
            start, end = o64[i], o64[i + 1]
            out[i] = _lookup(table, base + start, end - start, resolve)
    return n


def ids_of_cells(const unsigned char[::1] cells, Py_ssize_t width, bint ucs4, object resolve,
                 int64_t[::1] out):
    """``out[i]`` = the id of cell ``i`` of a fixed-width numpy string array's bytes
    (``U``: native UCS-4, ``ucs4=True``; ``S``: UTF-8), trailing NULs ignored; -1: unknown."""
    cdef Py_ssize_t i, n = out.shape[0], length
    cdef Py_ssize_t unit = 4 if ucs4 else 1
    cdef const char *p
    cdef _ByteNames table = _ByteNames()
    if n and cells.shape[0] < n * width:
        raise ValueError("cells shorter than n * width")
    for i in range(n):
        p = <const char *>&cells[i * width]
        length = width
        while length >= unit and memcmp(p + length - unit, b"\0\0\0\0", unit) == 0:
            length -= unit
        out[i] = _lookup(table, p, length, resolve, ucs4)
    return n


def ids_of_views(const unsigned char[::1] views, list buffers, object resolve,
                 int64_t[::1] out):
    """``out[i]`` = the id of the name in Arrow string view ``i`` (16 bytes each: the
    length, then the bytes inline up to 12, else a prefix, a buffer index and an offset
    into ``buffers``, uint8 arrays of the variadic data buffers); -1: unknown. polars
    keeps its strings this way: read in place, no conversion to offsets."""
    cdef Py_ssize_t i, j, n = out.shape[0], nbuf = len(buffers)
    cdef int32_t length, index, offset
    cdef const char *p
    cdef const unsigned char[::1] buf
    cdef _ByteNames table = _ByteNames()
    if views.shape[0] < n * 16:
        raise ValueError("views shorter than 16 bytes per row")
    cdef const char **bases = <const char **>calloc(nbuf + 1, sizeof(char *))
    if bases == NULL:
        raise MemoryError()
    try:
        for j in range(nbuf):
            buf = buffers[j]
            bases[j] = <const char *>&buf[0] if buf.shape[0] else NULL
        for i in range(n):
            p = <const char *>&views[i * 16]
            memcpy(&length, p, 4)
            if length <= 12:
                p = p + 4
            else:
                memcpy(&index, p + 8, 4)
                memcpy(&offset, p + 12, 4)
                if index < 0 or index >= nbuf or bases[index] == NULL:
                    raise ValueError(f"string view {i} points outside its buffers")
                p = bases[index] + offset
            out[i] = _lookup(table, p, length, resolve)
    finally:
        free(bases)
    return n
