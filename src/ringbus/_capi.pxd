# Declarations only: the helpers in _capi.h and the CPython calls the hot path makes directly.
from cpython.object cimport PyObject

cdef extern from "_capi.h":
    PyObject *ringbus_weakref_get(PyObject *ref) noexcept
    object ringbus_take_exception()
    Py_ssize_t ringbus_index_or_neg(object obj) noexcept

cdef extern from "Python.h":
    const size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    # Returns NULL with an exception set; declared with a raw pointer so that Cython does
    # not raise on our behalf: the dispatch loop decides what a handler's failure means.
    PyObject *PyObject_Vectorcall(PyObject *callable, PyObject *const *args,
                                  size_t nargsf, PyObject *kwnames) noexcept
