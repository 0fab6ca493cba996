from ringbus._dispatch cimport DispatchTable


cdef class Bus(DispatchTable):
    # Compiled, with emit() defined on this class itself, so that the interpreter's
    # specialised method call applies. Registration is delegated to the plain-Python
    # Registry.
    cdef readonly object _registry
    cdef object __weakref__
