from libc.stdint cimport int64_t

# Move each row of src (itemsize bytes) to dst at position counts[ids[i]], then advance it:
# a stable counting-sort scatter of plain-bytes rows (counts hold each group's start).
cdef int _scatter_rows(const int64_t[::1] ids, Py_ssize_t *counts,
                      const unsigned char[::1] src, unsigned char[::1] dst,
                      Py_ssize_t itemsize) except -1
