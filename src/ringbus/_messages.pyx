"""Message rings: variable-length byte messages, from producers in any process to one
consumer, each handed to the handlers as a read-only memoryview of the ring's own storage.

The region and its algorithms are the record ring's (``_recordring.h``) with framed claims
(``_ringbuffer.h``): the storage is in slots of 8 bytes, a message takes one frame (an 8-byte
header, its bytes, rounded up to whole slots), and a frame never wraps the storage's end:
where it would not fit, the claim first pads to the end. This is the design of Agrona's and
Aeron's many-to-one ring buffer, on the Disruptor's sequencer: several producers claim frames
with a CAS on the cursor and publish each with the availability flag of its first slot.

Objects cross through a codec (``codec=``): pickle (protocol 5) by default for objects,
msgspec's MessagePack when asked, or the user's own. ``MessageRing`` is a face of the ring
driver (``_driver.pyx``) through what it shares with ``RecordRing`` (``RegionRing``).
"""
cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.exc cimport PyErr_CheckSignals
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from ringbus._atomic cimport (rb_fetch_add_relaxed_i64, rb_sequence_get, rb_sequence_set,
                              rb_deadline_t, rb_deadline_in, rb_monotonic, rb_sleep_ns)
from ringbus._ringbuffer cimport (RB_WAIT_BLOCK, RB_WAIT_SLEEP, rb_sequencer_barrier_available,
                                  rb_sequencer_wait_for)
from ringbus._driver cimport Consumer, deadline_after, time_left
from ringbus._recordring cimport (
    RB_OVERFLOW_RAISE, RB_OVERFLOW_DROP, RB_KIND_MESSAGES, RB_FRAME_UNIT,
    RB_RECORD_DESCR_MAX, rb_record_header, rb_record_claim, rb_record_release,
    rb_message_max, rb_message_write, rb_message_publish, rb_message_frame, rb_frame_units,
)
from ringbus._records cimport (RegionRing, _choice, _on_error_arg, unblock_arg, make_region,
                              attach_region)
from ringbus._region cimport Region, SharedRegion
from ringbus._ring cimport timeout_arg

cdef extern from "Python.h":
    # CPython's own layout (Include/cpython/memoryobject.h): every memoryview over the
    # storage, the ones a handler derives from its view included, registers with the
    # managed buffer of the storage's memoryview. Counting them catches a view kept past
    # its call, which release() alone does not (it refuses only the view's own exports).
    ctypedef struct _PyManagedBufferObject:
        Py_ssize_t exports
    ctypedef struct PyMemoryViewObject:
        _PyManagedBufferObject *mbuf

import os
import warnings

from ringbus._checks import int_arg, power_of_two_arg
from ringbus._driver import RingFull, ConsumerGone
from ringbus._records import _OVERFLOW, _PRODUCERS, _WAIT
from ringbus._region import shm_path

# The largest ring: 2**30 slots of 8 bytes (8 GiB).
cdef int64_t MAX_CAPACITY_BYTES = (<int64_t>1) << 33
# The smallest: 8 slots, a message of up to 24 bytes.
cdef int64_t MIN_CAPACITY_BYTES = 64
# The consumer releases what it handled at least every this many messages, so producers
# waiting for room in a full ring get it while a long batch is still being handled (and a
# consumer that crashes mid-batch has at most this many to be delivered again).
cdef int64_t RELEASE_EVERY = 32
# A shared ring's header records its format: the ring kind's version and the codec.
cdef bytes FORMAT_PREFIX = b"ringbus.messages/1 codec="


class PickleCodec:
    """Python objects as pickle protocol 5. Unpickling runs code the bytes name: only for
    rings whose producers are the user's own processes (a shared ring's segment is the
    user's, mode 0600), never for bytes from elsewhere."""
    name = "pickle"

    def __init__(self):
        import functools
        import pickle
        # The C functions themselves, as instance attributes over the methods below: the
        # ring calls encode/decode once a message, and a Python frame each side cost ~10%.
        self.encode = functools.partial(pickle.dumps, protocol=5)
        self.decode = pickle.loads

    def encode(self, obj):
        import pickle
        return pickle.dumps(obj, 5)

    def decode(self, data):
        import pickle
        return pickle.loads(data)


class MsgspecCodec:
    """Objects as MessagePack through msgspec (``pip install msgspec``): faster than
    pickle for builtin types and msgspec Structs, and it never runs code while decoding.
    ``type``: decode into this type (a Struct, say) instead of builtins."""
    name = "msgspec"

    def __init__(self, type=None):
        try:
            import msgspec
        except ImportError as exc:
            raise ImportError("codec='msgspec' needs msgspec: pip install msgspec") from exc
        decoder = (msgspec.msgpack.Decoder() if type is None
                   else msgspec.msgpack.Decoder(type))
        # Bound C methods as instance attributes over the methods below (see PickleCodec).
        self.encode = msgspec.msgpack.Encoder().encode
        self.decode = decoder.decode

    def encode(self, obj):
        return self.encode(obj)

    def decode(self, data):
        return self.decode(data)


cdef object _codec_arg(object codec):
    """(codec object or None, its name for the header)."""
    if codec is None or codec == "bytes":
        return None, "bytes"
    if codec == "pickle":
        return PickleCodec(), "pickle"
    if codec == "msgspec":
        return MsgspecCodec(), "msgspec"
    if isinstance(codec, str):
        raise ValueError(f"codec must be None (bytes), 'pickle', 'msgspec' or an object with "
                         f"encode(obj) and decode(memoryview), got {codec!r}")
    if not (callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
        raise TypeError(f"codec must have encode(obj) -> bytes-like and decode(memoryview) -> "
                        f"obj methods, got {codec!r}")
    name = getattr(codec, "name", None)
    if name in ("bytes", "pickle", "msgspec"):
        return codec, name
    return codec, f"custom:{type(codec).__module__}.{type(codec).__qualname__}"



@cython.final
@cython.no_gc_clear
cdef class MessageRing(RegionRing):
    # The first line is the constructor's text signature (the "--" ends it), for
    # inspect.signature(), help() and IDEs; tests/test_signatures.py keeps it in step.
    """MessageRing(capacity_bytes=1048576, *, producers='multi', overflow='block', wait='block', unblock_timeout=1.0, on_error='log', shared=None, codec=None)
--

A bounded ring of variable-length messages, from producers to handlers.

    >>> ring = MessageRing(4096)
    >>> ring.publish(b"buy 100 AAPL")
    True
    >>> @ring.subscribe
    ... def on_message(view):            # a read-only memoryview, valid during the call
    ...     print(bytes(view))
    >>> ring.drain()
    b'buy 100 AAPL'
    1

    capacity_bytes : int, a power of two >= 64
        Bytes of message storage, allocated once. A message takes 8 bytes of header plus its
        length rounded up to 8; the longest one is ``max_message`` (half the storage, less
        the header): a longer one is refused with ValueError, never waited for.
    producers : "multi" (default) or "single"
        "single" claims without a CAS; use it only when one thread of one process publishes.
    overflow : "block" (default), "raise" or "drop"
        What ``publish`` does on a full ring once its wait for room ends, as RecordRing's.
    wait : "block" (default), "spin", "yield" or "sleep"
        How the consumer waits for messages, without the GIL; a property of the ring, in
        every process that maps it.
    unblock_timeout : float (1.0)
        Seconds a claim may stay unpublished before the consumer checks whether its producer
        died (see the README's faults); recorded in the ring.
    on_error : "log" (default), "raise" or a callable
        As RecordRing's: a handler's Exception never stops the others nor loses a message.
    shared : str or None (None)
        A name: the ring lives in a new POSIX shared-memory segment (as RecordRing's), for
        :meth:`attach` from other processes.
    codec : None (default), "pickle", "msgspec" or an object with encode/decode
        None: messages are bytes-like objects and handlers get memoryviews. Otherwise
        ``publish(obj)`` encodes any object and handlers get ``codec.decode(view)``. pickle
        runs code while unpickling: only for the user's own processes (see PickleCodec).
    """
    cdef readonly Py_ssize_t capacity_bytes
    cdef readonly Py_ssize_t max_message   # bytes
    cdef readonly object codec             # None: raw bytes
    cdef object _encode
    cdef object _decode
    cdef object _storage                   # memoryview over the message storage
    # poll(): the end of the last frame it handed out (at or past the committed sequence;
    # commit() releases up to it), and the abandoned claims it skipped past the committed
    # sequence, as (first, last) sequences (commit() steps over them: no frame is there).
    cdef int64_t _read
    cdef list _gaps

    def __init__(self, capacity_bytes=1 << 20, *, producers="multi", overflow="block",
                 wait="block", unblock_timeout=1.0, on_error="log", shared=None, codec=None):
        if self._rr != NULL:
            raise RuntimeError("MessageRing.__init__ called twice")
        capacity_bytes = power_of_two_arg("capacity_bytes", capacity_bytes, MAX_CAPACITY_BYTES)
        if capacity_bytes < MIN_CAPACITY_BYTES:
            raise ValueError(f"capacity_bytes must be at least {MIN_CAPACITY_BYTES}, got "
                             f"{capacity_bytes}")
        cdef int multi = _choice("producers", producers, _PRODUCERS)
        cdef int wait_code = _choice("wait", wait, _WAIT)
        _choice("overflow", overflow, _OVERFLOW)
        _on_error_arg(on_error)
        cdef double unblock = unblock_arg(unblock_timeout)
        codec_obj, codec_name = _codec_arg(codec)
        cdef bytes descr = FORMAT_PREFIX + codec_name.encode("utf-8", "replace")
        if len(descr) > RB_RECORD_DESCR_MAX:
            raise ValueError(f"the codec's name is too long for the ring's header: "
                             f"{codec_name[:80]!r}...")
        if shared is not None:
            shm_path(shared)                # the name is checked before anything is made
        cdef int64_t capacity = capacity_bytes // RB_FRAME_UNIT
        cdef Region region = make_region(shared, RB_KIND_MESSAGES, capacity, RB_FRAME_UNIT,
                                         multi, wait_code, unblock, descr,
                                         f"a ring of {capacity_bytes} bytes")
        try:
            self._bind(region, overflow, on_error, shared, codec_obj)
        except BaseException:
            if shared is not None:
                (<SharedRegion>region).unlink()    # a ring that was never made leaves no name
            raise

    @classmethod
    def attach(cls, name, *, codec=None, overflow="block", on_error="log"):
        """Attach to the shared ring another process (or this one) made with
        ``MessageRing(capacity_bytes, shared=name)``.

        The segment fixes capacity, producers, wait, unblock_timeout and its codec's name;
        its header is checked field by field first (ValueError for a segment that is not a
        message ring, truncated or corrupted, never a read past its end). ``codec``: None
        takes the ring's own ("bytes", "pickle", "msgspec"); a ring made with a codec
        object of the user's needs it again here; ``codec="bytes"`` reads any ring's
        messages raw. ``overflow`` and ``on_error`` are this
        handle's own policies.
        """
        _choice("overflow", overflow, _OVERFLOW)
        _on_error_arg(on_error)
        cdef SharedRegion region = attach_region(name, RB_KIND_MESSAGES)
        cdef rb_record_header *h = <rb_record_header *>region.base
        fmt = (<char *>h.descr)[:h.descr_len]
        if not fmt.startswith(FORMAT_PREFIX):
            raise ValueError(f"shared-memory segment {name!r}: its format {fmt[:80]!r} is "
                             f"not one this version of ringbus reads")
        ring_codec = fmt[len(FORMAT_PREFIX):].decode("utf-8", "replace")
        if codec is None:
            if ring_codec.startswith("custom:"):
                raise ValueError(f"shared ring {name!r} was made with the codec "
                                 f"{ring_codec[7:]!r}: pass the same codec to attach(codec=)")
            codec = ring_codec
        codec_obj, codec_name = _codec_arg(codec)
        if (codec_name != ring_codec and codec_name != "bytes"
                and not ring_codec.startswith("custom:")):
            raise ValueError(f"shared ring {name!r} holds messages of codec {ring_codec!r}, "
                             f"not {codec_name!r}")
        cdef MessageRing self = cls.__new__(cls)
        self._bind(region, overflow, on_error, name, codec_obj)
        return self

    cdef int _bind(self, Region region, str overflow, object on_error, object shared,
                   object codec) except -1:
        cdef rb_record_header *h = <rb_record_header *>region.base
        self.capacity_bytes = h.capacity * RB_FRAME_UNIT
        self.max_message = rb_message_max(h.capacity)
        self.codec = codec
        self._encode = None if codec is None else codec.encode
        self._decode = None if codec is None else codec.decode
        region.export(h.records_offset, h.capacity * RB_FRAME_UNIT)
        self._bind_region(region, overflow, on_error, shared, "8-byte message slots")
        self._storage = memoryview(region)
        self._read = -1
        self._gaps = []
        self._open = True
        return 0

    def close(self):
        RegionRing.close(self)
        self._storage = None       # the region goes once no view of it is left

    # -- producers -------------------------------------------------------------------------

    cdef int _publish_from(self, const unsigned char *src, Py_ssize_t n,
                           double timeout) except -1:
        """Publish one message of n bytes from src with the GIL held, waiting for room
        without it; 1 if published, 0 if dropped (counted). Claim and publish never release
        the GIL between them, so a claim is always published before stop() looks."""
        cdef int64_t units = rb_frame_units(n), got, hi = 0
        got = rb_record_claim(self._rr, units, &hi)
        if got == 0:
            if timeout < 0 and self._overflow == RB_OVERFLOW_DROP:
                rb_fetch_add_relaxed_i64(&self._rr.header.dropped.value, 1)
                return 0
            if timeout < 0 and self._overflow == RB_OVERFLOW_RAISE:
                raise RingFull(f"ring full ({self.capacity_bytes} bytes, "
                               f"{self.pending} messages pending); overflow='raise'")
            got = self.claim_within(units, timeout, self._overflow == RB_OVERFLOW_DROP, &hi)
            if got == 0:
                rb_fetch_add_relaxed_i64(&self._rr.header.dropped.value, 1)
                return 0
        rb_message_write(self._rr, hi - got + 1, hi, src, n)
        rb_message_publish(self._rr, hi - got + 1, hi)
        return 1

    cdef int _message_in(self, object data, Py_buffer *buf) except -1:
        """``data`` (encoded by the codec, if any) as a buffer that fits a frame."""
        if self._encode is not None:
            data = self._encode(data)
        try:
            PyObject_GetBuffer(data, buf, PyBUF_SIMPLE)
        except TypeError:
            what = "the codec's encode()" if self._encode is not None else "data"
            raise TypeError(f"{what} must be a bytes-like object (bytes, bytearray, "
                            f"memoryview, a contiguous array), got "
                            f"{type(data).__name__}") from None
        if buf.len > self.max_message:
            n = buf.len
            PyBuffer_Release(buf)
            raise ValueError(f"a message of {n} bytes is longer than this ring takes "
                             f"(max_message={self.max_message}, half of capacity_bytes="
                             f"{self.capacity_bytes} less an 8-byte header)")
        return 0

    def publish(self, data, timeout=None):
        """Copy one message into the ring; True if published, False if dropped
        (``overflow="drop"``).

        ``data``: a bytes-like object (or, with a codec, any object it encodes). Longer
        than ``max_message``: ValueError, at once. Full ring: wait for room up to
        ``timeout`` seconds, then the overflow policy acts, as for RecordRing.publish.
        """
        self._ready()
        if not self._producing:
            self._produce_here()
        cdef double t = timeout_arg(timeout)
        cdef Py_buffer buf
        self._message_in(data, &buf)
        try:
            return self._publish_from(<const unsigned char *>buf.buf, buf.len, t) == 1
        finally:
            PyBuffer_Release(&buf)

    def try_publish(self, data):
        """Copy one message into the ring if there is room now; never blocks, never counts
        a drop. Returns whether it was published."""
        self._ready()
        if not self._producing:
            self._produce_here()
        cdef Py_buffer buf
        cdef int64_t got, hi = 0
        self._message_in(data, &buf)
        try:
            got = rb_record_claim(self._rr, rb_frame_units(buf.len), &hi)
            if got == 0:
                return False
            rb_message_write(self._rr, hi - got + 1, hi, buf.buf, buf.len)
            rb_message_publish(self._rr, hi - got + 1, hi)
            return True
        finally:
            PyBuffer_Release(&buf)

    def publish_many(self, messages, timeout=None):
        """Publish each of ``messages`` in order, as :meth:`publish` would; returns how many
        went in (fewer only under ``overflow="drop"``). :class:`RingFull` carries
        ``published``; ``timeout`` bounds the whole call."""
        self._ready()
        if not self._producing:
            self._produce_here()
        cdef double t = timeout_arg(timeout)
        cdef double deadline = deadline_after(t)
        cdef Py_ssize_t done = 0
        cdef Py_buffer buf
        for data in messages:
            self._message_in(data, &buf)
            try:
                done += self._publish_from(<const unsigned char *>buf.buf, buf.len,
                                           time_left(deadline))
            except (RingFull, ConsumerGone) as exc:
                exc.published = done
                raise
            finally:
                PyBuffer_Release(&buf)
        return done

    # -- consumer --------------------------------------------------------------------------

    def subscribe(self, handler):
        """Call ``handler(view)`` for every message, in publish order (claim order with
        several producers): a read-only memoryview of the message's bytes in the ring,
        valid during the call only (it is released when the call returns: ``bytes(view)``
        keeps a copy). With a codec, ``handler(codec.decode(view))``. Handlers run in
        subscription order; a change takes effect from the next batch. Returns
        ``handler`` (usable as a decorator)."""
        self._add_handler(handler)
        return handler

    def drain(self, max_messages=None):
        """Dispatch the published messages on this thread, in order; returns how many.

        Goes on until the ring is empty (messages published meanwhile included) or
        ``max_messages`` were dispatched. Not while the consumer thread runs.
        """
        return self._drain("max_messages", max_messages)

    cdef Py_ssize_t _handle(self, Consumer c, int64_t lo, int64_t hi) except -1:
        """The messages of the frames that start in lo..hi (each ends by the cursor: frames
        are claimed whole), released every RELEASE_EVERY messages and at the end, and each
        on its own while they are redelivered. A
        BaseException from a handler stops after the message it interrupted (released)."""
        cdef int64_t s = lo, units = 0, length = 0, done = lo - 1, bound
        cdef int64_t mask = self._rr.seq.mask, handled = 0, unreleased = 0
        cdef const unsigned char *p
        cdef Py_ssize_t off, views
        cdef tuple handlers = self._handlers
        storage = self._storage
        decode = self._decode
        # A frame that starts by hi ends by the cursor (claimed whole): the bound of the
        # header check, however the caller capped hi.
        bound = rb_sequence_get(self._rr.seq.cursor)
        try:
            while s <= hi:
                p = rb_message_frame(self._rr, s, bound, &units, &length)
                if p == NULL:
                    self._corrupt(s)
                if length >= 0:
                    off = <Py_ssize_t>((s & mask) * RB_FRAME_UNIT + RB_FRAME_UNIT)
                    views = (<PyMemoryViewObject *>storage).mbuf.exports
                    rb_sequence_set(&self._rr.header.inflight, s + units - 1)
                    try:
                        self._deliver(handlers, storage[off:off + length], decode, s, length,
                                      views)
                    finally:
                        handled += 1
                        unreleased += 1
                        done = s + units - 1
                else:
                    done = s + units - 1
                s += units
                # A redelivered message is released on its own: should it kill this consumer
                # too, the next one knows which message did (inflight just past the release).
                if unreleased >= RELEASE_EVERY or done <= self._redeliver_upto:
                    self._release(unreleased, done)
                    unreleased = 0
        finally:
            if done >= lo:
                self._release(unreleased, done)
        PyErr_CheckSignals()
        return handled

    # -- the consumer, committing explicitly: poll and commit ------------------------------

    def poll(self, max_messages=1024, timeout=0.0):
        """Copies of up to ``max_messages`` messages past the last one polled, in order, as
        ``[(sequence, bytes), ...]``, without committing them: the ring keeps their slots
        (producers wait for room behind them) until :meth:`commit` releases them, and a
        consumer process that dies first leaves them to the next one, which polls them
        again (counted in ``redelivered``). ``sequence`` is the message's position in the
        ring, the same in every process and across consumer restarts (a bridge's
        de-duplication ids are made of it and :attr:`identity`). Waits up to ``timeout``
        seconds (None: no limit) for a first message, without the GIL; [] if none came.

        The other way to consume a ring: a handle either has handlers (drain, start) or
        polls; a shared ring's consumer lease is taken by the first poll. A claim whose
        producer died is skipped past (counted in ``abandoned``) as by handlers.
        """
        self._ready()
        cdef Py_ssize_t limit = int_arg("max_messages", max_messages, low=1,
                                        high=PY_SSIZE_T_MAX)
        cdef double t = timeout_arg(timeout)
        if self._started:
            raise RuntimeError("poll() while the consumer thread runs: stop() it first")
        if self._handlers:
            raise RuntimeError("poll() on a ring with handlers: a handle consumes either "
                               "by handlers (drain, start) or by poll() and commit()")
        self._consume_here()
        cdef Consumer c = self._consumer
        cdef rb_record_header *h = self._rr.header
        cdef int64_t committed = rb_sequence_get(&h.consumer.sequence)
        if self._read < committed:
            self._read = committed          # the first poll, or after a drain()
        cdef int64_t next = self._read + 1, avail, end, bound, units = 0, length = 0
        cdef double deadline = deadline_after(t), left, slice_
        cdef rb_deadline_t until
        cdef const unsigned char *p
        # A shared ring's poll does not park: it polls, 50 us sleeps for the first
        # millisecond, then 1 ms ones (an idle bridge costs ~1,000 looks a second). It was
        # written so while a process killed parked on a glibc condition variable could hang
        # the ring's next wake-up; parked threads now sleep on a futex word, which a dead
        # sleeper leaves as it was (_ringbuffer.h, rb_parker), and the poll kept its
        # measured, bounded cost.
        cdef bint no_park = self.shared is not None and self._wait == RB_WAIT_BLOCK
        cdef int strategy = RB_WAIT_SLEEP if no_park else self._wait
        cdef double since = rb_monotonic()
        avail = rb_sequencer_barrier_available(&self._q, c._deps, c._ndeps, next)
        while avail < next:
            end = self._known_gap(next)
            if end < next and self._unblock_check > 0:
                end = self._abandoned_gap(next)
                if end >= next:
                    self._gaps.append((next, end))
            if end >= next:
                # Not released: what was polled before it may not be acknowledged yet.
                # The commit past it releases it.
                self._read = end
                next = end + 1
                avail = rb_sequencer_barrier_available(&self._q, c._deps, c._ndeps, next)
                continue
            left = time_left(deadline)
            if left == 0:
                break
            # In slices: signals are checked, and abandoned claims looked for, between them.
            slice_ = self._unblock_check if self._unblock_check > 0 else 0.1
            if 0 < left < slice_:
                slice_ = left
            if no_park and rb_monotonic() - since > 0.001:
                with nogil:
                    rb_sleep_ns(<long>(1e9 * (slice_ if slice_ < 0.001 else 0.001)))
                    avail = rb_sequencer_barrier_available(&self._q, c._deps, c._ndeps,
                                                           next)
            else:
                until = rb_deadline_in(slice_ if not no_park or slice_ < 0.001 else 0.001)
                with nogil:
                    avail = rb_sequencer_wait_for(&self._q, c._deps, c._ndeps, next,
                                                  strategy, &c._c.alert, until)
            PyErr_CheckSignals()
        out = []
        if avail < next:
            return out
        # A frame that starts by avail ends by the cursor (claimed whole).
        bound = rb_sequence_get(self._rr.seq.cursor)
        cdef int64_t s = next, again = 0
        while s <= avail and len(out) < limit:
            p = rb_message_frame(self._rr, s, bound, &units, &length)
            if p == NULL:
                self._corrupt(s)
            if length >= 0:
                out.append((s + units - 1,
                            PyBytes_FromStringAndSize(<const char *>p, <Py_ssize_t>length)))
                if s + units - 1 <= self._redeliver_upto:
                    again += 1
            s += units
        self._read = s - 1
        # Handed out: a consumer process that dies now leaves the next one to mark these
        # redelivered (as a handler's message is marked).
        rb_sequence_set(&h.inflight, self._read)
        if again:
            rb_fetch_add_relaxed_i64(&h.redelivered.value, again)
        return out

    cdef int64_t _known_gap(self, int64_t next):
        """The end of an abandoned claim skipped at ``next`` before a rewind(), else
        next - 1 (the list is empty but for a producer's death)."""
        for gap in self._gaps:
            if (<tuple>gap)[0] == next:
                return (<tuple>gap)[1]
        return next - 1

    def commit(self, sequence):
        """Release every message polled up to ``sequence`` (one :meth:`poll` returned):
        their slots go back to the producers, and a consumer that starts later resumes
        after it. Committing at or below what is committed does nothing; past what was
        polled, or inside a message, is a ValueError. Returns how many messages it
        released. Any thread of the polling process may commit."""
        self._ready()
        cdef int64_t target = int_arg("sequence", sequence, low=-1)
        cdef rb_record_header *h = self._rr.header
        cdef int64_t committed = rb_sequence_get(&h.consumer.sequence)
        if target <= committed:
            return 0
        if self.shared is not None and not self._leased:
            raise RuntimeError(f"commit() on a handle that does not consume shared ring "
                               f"{self.shared!r}: poll() on it first")
        if target > self._read:
            raise ValueError(f"sequence {target} is past what poll() returned (up to "
                             f"{self._read})")
        cdef int64_t s = committed + 1, units = 0, length = 0, n = 0
        cdef int64_t bound = rb_sequence_get(self._rr.seq.cursor)
        gaps = self._gaps
        while s <= target:
            if gaps and (<tuple>gaps[0])[0] <= s:
                if (<tuple>gaps[0])[1] >= s:
                    s = (<tuple>gaps[0])[1] + 1    # no frame there: step over it
                del gaps[0]
                continue
            if rb_message_frame(self._rr, s, bound, &units, &length) == NULL:
                self._corrupt(s)
            if length >= 0:
                n += 1
            s += units
        if s != target + 1:
            raise ValueError(f"sequence {target} is inside a message (it ends at {s - 1}): "
                             f"commit the sequences poll() returned")
        self._release(n, target)
        return n

    def rewind(self):
        """The next :meth:`poll` starts again after the committed sequence: what was polled
        and not committed comes again (a bridge that restarts its reader does this). Takes
        a shared ring's consumer lease, as poll does (RuntimeError if a live process holds
        it), so a poller can claim the ring before it polls."""
        self._ready()
        if self._started or self._handlers:
            raise RuntimeError("rewind() on a ring consumed by handlers (drain, start): "
                               "poll() and commit() are the other way to consume it")
        self._consume_here()
        self._read = -1

    @property
    def committed(self):
        """The consumer's committed sequence: every message up to it was handled (or, by
        :meth:`commit`, released); the next consumer starts after it. -1: none yet."""
        self._ready()
        return rb_sequence_get(&self._rr.header.consumer.sequence)

    cdef int _corrupt(self, int64_t s) except -1:
        raise RuntimeError(f"{type(self).__name__}: the frame at sequence {s} is corrupt (its "
                           f"header does not fit the ring): the segment was written by "
                           f"something other than ringbus")

    cdef inline int _release(self, int64_t messages, int64_t done) except -1:
        # Counted before the release: `consumed` never passes what the slots show handled.
        rb_fetch_add_relaxed_i64(&self._rr.header.consumed.value, messages)
        self.batches += 1 if messages else 0
        rb_record_release(self._rr, done)
        return 0

    cdef int _deliver(self, tuple handlers, object view, object decode, int64_t sequence,
                      int64_t length, Py_ssize_t views) except -1:
        """One message to every handler; ``views``: the storage's memoryviews before this
        message's was made (more once it is released: a handler kept one)."""
        cdef bint failed = False
        first = None
        try:
            item = view if decode is None else decode(view)
            first = self._call_handlers(handlers, item, sequence, length,
                                        "bytes of a message", 1, &failed)
        finally:
            item = None
            try:
                # Valid during the call only: any later use of it raises ValueError.
                view.release()
            except BufferError:
                pass                         # exported: counted below
            if (<PyMemoryViewObject *>self._storage).mbuf.exports > views:
                self._kept_view(failed)
        if first is not None:
            raise first
        return 0

    cdef int _kept_view(self, bint failed) except -1:
        if failed or self._warned_kept_view:
            return 0                         # a traceback may hold what the handler made
        self._warned_kept_view = True
        warnings.warn(
            "a MessageRing handler kept an export of its message view past its call (an "
            "array or another view over it): the ring reuses those bytes for later "
            "messages; keep bytes(view) instead", RuntimeWarning, stacklevel=1)
        return 0

    def _front(self):
        """Not API (ringbus.workers' supervisor): (the consumer's committed sequence, the
        in-flight mark, the last sequence of the first unreleased frame or -1): a consumer
        process that died holding exactly that frame has inflight equal to its end."""
        self._ready()
        cdef rb_record_header *h = self._rr.header
        cdef int64_t committed = rb_sequence_get(&h.consumer.sequence)
        cdef int64_t cursor = rb_sequence_get(self._rr.seq.cursor)
        cdef int64_t units = 0, length = 0, end = -1
        if cursor > committed and rb_message_frame(self._rr, committed + 1, cursor, &units,
                                                   &length) != NULL:
            end = committed + units
        return committed, rb_sequence_get(&h.inflight), end

    def _published_count(self):
        """Not API (ringbus.workers): messages published so far, without a stats() dict."""
        return self._published()

    def _peek_front(self):
        """Not API (ringbus.workers' supervisor, while no consumer runs): a copy of the
        first unreleased message's bytes, or None when there is none."""
        self._ready()
        cdef int64_t first = rb_sequence_get(&self._rr.header.consumer.sequence) + 1
        cdef int64_t cursor = rb_sequence_get(self._rr.seq.cursor)
        cdef int64_t units = 0, length = 0
        if cursor < first or rb_message_frame(self._rr, first, cursor, &units,
                                              &length) == NULL or length < 0:
            return None
        cdef Py_ssize_t off = <Py_ssize_t>((first & self._rr.seq.mask) * RB_FRAME_UNIT
                                           + RB_FRAME_UNIT)
        return bytes(self._storage[off:off + length])

    # -- counters --------------------------------------------------------------------------

    cdef int64_t _published(self) noexcept:
        return rb_sequence_get(&self._rr.header.messages)

    cdef int64_t _dispatched(self) noexcept:
        return rb_sequence_get(&self._rr.header.consumed)

    cdef int64_t _queued(self) noexcept:
        # Counted once published (an abandoned claim never is); the consumer may count a
        # message a moment before its producer does.
        cdef int64_t consumed = rb_sequence_get(&self._rr.header.consumed)
        cdef int64_t n = rb_sequence_get(&self._rr.header.messages) - consumed
        return n if n > 0 else 0

    cdef int64_t _abandoned_count(self, int64_t lo, int64_t hi) noexcept:
        return 1                              # claims: how many messages is unknown

    def stats(self):
        """Counters as a dict: published, dispatched, dropped, pending (messages),
        pending_bytes (the slots they take), batches (releases), errors."""
        d = RegionRing.stats(self)
        d["published"] = max(d["published"], d["dispatched"])
        d["pending_bytes"] = ((rb_sequence_get(self._rr.seq.cursor)
                               - rb_sequence_get(&self._rr.header.consumer.sequence))
                              * RB_FRAME_UNIT)
        return d

    def __repr__(self):
        if not self._open:
            return "<ringbus MessageRing (closed or not initialised)>"
        return (f"<ringbus MessageRing capacity_bytes={self.capacity_bytes} "
                f"producers={self.producers!r} overflow={self.overflow!r} wait={self.wait!r} "
                f"pending={self.pending}>")

