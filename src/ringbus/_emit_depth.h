/* The per-thread nesting depth of dispatch. Included by _dispatch.pyx alone: a `static`
 * variable exists once per compiled module that includes it, and only the dispatch table
 * may own this one (ringbus._dispatch.emit_depth() reads it for other modules). */
#ifndef RINGBUS_EMIT_DEPTH_H
#define RINGBUS_EMIT_DEPTH_H

/* Nesting depth of emit() on this thread. A C thread-local, not a Python one: reading it
 * costs a TLS load, where threading.local would cost a dict look-up per event. It counts
 * across buses, which is what bounds the C stack. initial-exec: the default model for a
 * dlopen'ed module calls __tls_get_addr on every access (seen in perf); one int fits the
 * static TLS surplus glibc keeps for modules. */
#if defined(__GNUC__)
#define RINGBUS_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define RINGBUS_TLS_MODEL
#endif
static _Thread_local int ringbus_emit_depth RINGBUS_TLS_MODEL = 0;

#endif /* RINGBUS_EMIT_DEPTH_H */
