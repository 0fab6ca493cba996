# C threads for the nogil stress drivers (test hooks of _ring.pyx and _records.pyx): they run
# the ring functions without the GIL so that a ThreadSanitizer build sees every access.
cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    int pthread_create(pthread_t *thread, void *attr, void *(*start)(void *) noexcept nogil,
                       void *arg)
    int pthread_join(pthread_t thread, void **retval)

cdef extern from "<stdlib.h>" nogil:
    void *calloc(size_t n, size_t size)
