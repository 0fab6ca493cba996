"""Region providers: the memory a ring lays itself out in.

Owned apart from the ring because the numpy views handed to handlers point into it: a view
kept past its ring keeps this memory (not the ring) alive. A region exports one range of its
bytes, read-only, through the buffer protocol (a record ring's storage).
"""
from cpython.buffer cimport PyBUF_WRITABLE, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from libc.stdlib cimport free
from libc.string cimport memset

from ringbus._atomic cimport RB_CACHELINE

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


cdef class Region:
    """Where a ring's memory lives. Made by a provider (heap_region, ...), never directly."""

    def __cinit__(self, *args, **kwargs):
        self.base = NULL
        self.size = 0
        self.teardown = NULL

    def __init__(self, *args, **kwargs):
        raise TypeError("regions are made by the ring that lives in them")

    cdef int export(self, Py_ssize_t offset, Py_ssize_t nbytes) except -1:
        if offset < 0 or nbytes < 0 or offset + nbytes > self.size:
            raise ValueError(f"export of {nbytes} bytes at {offset} outside a region of "
                             f"{self.size} bytes")
        self.export_offset = offset
        self.shape[0] = nbytes
        self.strides[0] = 1
        return 0

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self.base == NULL:
            raise BufferError("the region has no memory")
        if flags & PyBUF_WRITABLE:
            # Only producers write records, through publish: a writable view would let
            # Python code scribble over slots a producer owns.
            raise BufferError("a ring's storage is read-only")
        view.buf = <char *>self.base + self.export_offset
        view.obj = self
        view.len = self.shape[0]
        view.readonly = 1
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = self.shape if flags & PyBUF_ND else NULL
        view.strides = self.strides if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef class HeapRegion(Region):
    """A region on this process's heap."""

    def __dealloc__(self):
        if self.base != NULL:
            if self.teardown != NULL:
                self.teardown(self.base)
            free(self.base)


cdef HeapRegion heap_region(Py_ssize_t size):
    """`size` zeroed bytes, cache-line aligned: no byte of a record is ever uninitialized
    memory (a producer may write fewer bytes than a C struct's padding suggests)."""
    cdef HeapRegion r = HeapRegion.__new__(HeapRegion)
    cdef void *base = NULL
    if size <= 0 or posix_memalign(&base, RB_CACHELINE, size) != 0:
        raise MemoryError(f"cannot allocate a region of {size} bytes")
    memset(base, 0, size)
    r.base = base
    r.size = size
    r.private = True
    return r
