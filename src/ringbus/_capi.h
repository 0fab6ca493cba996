/* Small C helpers for the compiled core: CPython API differences across versions, kept in
 * C so the .pyx files read the same on every version. */
#ifndef RINGBUS_CAPI_H
#define RINGBUS_CAPI_H

#include <Python.h>

/* Strong reference to a weakref's referent, or NULL (no exception set) when it is dead.
 * PyWeakref_GetObject returns a borrowed reference that another thread may drop, so 3.13+
 * (and the free-threaded build) use PyWeakref_GetRef. */
static inline PyObject *ringbus_weakref_get(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj = NULL;
    if (PyWeakref_GetRef(ref, &obj) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return obj;
#else
    PyObject *obj = PyWeakref_GetObject(ref);
    if (obj == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (obj == Py_None)
        return NULL;
    Py_INCREF(obj);
    return obj;
#endif
}

/* Take the exception being raised as one object with its traceback attached (a new
 * reference). The caller has checked that an exception is set. */
static inline PyObject *ringbus_take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
        Py_DECREF(tb);
    }
    Py_XDECREF(type);
    return value;
#endif
}

/* An exact int as a C index, or -1 for anything that does not fit (no exception left set):
 * callers treat -1 like any other out-of-range id and build the error message off the
 * hot path. */
static inline Py_ssize_t ringbus_index_or_neg(PyObject *obj)
{
    Py_ssize_t t = PyLong_AsSsize_t(obj);
    if (t == -1 && PyErr_Occurred())
        PyErr_Clear();
    return t;
}

#endif /* RINGBUS_CAPI_H */
