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


# -- shared memory ------------------------------------------------------------------------------
# A POSIX shared-memory segment: on Linux a file in /dev/shm (tmpfs), named
# "ringbus.<name>" so that `python -m ringbus shm ls` finds ringbus's segments and nothing
# else. Created owner-only (0600) and exclusively (O_EXCL: a name in use is refused, never
# reused under another process's feet), mapped MAP_SHARED; the mapping outlives the file
# descriptor, which is closed at once.

from libc.errno cimport errno, EEXIST, ENOENT
from posix.fcntl cimport O_RDWR, O_CREAT, O_EXCL
from posix.mman cimport (mmap, munmap, shm_open, shm_unlink, MAP_FAILED, MAP_SHARED,
                         PROT_READ, PROT_WRITE)
from posix.stat cimport struct_stat, fstat
from posix.unistd cimport close, ftruncate

import os as _os
import re as _re

SHM_PREFIX = "ringbus."
#: What a segment name may be: what is safe in a file name and on a command line.
_NAME = _re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


def shm_path(name):
    """The POSIX shared-memory name of a ringbus segment (also its file in /dev/shm)."""
    if not isinstance(name, str):
        raise TypeError(f"shared must be a segment name (str), got {type(name).__name__} "
                        f"{name!r}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"shared={name!r}: a segment name is 1 to 201 letters, digits, '.', "
                         f"'_' or '-', starting with a letter or digit")
    return "/" + SHM_PREFIX + name


cdef _os_error(str what, str name):
    cdef int e = errno
    return OSError(e, f"{what} shared-memory segment {name!r}: {_os.strerror(e)}",
                   "/dev/shm/" + SHM_PREFIX + name)


cdef class SharedRegion(Region):
    """A region in a named shared-memory segment that other processes may map too."""

    def __dealloc__(self):
        # The parker is process-shared and other processes may be parked on it: it is never
        # destroyed here (on Linux it holds no resources; the memory goes with the last map).
        if self.base != NULL:
            munmap(self.base, <size_t>self.size)

    def unlink(self):
        """Remove the segment's name: no process can attach any more; the memory stays for
        the processes that mapped it until they unmap it. Idempotent."""
        cdef bytes path = shm_path(self.name).encode()
        if shm_unlink(path) != 0 and errno != ENOENT:          # ENOENT: already gone
            raise _os_error("cannot unlink", self.name)


cdef SharedRegion _map(str name, int fd, Py_ssize_t size):
    cdef void *base = mmap(NULL, <size_t>size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
    if base == MAP_FAILED:
        exc = _os_error("cannot map", name)
        close(fd)
        raise exc
    close(fd)
    cdef SharedRegion r = SharedRegion.__new__(SharedRegion)
    r.base = base
    r.size = size
    r.private = False
    r.name = name
    return r


cdef SharedRegion shared_region_create(str name, Py_ssize_t size):
    """A new segment of `size` zeroed bytes (tmpfs pages read as zero until written)."""
    cdef bytes path = shm_path(name).encode()
    cdef int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
    if fd < 0:
        if errno == EEXIST:                                    # EEXIST
            raise FileExistsError(
                17, f"a shared-memory segment named {name!r} exists already: attach to it "
                    f"(RecordRing.attach), or remove it (ring.unlink(), or `python -m ringbus "
                    f"shm rm {name}` for what a killed process left)",
                "/dev/shm/" + SHM_PREFIX + name)
        raise _os_error("cannot create", name)
    if ftruncate(fd, size) != 0:
        exc = _os_error("cannot size", name)
        close(fd)
        shm_unlink(path)
        raise exc
    try:
        return _map(name, fd, size)
    except BaseException:
        shm_unlink(path)
        raise


cdef SharedRegion shared_region_attach(str name):
    """The whole of an existing segment, mapped; its content is checked by the ring."""
    cdef bytes path = shm_path(name).encode()
    cdef int fd = shm_open(path, O_RDWR, 0)
    cdef struct_stat st
    if fd < 0:
        if errno == ENOENT:
            raise FileNotFoundError(
                2, f"no shared-memory segment named {name!r}: create it with "
                   f"RecordRing(dtype, capacity, shared={name!r})",
                "/dev/shm/" + SHM_PREFIX + name)
        raise _os_error("cannot open", name)
    if fstat(fd, &st) != 0:
        exc = _os_error("cannot stat", name)
        close(fd)
        raise exc
    if st.st_size <= 0:
        close(fd)
        raise ValueError(f"shared-memory segment {name!r} is empty: not a ringbus ring")
    return _map(name, fd, <Py_ssize_t>st.st_size)
