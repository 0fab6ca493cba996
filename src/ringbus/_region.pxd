# Region providers: where a ring's memory lives. A ring lays itself out in a region by
# offsets only (no pointer into it is stored inside it), so the same bytes could be mapped by
# several processes. The heap region is this process's alone; a shared-memory region (a later
# issue) implements the same interface over a mapped segment.
cimport cython
from cpython.buffer cimport Py_buffer


cdef class Region:
    # `size` bytes at `base`, cache-line aligned; zeroed when new.
    cdef void *base
    cdef Py_ssize_t size
    cdef readonly bint private          # only this process maps it (see Driver._private_parker)
    # What the ring laid out in it must undo before the memory goes (its parker), or NULL.
    cdef void (*teardown)(void *base) noexcept nogil
    # The read-only bytes the region exports (the buffer protocol): the record storage.
    cdef Py_ssize_t export_offset
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    cdef int export(self, Py_ssize_t offset, Py_ssize_t nbytes) except -1


@cython.final
cdef class HeapRegion(Region):
    pass


cdef HeapRegion heap_region(Py_ssize_t size)


@cython.final
cdef class SharedRegion(Region):
    # A POSIX shared-memory segment (/dev/shm/ringbus.<name>), mapped MAP_SHARED here.
    cdef readonly str name              # the user's name, without the prefix


cdef SharedRegion shared_region_create(str name, Py_ssize_t size)
cdef SharedRegion shared_region_attach(str name)
