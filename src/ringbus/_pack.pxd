# cython: language_level=3
"""Packing one record from Python values into its bytes without numpy: the fast path of
RecordRing.publish((field, ...)).

numpy's ``np.array(record, dtype)`` costs about half a microsecond a call, most of a
per-record publish. A record of plain numeric fields given as a tuple of Python ints,
floats and bools is packed here in a few nanoseconds a field. Anything else (a numpy
scalar, a value out of the field's range, a float for an int field, a string...) returns
"not packed" and the caller takes numpy's path, so the result and every error message are
numpy's own: this path only ever accepts what numpy stores identically.
"""
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.long cimport PyLong_AsDouble, PyLong_AsLongLongAndOverflow, PyLong_Check
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.ref cimport PyObject
from libc.float cimport FLT_MAX
from libc.math cimport isfinite
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

cdef enum:
    # Enough for the records this path is for; a wider one takes numpy's path.
    PACK_FIELDS_MAX = 16
    PACK_BYTES_MAX = 256

cdef enum:
    PACK_INT = 1
    PACK_UINT = 2
    PACK_FLOAT = 3
    PACK_BOOL = 4


cdef struct pack_field:
    Py_ssize_t offset
    int kind            # PACK_INT ...
    int size            # bytes: 1, 2, 4 or 8 (floats: 4 or 8)
    bint swap           # the field's byte order is not this machine's


cdef struct pack_plan:
    Py_ssize_t fields   # -1: no plan, every record takes numpy's path
    Py_ssize_t record_size
    bint structured     # a tuple of field values; else one scalar
    pack_field field[PACK_FIELDS_MAX]


cdef inline void _store(unsigned char *out, const void *value, int size, bint swap) noexcept:
    cdef const unsigned char *v = <const unsigned char *>value
    cdef int i
    if not swap:
        memcpy(out, value, size)
    else:
        for i in range(size):
            out[i] = v[size - 1 - i]


cdef inline bint _pack_int(const pack_field *f, object value, unsigned char *out) noexcept:
    cdef int overflow = 0
    cdef long long v
    cdef int8_t i1
    cdef int16_t i2
    cdef int32_t i4
    cdef int64_t i8
    cdef uint8_t u1
    cdef uint16_t u2
    cdef uint32_t u4
    if not PyLong_Check(value):         # bool is an int, as numpy takes it
        return False
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or (v == -1 and PyErr_Occurred() != NULL):
        # Beyond int64 (or a uint64 above INT64_MAX): numpy's path decides.
        PyErr_Clear()
        return False
    if f.kind == PACK_UINT:
        if v < 0 or (f.size == 1 and v > 0xff) or (f.size == 2 and v > 0xffff) \
                or (f.size == 4 and v > 0xffffffff):
            return False
        if f.size == 1:
            u1 = <uint8_t>v
            _store(out, &u1, 1, False)
        elif f.size == 2:
            u2 = <uint16_t>v
            _store(out, &u2, 2, f.swap)
        elif f.size == 4:
            u4 = <uint32_t>v
            _store(out, &u4, 4, f.swap)
        else:
            i8 = <int64_t>v              # 0 <= v <= INT64_MAX: the same bits as uint64
            _store(out, &i8, 8, f.swap)
        return True
    if f.size == 1:
        if v < -0x80 or v > 0x7f:
            return False
        i1 = <int8_t>v
        _store(out, &i1, 1, False)
    elif f.size == 2:
        if v < -0x8000 or v > 0x7fff:
            return False
        i2 = <int16_t>v
        _store(out, &i2, 2, f.swap)
    elif f.size == 4:
        if v < -0x80000000LL or v > 0x7fffffffLL:
            return False
        i4 = <int32_t>v
        _store(out, &i4, 4, f.swap)
    else:
        i8 = <int64_t>v
        _store(out, &i8, 8, f.swap)
    return True


cdef inline bint _pack_float(const pack_field *f, object value, unsigned char *out) noexcept:
    cdef double d
    cdef float s
    if PyFloat_CheckExact(value):
        d = PyFloat_AS_DOUBLE(value)
    elif PyLong_Check(value):
        d = PyLong_AsDouble(value)
        if d == -1.0 and PyErr_Occurred() != NULL:
            PyErr_Clear()
            return False
    else:
        return False
    if f.size == 8:
        _store(out, &d, 8, f.swap)
        return True
    if isfinite(d) and (d > FLT_MAX or d < -FLT_MAX):
        return False                    # numpy warns of the overflow: its path
    s = <float>d
    _store(out, &s, 4, f.swap)
    return True


cdef inline bint _pack_value(const pack_field *f, object value, unsigned char *out) noexcept:
    if f.kind == PACK_FLOAT:
        return _pack_float(f, value, out + f.offset)
    if f.kind == PACK_BOOL:
        if value is True or value is False:
            out[f.offset] = 1 if value is True else 0
            return True
        return False
    return _pack_int(f, value, out + f.offset)


cdef inline bint pack_record(const pack_plan *plan, object record, unsigned char *out) noexcept:
    """Write ``record`` into ``out`` (plan.record_size bytes, zeroed by the caller: padding
    stays 0) and return True, or return False with ``out`` undefined: use numpy's path."""
    cdef Py_ssize_t i
    if plan.fields < 0:
        return False
    if not plan.structured:
        return _pack_value(&plan.field[0], record, out)
    if not PyTuple_Check(record) or PyTuple_GET_SIZE(record) != plan.fields:
        return False
    for i in range(plan.fields):
        if not _pack_value(&plan.field[i], <object>PyTuple_GET_ITEM(record, i), out):
            return False
    return True


cdef inline int _plan_field(pack_field *f, object dt, Py_ssize_t offset) except -1:
    """Fill ``f`` for a field of dtype ``dt``; 0 if it is not one this path packs."""
    if dt.subdtype is not None or dt.names is not None or dt.kind not in "iufb":
        return 0
    if dt.itemsize not in (1, 2, 4, 8) or (dt.kind == "f" and dt.itemsize < 4):
        return 0                        # float16, long double: numpy's path
    f.offset = offset
    f.size = dt.itemsize
    f.kind = {"i": PACK_INT, "u": PACK_UINT, "f": PACK_FLOAT, "b": PACK_BOOL}[dt.kind]
    f.swap = dt.itemsize > 1 and not dt.isnative
    return 1


cdef inline int pack_plan_of(pack_plan *plan, object dtype) except -1:
    """The plan of ``dtype`` (a numpy dtype), or plan.fields = -1 if its records are not
    all plain numeric fields."""
    plan.fields = -1
    plan.record_size = dtype.itemsize
    plan.structured = dtype.names is not None
    if dtype.itemsize > PACK_BYTES_MAX:
        return 0
    if not plan.structured:
        if _plan_field(&plan.field[0], dtype, 0):
            plan.fields = 1
        return 0
    names = dtype.names
    if len(names) > PACK_FIELDS_MAX:
        return 0
    cdef Py_ssize_t i
    for i, name in enumerate(names):
        field = dtype.fields[name]
        if not _plan_field(&plan.field[i], field[0], field[1]):
            return 0
    plan.fields = len(names)
    return 0
