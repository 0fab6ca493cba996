# Declarations only: the arm/take protocol of _signal.h, with which a waiter that must not
# block its thread (an event loop) waits on a ring.
cdef extern from "_signal.h" nogil:
    ctypedef struct rb_signal:
        pass

    void rb_signal_init(rb_signal *s) noexcept
    void rb_signal_arm(rb_signal *s) noexcept
    bint rb_signal_take(rb_signal *s) noexcept
