# cython: language_level=3
"""The bridges' hot wire paths, compiled (issue 12): what the exporters write and what
comes back, framed and parsed a whole batch / a whole read per call.

- :class:`PubWindow` (NATS export): takes a batch of exported events from the outbox,
  encodes them (one msgspec ``encode_into`` a reused buffer), frames each as an ``HPUB``
  with its ``Nats-Msg-Id`` and codec headers and a reply inbox of its own sequence, all into
  one bytes object; holds each frame until JetStream's PubAck for it arrives (``feed``
  parses a read buffer of PubAck ``MSG``s), so what is not acknowledged can be written again,
  as it was, in its first order.
- :class:`XaddFramer` (Redis export): the same batch as RESP ``XADD``s; ``count_replies``
  reads their replies from a read buffer.

What the caller keeps in Python is per batch or per read, never per message: the reports of
events that would not encode, the PubAcks that carry an error, the protocol's control lines.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy, memset, strlen

from ringbus.bridge.base import READY as _READY     # a shared ring's ready message

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL
    char *PyByteArray_AS_STRING(object array)
    Py_ssize_t PyByteArray_GET_SIZE(object array)

cdef enum:
    # A line of the protocol longer than this without its CRLF is garbage, not a line
    # still arriving: refused instead of buffered without end.
    LINE_MAX = 4096
    # A PubAck is a few dozen bytes and a server's max_payload 1 MiB by default (64 MiB at
    # most): a size past that is not a message to wait for.
    MSG_MAX = 64 << 20


# -- an output buffer ------------------------------------------------------------------------

cdef struct _Buf:
    char *p
    Py_ssize_t n
    Py_ssize_t cap


cdef int _reserve(_Buf *b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t want = b.n + extra
    cdef Py_ssize_t cap
    cdef char *p
    if want <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 1 << 16
    while cap < want:
        cap *= 2
    p = <char *>PyMem_Realloc(b.p, cap)
    if p == NULL:
        raise MemoryError()
    b.p, b.cap = p, cap
    return 0


cdef inline void _put(_Buf *b, const char *s, Py_ssize_t n) noexcept:
    memcpy(b.p + b.n, s, n)
    b.n += n


cdef inline void _puts(_Buf *b, const char *s) noexcept:
    _put(b, s, <Py_ssize_t>strlen(s))


cdef inline void _put_u64(_Buf *b, uint64_t v) noexcept:
    cdef char tmp[20]
    cdef int i = 20
    while True:
        i -= 1
        tmp[i] = <char>(48 + v % 10)
        v //= 10
        if v == 0:
            break
    _put(b, tmp + i, 20 - i)


cdef inline int _digits(uint64_t v) noexcept:
    cdef int n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


# -- what every exporter takes from the outbox -----------------------------------------------

cdef class _Taker:
    """The outbox -> (subject, codec name, data) step both framers share: an event whose
    subject or encoding fails is appended to ``failed`` as (spec, payload, exception) for
    the bridge to report, and skipped."""

    cdef object _scratch            # bytearray: msgspec encodes every payload into it
    cdef object _popleft            # the outbox's, this batch
    cdef object _encode_into        # the codec's msgspec Encoder's
    cdef object _codec_name
    cdef bytes _prefix              # b"<producer name>:"
    cdef const char *pfx
    cdef Py_ssize_t pfx_len
    cdef uint64_t mid
    cdef object _data               # the current payload's bytes (bytes or _scratch)
    cdef object _subject            # the current subject (str)
    cdef const char *kind
    cdef Py_ssize_t kind_len
    cdef const char *subject
    cdef Py_ssize_t subject_len
    cdef const char *data
    cdef Py_ssize_t data_len
    # A shared ring's message (ringbus.bridge.ring) comes ready, with its own id
    # (``identity:sequence``, the same in every bridge process); None: the producer's.
    cdef object own_id
    cdef const char *id_p
    cdef Py_ssize_t id_len

    def __cinit__(self):
        self._scratch = bytearray(256)

    cdef Py_ssize_t start(self, object outbox, Py_ssize_t n, object codec,
                          object producer) except -1:
        """A batch of at most ``n`` from ``outbox``, encoded by ``codec``, its ids
        continuing ``producer.count`` (``mid``: the last one given): how many to take."""
        self._prefix = _producer_prefix(producer)
        self.pfx, self.pfx_len = PyBytes_AS_STRING(self._prefix), len(self._prefix)
        self.mid = producer.count
        self._popleft = outbox.popleft
        self._encode_into = codec.encoder.encode_into
        self._codec_name = codec.name
        return min(n, len(outbox))

    cdef bint next(self, list failed) except -1:
        """Fill the current subject / kind / data (and id, for a ring's message) from the
        next outbox item; False (and the item in ``failed``) if it cannot be carried."""
        spec, payload = self._popleft()
        if spec is _READY:
            # A shared ring's message, encoded by its reader: (id, subject, kind, data).
            msg_id, subject, kind, data = payload
            self.own_id = msg_id
            self.id_p = PyUnicode_AsUTF8AndSize(msg_id, &self.id_len)
        else:
            self.own_id = None
            try:
                # The common cases inline: one subject, bytes passed through.
                subject = spec._head if spec._tail is None else spec.subject_of(payload)
                if type(payload) is bytes:
                    data, kind = payload, "bytes"
                elif isinstance(payload, (bytearray, memoryview)):
                    data, kind = bytes(payload), "bytes"
                else:
                    self._encode_into(payload, self._scratch, 0)
                    data, kind = self._scratch, self._codec_name
            except Exception as exc:
                failed.append((spec, payload, exc))
                return False
        self.subject = PyUnicode_AsUTF8AndSize(subject, &self.subject_len)
        self._subject, self._data = subject, data
        self.kind = PyUnicode_AsUTF8AndSize(kind, &self.kind_len)
        if type(data) is bytes:
            self.data, self.data_len = PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)
        else:
            self.data, self.data_len = PyByteArray_AS_STRING(data), PyByteArray_GET_SIZE(data)
        return True

    cdef Py_ssize_t next_id_len(self) noexcept:
        """The current message's de-duplication id's length; the producer's next id is
        taken (``mid``) unless the message brought its own."""
        if self.own_id is not None:
            return self.id_len
        self.mid += 1
        return self.pfx_len + _digits(self.mid)

    cdef void put_id(self, _Buf *b) noexcept:
        if self.own_id is not None:
            _put(b, self.id_p, self.id_len)
        else:
            _put(b, self.pfx, self.pfx_len)
            _put_u64(b, self.mid)


cdef bytes _producer_prefix(object producer):
    return (producer.name + ":").encode()


# -- NATS ------------------------------------------------------------------------------------

cdef struct _Slot:
    PyObject *frames                # the batch's bytes (a reference); NULL: acked
    PyObject *msg_id                # a ring message's own id (a reference), or NULL
    Py_ssize_t off
    Py_ssize_t len
    double sent_at


cdef class PubWindow:
    """PubWindow(inbox, id_header, codec_header)
--

    The NATS exporter's messages from their publish to their PubAck. Each gets the next
    sequence (from 1): its reply subject is ``inbox`` + the sequence, where JetStream's
    PubAck comes back; its frame (``HPUB``, headers ``id_header: producer:n`` and
    ``codec_header: codec``) is held until then.

    >>> w = PubWindow(b"_INBOX.x.", b"Nats-Msg-Id", b"Ringbus-Codec")
    >>> frames = w.take(outbox, 500, codec, producer, time.monotonic(), failed)
    >>> end = w.feed(read_buffer, 0)       # w.acked: how many it released

    One thread at a time (the bridge's loop).
    """

    cdef bytes _inbox
    cdef bytes _id_header
    cdef bytes _codec_header
    cdef _Slot *_slots
    cdef uint64_t _cap              # a power of two
    cdef uint64_t _low              # the oldest sequence perhaps unacknowledged
    cdef uint64_t _high             # the next sequence
    cdef Py_ssize_t _count          # unacknowledged
    cdef _Buf _out
    cdef _Taker _taker
    cdef readonly Py_ssize_t acked
    cdef readonly list errors
    cdef list _confirmed            # own ids (a shared ring's messages) acknowledged

    def __cinit__(self):
        self._slots = NULL
        self._out.p = NULL
        self._out.n = self._out.cap = 0

    def __init__(self, bytes inbox, bytes id_header, bytes codec_header):
        if not inbox or b" " in inbox or b"\r" in inbox or b"\n" in inbox:
            raise ValueError(f"inbox must be a non-empty subject prefix, got {inbox!r}")
        if self._slots != NULL:
            raise RuntimeError("PubWindow.__init__ called twice")
        self._inbox, self._id_header, self._codec_header = inbox, id_header, codec_header
        self._cap = 1024
        self._slots = <_Slot *>PyMem_Malloc(self._cap * sizeof(_Slot))
        if self._slots == NULL:
            raise MemoryError()
        memset(self._slots, 0, self._cap * sizeof(_Slot))
        self._low = self._high = 1
        self._count = 0
        self._taker = _Taker()
        self.acked = 0
        self.errors = []
        self._confirmed = []

    def __dealloc__(self):
        cdef uint64_t s
        if self._slots != NULL:
            s = self._low
            while s < self._high:
                if self._slots[s & (self._cap - 1)].frames != NULL:
                    Py_DECREF(<object>self._slots[s & (self._cap - 1)].frames)
                    Py_XDECREF(self._slots[s & (self._cap - 1)].msg_id)
                s += 1
            PyMem_Free(self._slots)
        PyMem_Free(self._out.p)

    def __len__(self):
        return self._count

    @property
    def next_seq(self):
        """The sequence the next message gets."""
        return self._high

    @property
    def oldest_sent_at(self):
        """When the oldest unacknowledged message was last written (``now`` as given to
        ``take`` / ``unacked``); None when every one is acknowledged."""
        if self._count == 0:
            return None
        return self._slots[self._low & (self._cap - 1)].sent_at

    cdef int _grow(self, uint64_t need) except -1:
        cdef uint64_t cap = self._cap
        cdef uint64_t s
        cdef _Slot *slots
        while cap < need:
            cap *= 2
        if cap == self._cap:
            return 0
        slots = <_Slot *>PyMem_Malloc(cap * sizeof(_Slot))
        if slots == NULL:
            raise MemoryError()
        memset(slots, 0, cap * sizeof(_Slot))
        s = self._low
        while s < self._high:
            slots[s & (cap - 1)] = self._slots[s & (self._cap - 1)]
            s += 1
        PyMem_Free(self._slots)
        self._slots, self._cap = slots, cap
        return 0

    def take(self, object outbox, Py_ssize_t n, object codec, object producer, double now,
             list failed):
        """Up to ``n`` events from ``outbox`` (a deque of (export spec, payload)), framed:
        the bytes to write (b"" when none could be carried; those are in ``failed``).
        Their de-duplication ids continue ``producer.count``."""
        cdef _Taker t = self._taker
        cdef _Buf *b = &self._out
        cdef Py_ssize_t i, k = 0, hlen, start
        cdef uint64_t seq = self._high, first = self._high
        cdef const char *inbox = PyBytes_AS_STRING(self._inbox)
        cdef Py_ssize_t inbox_len = PyBytes_GET_SIZE(self._inbox)
        cdef const char *idh = PyBytes_AS_STRING(self._id_header)
        cdef Py_ssize_t idh_len = PyBytes_GET_SIZE(self._id_header)
        cdef const char *ch = PyBytes_AS_STRING(self._codec_header)
        cdef Py_ssize_t ch_len = PyBytes_GET_SIZE(self._codec_header)
        cdef _Slot *slot
        n = t.start(outbox, n, codec, producer)
        if n <= 0:
            return b""
        self._grow(self._high - self._low + <uint64_t>n + 1)
        b.n = 0
        for i in range(n):
            if not t.next(failed):
                continue
            # NATS/1.0\r\n<idh>: <id>\r\n<ch>: <kind>\r\n\r\n
            hlen = 10 + idh_len + 2 + t.next_id_len() + 2 + ch_len + 2 + t.kind_len + 4
            _reserve(b, 5 + t.subject_len + 1 + inbox_len + 20 + 1 + 20 + 1 + 20 + 2 + hlen
                     + t.data_len + 2)
            start = b.n
            _puts(b, "HPUB ")
            _put(b, t.subject, t.subject_len)
            _puts(b, " ")
            _put(b, inbox, inbox_len)
            _put_u64(b, seq)
            _puts(b, " ")
            _put_u64(b, hlen)
            _puts(b, " ")
            _put_u64(b, hlen + t.data_len)
            _puts(b, "\r\nNATS/1.0\r\n")
            _put(b, idh, idh_len)
            _puts(b, ": ")
            t.put_id(b)
            _puts(b, "\r\n")
            _put(b, ch, ch_len)
            _puts(b, ": ")
            _put(b, t.kind, t.kind_len)
            _puts(b, "\r\n\r\n")
            _put(b, t.data, t.data_len)
            _puts(b, "\r\n")
            slot = &self._slots[seq & (self._cap - 1)]
            slot.off, slot.len, slot.sent_at = start, b.n - start, now
            slot.msg_id = NULL
            if t.own_id is not None:        # said back by `confirmed` once acknowledged
                Py_INCREF(t.own_id)
                slot.msg_id = <PyObject *>t.own_id
            seq += 1
            k += 1
        producer.count = t.mid
        if k == 0:
            return b""
        frames = PyBytes_FromStringAndSize(b.p, b.n)
        while first < seq:
            slot = &self._slots[first & (self._cap - 1)]
            Py_INCREF(frames)
            slot.frames = <PyObject *>frames
            first += 1
        self._high = seq
        self._count += k
        return frames

    def unacked(self, double now):
        """The frames of every unacknowledged message, in their first order, as one bytes
        object (b"" when none), each marked as written at ``now``."""
        cdef uint64_t s = self._low
        cdef _Slot *slot
        cdef _Buf *b = &self._out
        b.n = 0
        while s < self._high:
            slot = &self._slots[s & (self._cap - 1)]
            if slot.frames != NULL:
                _reserve(b, slot.len)
                _put(b, PyBytes_AS_STRING(<object>slot.frames) + slot.off, slot.len)
                slot.sent_at = now
            s += 1
        return PyBytes_FromStringAndSize(b.p, b.n)

    cdef int _release(self, uint64_t seq) except -1:
        cdef _Slot *slot
        if seq < self._low or seq >= self._high:
            return 0                # the ack of a copy published again, or not ours
        slot = &self._slots[seq & (self._cap - 1)]
        if slot.frames == NULL:
            return 0
        Py_DECREF(<object>slot.frames)
        slot.frames = NULL
        if slot.msg_id != NULL:
            self._confirmed.append(<object>slot.msg_id)
            Py_DECREF(<object>slot.msg_id)
            slot.msg_id = NULL
        self._count -= 1
        self.acked += 1
        while self._low < self._high and \
                self._slots[self._low & (self._cap - 1)].frames == NULL:
            self._low += 1
        return 0

    def take_confirmed(self):
        """The own ids (a shared ring's messages, ``ringbus.bridge.ring``) acknowledged
        since the last call, in the order their acks came; the list is then empty."""
        out, self._confirmed = self._confirmed, []
        return out

    def feed(self, bytes buf, Py_ssize_t pos):
        """Parse the ``MSG``s at ``buf[pos:]``: each PubAck to this inbox releases its
        message (counted in ``acked``, reset by each call), one whose data holds
        ``"error"`` goes to ``errors`` as (sequence, data), other MSGs are skipped. Returns
        where it stopped: the end, a message not all here yet, or a line that is not a
        ``MSG`` (the caller's: PING, -ERR, ...). Raises ValueError on a malformed MSG."""
        cdef const char *p = PyBytes_AS_STRING(buf)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
        cdef const char *inbox = PyBytes_AS_STRING(self._inbox)
        cdef Py_ssize_t inbox_len = PyBytes_GET_SIZE(self._inbox)
        cdef Py_ssize_t eol, size, start, stop
        cdef Py_ssize_t tok[4]
        cdef Py_ssize_t tok_end[4]
        cdef int ntok
        cdef uint64_t seq
        cdef Py_ssize_t i
        cdef bint ours
        self.acked = 0
        if pos < 0 or pos > end:
            raise ValueError(f"pos must be within the buffer (0..{end}), got {pos}")
        while pos < end:
            if end - pos < 4:
                break
            if memcmp(p + pos, b"MSG ", 4) != 0:
                break                           # a control line, or garbage: the caller's
            eol = _find_crlf(p, pos, end)
            if eol < 0:
                if end - pos > LINE_MAX:
                    raise ValueError("a MSG line without its end")
                break
            ntok = _tokens(p, pos + 4, eol, tok, tok_end)
            if ntok < 3 or ntok > 4:
                raise ValueError(f"malformed MSG line: {buf[pos:eol][:200]!r}")
            size = _size(p, tok[ntok - 1], tok_end[ntok - 1])
            if size < 0 or size > MSG_MAX:
                raise ValueError(f"malformed MSG size: {buf[pos:eol][:200]!r}")
            start = eol + 2
            stop = start + size
            if stop + 2 > end:
                break                           # the payload is not all here yet
            if p[stop] != b'\r' or p[stop + 1] != b'\n':
                raise ValueError(f"a MSG payload not ended by CRLF: {buf[pos:eol][:200]!r}")
            # Ours: the subject is the inbox + a sequence.
            ours = (tok_end[0] - tok[0] > inbox_len
                    and memcmp(p + tok[0], inbox, inbox_len) == 0)
            if ours:
                seq = 0
                for i in range(tok[0] + inbox_len, tok_end[0]):
                    if p[i] < b'0' or p[i] > b'9' or seq > 100000000000000000:
                        ours = False
                        break
                    seq = seq * 10 + <uint64_t>(p[i] - 48)
            if ours:
                if _contains(p + start, size, b'"error"', 7):
                    self.errors.append((seq, buf[start:stop]))
                else:
                    self._release(seq)
            pos = stop + 2
        return pos


cdef Py_ssize_t _find_crlf(const char *p, Py_ssize_t pos, Py_ssize_t end) noexcept:
    cdef const char *q
    while pos < end:
        q = <const char *>memchr(p + pos, b'\r', end - pos)
        if q == NULL:
            return -1
        pos = q - p
        if pos + 1 >= end:
            return -1
        if p[pos + 1] == b'\n':
            return pos
        pos += 1
    return -1


cdef int _tokens(const char *p, Py_ssize_t pos, Py_ssize_t eol, Py_ssize_t *tok,
                 Py_ssize_t *tok_end) noexcept:
    """Up to 4 space-separated tokens of p[pos:eol] (5 or more: returns 5)."""
    cdef int n = 0
    while pos < eol:
        if p[pos] == b' ' or p[pos] == b'\t':
            pos += 1
            continue
        if n == 4:
            return 5
        tok[n] = pos
        while pos < eol and p[pos] != b' ' and p[pos] != b'\t':
            pos += 1
        tok_end[n] = pos
        n += 1
    return n


cdef Py_ssize_t _size(const char *p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """A decimal size of at most 9 digits; -1 if it is not one."""
    cdef Py_ssize_t v = 0
    if b <= a or b - a > 9:
        return -1
    while a < b:
        if p[a] < b'0' or p[a] > b'9':
            return -1
        v = v * 10 + (p[a] - 48)
        a += 1
    return v


cdef bint _contains(const char *p, Py_ssize_t n, const char *s, Py_ssize_t m) noexcept:
    cdef Py_ssize_t i
    if m > n:
        return False
    for i in range(n - m + 1):
        if p[i] == s[0] and memcmp(p + i, s, m) == 0:
            return True
    return False


# -- Redis -----------------------------------------------------------------------------------

cdef inline void _bulk(_Buf *b, const char *s, Py_ssize_t n) noexcept:
    _puts(b, "$")
    _put_u64(b, n)
    _puts(b, "\r\n")
    _put(b, s, n)
    _puts(b, "\r\n")


cdef class XaddFramer:
    """XaddFramer(maxlen=None)
--

    The Redis exporter's batches: ``take`` frames up to n outbox events as RESP
    ``XADD <key> [MAXLEN ~ maxlen] * id <producer:n> c <codec> d <data>`` commands in one
    bytes object (``count``: how many); ``count_replies`` reads their replies.

    One thread at a time (the bridge's loop).
    """

    cdef object _maxlen
    cdef bytes _trim
    cdef _Buf _out
    cdef _Taker _taker
    cdef readonly Py_ssize_t count
    cdef readonly list ids          # the last batch's own ids (a shared ring's messages)

    def __cinit__(self):
        self._out.p = NULL
        self._out.n = self._out.cap = 0

    def __init__(self, maxlen=None):
        if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int)
                                   or maxlen <= 0):
            raise ValueError(f"maxlen must be None or an int > 0, got {maxlen!r}")
        self._maxlen = maxlen
        self._trim = b"" if maxlen is None else (
            b"$6\r\nMAXLEN\r\n$1\r\n~\r\n$%d\r\n%d\r\n" % (len(b"%d" % maxlen), maxlen))
        self._taker = _Taker()
        self.count = 0
        self.ids = []

    def __dealloc__(self):
        PyMem_Free(self._out.p)

    def take(self, object outbox, Py_ssize_t n, object codec, object producer,
             list failed):
        """Up to ``n`` events from ``outbox``, as XADD commands: the bytes to write (b""
        when none could be carried; those are in ``failed``)."""
        cdef _Taker t = self._taker
        cdef _Buf *b = &self._out
        cdef Py_ssize_t i, k = 0
        cdef const char *trim = PyBytes_AS_STRING(self._trim)
        cdef Py_ssize_t trim_len = PyBytes_GET_SIZE(self._trim)
        cdef Py_ssize_t id_len
        self.count = 0
        self.ids = []
        n = t.start(outbox, n, codec, producer)
        if n <= 0:
            return b""
        b.n = 0
        for i in range(n):
            if not t.next(failed):
                continue
            id_len = t.next_id_len()
            _reserve(b, 64 + t.subject_len + trim_len + id_len + t.kind_len + t.data_len
                     + 7 * 24)
            if trim_len:
                _puts(b, "*12\r\n$4\r\nXADD\r\n")
            else:
                _puts(b, "*9\r\n$4\r\nXADD\r\n")
            _bulk(b, t.subject, t.subject_len)
            _put(b, trim, trim_len)
            _puts(b, "$1\r\n*\r\n$2\r\nid\r\n$")
            _put_u64(b, id_len)
            _puts(b, "\r\n")
            t.put_id(b)
            _puts(b, "\r\n$1\r\nc\r\n")
            if t.own_id is not None:
                self.ids.append(t.own_id)   # confirmed once this batch's replies are in
            _bulk(b, t.kind, t.kind_len)
            _puts(b, "$1\r\nd\r\n")
            _bulk(b, t.data, t.data_len)
            k += 1
        producer.count = t.mid
        self.count = k
        return PyBytes_FromStringAndSize(b.p, b.n) if k else b""


def count_replies(bytes buf, Py_ssize_t pos, Py_ssize_t want):
    """Read up to ``want`` RESP replies at ``buf[pos:]`` (simple strings, errors,
    integers, bulk strings, and arrays of those, nested; RESP3's types too, its pushes
    skipped, not counted): (where it stopped, how many were whole, the first error's text
    or None). Stops at a reply not all here yet; raises
    ValueError on bytes that are not RESP."""
    cdef const char *p = PyBytes_AS_STRING(buf)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t got = 0, nxt
    error = None
    if pos < 0 or pos > end:
        raise ValueError(f"pos must be within the buffer (0..{end}), got {pos}")
    while got < want and pos < end:
        if p[pos] == b'-' and error is None:
            nxt = _find_crlf(p, pos, end)
            if nxt >= 0:
                error = buf[pos + 1:nxt].decode("utf-8", "replace")
        nxt = _resp_skip(p, pos, end, 0)
        if nxt == -1:
            if end - pos > LINE_MAX and _find_crlf(p, pos, end) < 0:
                raise ValueError("a RESP line without its end")
            break
        if nxt == -2:
            raise ValueError(f"not a RESP reply: {buf[pos:pos + 60]!r}")
        if p[pos] != b'>':              # a RESP3 push (client tracking) answers nothing
            got += 1
        pos = nxt
    return pos, got, error


cdef Py_ssize_t _resp_skip(const char *p, Py_ssize_t pos, Py_ssize_t end, int depth) noexcept:
    """The end of the reply at ``pos``; -1: not all here yet; -2: not RESP."""
    cdef Py_ssize_t eol = _find_crlf(p, pos, end)
    cdef Py_ssize_t n, i
    cdef char c
    if eol < 0:
        return -1
    c = p[pos]
    # RESP2, and RESP3's one-line types (null, double, boolean, big number).
    if c == b'+' or c == b'-' or c == b':' or c == b'_' or c == b',' or c == b'#' \
            or c == b'(':
        return eol + 2
    # Bulk (string, RESP3 error, verbatim), aggregate (array, set, map, push).
    if c != b'$' and c != b'!' and c != b'=' and c != b'*' and c != b'~' and c != b'%' \
            and c != b'>':
        return -2
    if eol - pos == 3 and p[pos + 1] == b'-' and p[pos + 2] == b'1':
        return eol + 2                  # a nil
    n = _size(p, pos + 1, eol)
    if n < 0:
        return -2
    if c == b'%':
        n *= 2                          # a map: keys and values
    if c == b'$' or c == b'!' or c == b'=':
        if eol + 2 + n + 2 > end:
            return -1
        if p[eol + 2 + n] != b'\r' or p[eol + 3 + n] != b'\n':
            return -2
        return eol + 2 + n + 2
    if depth >= 8:
        return -2
    pos = eol + 2
    for i in range(n):
        if pos >= end:
            return -1
        pos = _resp_skip(p, pos, end, depth + 1)
        if pos < 0:
            return pos
    return pos
