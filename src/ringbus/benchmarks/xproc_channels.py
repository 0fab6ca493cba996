"""The channels of the process cases: ringbus's shared rings and the peers, each as a
consumer side here and a producer side (``...Producer.open(...)``) in the producer process.

Messages carry the sequence number ``0 .. n-1`` that the consumer checks, and a second field:
- ``RECORD``: 16 bytes, ``(int64 seq, float64 value)``; the latency case stamps
  ``perf_counter_ns()`` into the value (exact in a float64 below 2**53 ns, 104 days);
- ``BYTES64``: 64 bytes, the int64 sequence then 56 zero bytes (``struct "<q56x"``);
- ``OBJECT``: ``{"seq": i, "sym": "ESZ6", "px": 6012.25}``, a small Python object.

Each producer writes its loop as a user of that transport would: one call per message
(``ring.publish((i, x))``, ``conn.send_bytes(pack(i, x))``, ``q.put((i, x))``...) or one per
block of 1,024 where the transport has a batch call.
"""
from __future__ import annotations

import importlib
import multiprocessing
import struct
import time
from typing import Any, Callable, Optional

from ringbus.benchmarks.peers import Unavailable
from ringbus.benchmarks.python_ring import BLOCK, PythonRing, sequences
from ringbus.benchmarks.xproc import Channel, SequenceCheck, fresh_name

__all__ = ["RECORD", "BYTES64", "OBJECT", "RecordRingChannel", "MessageRingChannel",
           "PythonRingChannel", "PipeChannel", "MPQueueChannel", "FasterFifoChannel",
           "Iceoryx2Channel", "record_dtype", "optional"]

RECORD, BYTES64, OBJECT = "record", "bytes64", "object"
VALUE = 0.5
_RECORD = struct.Struct("<qd")
_BYTES64 = struct.Struct("<q56x")
_SEQ = struct.Struct("<q")
_CTX = multiprocessing.get_context("spawn")


def record_dtype() -> Any:
    """``[("seq", "<i8"), ("v", "<f8")]``: 16 bytes."""
    import numpy as np
    return np.dtype([("seq", "<i8"), ("v", "<f8")])


def optional(module: str) -> Any:
    """Import a peer, or raise Unavailable("not installed")."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise Unavailable("not installed") from None
    if getattr(mod, "__file__", None) is None:
        # A directory of that name in the working directory (a namespace package), not
        # the library.
        raise Unavailable(f"not installed ({module!r} is a folder here, not the package)")
    return mod


def _iceoryx2() -> Any:
    iox2 = optional("iceoryx2")
    # Its Info level says "No config file was loaded" on stderr in every process.
    iox2.set_log_level(iox2.LogLevel.Error)
    return iox2


def _split(payload: str) -> Optional[Callable[[Any], tuple]]:
    """How the consumer gets (seq, value) from what it received (None: it is that tuple)."""
    if payload == RECORD:
        return _RECORD.unpack
    if payload == BYTES64:
        return lambda b: (_SEQ.unpack_from(b)[0], 0.0)
    return lambda o: (o["seq"], 0.0)


def _sentinel(payload: str) -> Any:
    """What unblocks a consumer waiting in a receive: sequence -1."""
    if payload == RECORD:
        return _RECORD.pack(-1, 0.0)
    if payload == BYTES64:
        return _BYTES64.pack(-1)
    return {"seq": -1}


def _receive(recv: Callable[[], Any], split: Optional[Callable[[Any], tuple]], n: int,
             check: SequenceCheck, latencies: Optional[list]) -> None:
    """The consumer loop of the peers that receive one message per call: until ``n`` came,
    the last sequence number came, or the sentinel."""
    one = check.one
    clock = time.perf_counter_ns
    last = n - 1
    got = 0
    while got < n:
        item = recv()
        s, x = item if split is None else split(item)
        if s < 0:
            break
        if latencies is not None:
            latencies.append(clock() - x)
        one(s)
        got += 1
        if s >= last:
            break


class _CheckedChannel(Channel):
    """A channel whose consumer checks with a :class:`SequenceCheck`."""

    def __init__(self, label: str, shown: str):
        self.label = label
        self.shown = shown
        self.check = SequenceCheck()
        self.latencies: Optional[list] = None

    def start(self, n, latencies):
        self.check.reset()
        self.latencies = latencies

    def problem(self, n):
        return self.check.problem(n)


# -- ringbus ----------------------------------------------------------------------------------

class RecordRingProducer:
    """The producer side of a RecordRing: per record, ``publish_many`` blocks, or the nogil
    C API (``ringbus._records._publish_nogil``, a C loop as another extension would write)."""

    def __init__(self, ring: Any, mode: str, owned: bool):
        self.ring, self.mode, self.owned = ring, mode, owned
        if mode != "publish":
            import numpy as np
            self.np = np
            self.block = np.zeros(BLOCK, ring.dtype)
            self.block["v"] = VALUE
            self.ar = np.arange(BLOCK, dtype=np.int64)

    @classmethod
    def open(cls, ring_or_name: Any, mode: str) -> "RecordRingProducer":
        from ringbus import RecordRing
        if isinstance(ring_or_name, str):
            return cls(RecordRing.attach(ring_or_name), mode, owned=True)
        return cls(ring_or_name, mode, owned=False)

    def stream(self, n: int, skip: Optional[int]) -> None:
        if self.mode == "publish":
            pub = self.ring.publish
            for i in sequences(n, skip):
                pub((i, VALUE))
        elif self.mode == "many":
            np, block, ar, pm = self.np, self.block, self.ar, self.ring.publish_many
            seq = block["seq"]
            for b0 in range(0, n, BLOCK):
                k = min(BLOCK, n - b0)
                np.add(ar, b0, out=seq)
                if skip is not None and b0 <= skip < b0 + k:
                    pm(np.delete(block[:k], skip - b0))
                else:
                    pm(block[:k] if k < BLOCK else block)
        else:
            from ringbus._records import _publish_nogil
            parts = [(0, n)] if skip is None or not 0 <= skip < n else [(0, skip),
                                                                      (skip + 1, n)]
            for lo, hi in parts:
                if hi > lo:
                    done, rc, _ = _publish_nogil(self.ring, self.block, hi - lo,
                                                 seq_offset=0, base=lo)
                    if done != hi - lo:
                        raise RuntimeError(f"the C API published {done} of {hi - lo} "
                                           f"(status {rc})")

    def send(self, i: int, stamp: float) -> None:
        self.ring.publish((i, stamp))

    def close(self) -> None:
        if self.owned:
            self.ring.close()


class _RingChannel(_CheckedChannel):
    """A ringbus ring in shared memory (or on the heap, ``local``); its consumer thread here
    (``start()`` .. ``stop(drain=True)``) checks what the handler gets."""

    ring: Any
    _unlinked = True

    def opened(self):
        if not self._unlinked:
            self._unlinked = True
            self.ring.unlink()

    def start(self, n, latencies):
        super().start(n, latencies)
        self.ring.start()

    def finish(self, timeout):
        try:
            self.ring.stop(drain=True, timeout=timeout)
        except TimeoutError:
            pass        # the count check says what is missing

    def discard(self):
        if not self.ring.started:
            self.ring.start()

    def problem(self, n):
        if self.ring.started:
            self.ring.stop(drain=False, timeout=2.0)
        return super().problem(n)

    def close(self):
        self.opened()
        self.ring.close()


class RecordRingChannel(_RingChannel):
    """A ``RecordRing`` (single producer) shared with the producer process, or (``local``)
    a heap ring fed by a producer thread of this process; the handler checks every batch
    view's sequence numbers."""

    def __init__(self, label: str, shown: str, mode: str = "publish", wait: Any = "block",
                 local: bool = False, capacity: int = 65536):
        super().__init__(label, shown)
        from ringbus import RecordRing
        self.mode, self.local = mode, local
        self.name = None if local else fresh_name("rec")
        self.ring = RecordRing(record_dtype(), capacity, producers="single", wait=wait,
                               shared=self.name)
        self._unlinked = local
        array = self.check.array
        clock = time.perf_counter_ns

        def on_batch(view):
            lat = self.latencies
            if lat is not None:
                now = clock()
                lat.extend((now - view["v"]).tolist())
            array(view["seq"])
        self.ring.subscribe(on_batch)

    def producer(self):
        return RecordRingProducer, (self.ring if self.local else self.name, self.mode)


class MessageRingProducer:
    """The producer side of a MessageRing: ``publish(pack(i))`` (64 bytes) or
    ``publish({"seq": i, ...})`` through the ring's codec."""

    def __init__(self, ring: Any, payload: str):
        self.ring, self.payload = ring, payload

    @classmethod
    def open(cls, name: str, codec: Any, payload: str) -> "MessageRingProducer":
        from ringbus import MessageRing
        return cls(MessageRing.attach(name, codec=codec), payload)

    def stream(self, n: int, skip: Optional[int]) -> None:
        pub = self.ring.publish
        if self.payload == BYTES64:
            pack = _BYTES64.pack
            for i in sequences(n, skip):
                pub(pack(i))
        else:
            for i in sequences(n, skip):
                pub({"seq": i, "sym": "ESZ6", "px": 6012.25})

    def close(self) -> None:
        self.ring.close()


class MessageRingChannel(_RingChannel):
    """A shared ``MessageRing`` (single producer); the handler gets a memoryview per message
    (or the decoded object) and checks its sequence number."""

    def __init__(self, label: str, shown: str, payload: str = BYTES64,
                 codec: Any = None, capacity_bytes: int = 1 << 20):
        super().__init__(label, shown)
        from ringbus import MessageRing
        if codec == "msgspec":
            optional("msgspec")
        self.payload, self.codec = payload, codec
        self.name = fresh_name("msg")
        self.ring = MessageRing(capacity_bytes, producers="single", shared=self.name,
                                codec=codec)
        self._unlinked = False
        one = self.check.one
        if payload == BYTES64:
            unpack_from = _SEQ.unpack_from

            def on_message(view):
                one(unpack_from(view)[0])
        else:
            def on_message(obj):
                one(obj["seq"])
        self.ring.subscribe(on_message)

    def producer(self):
        return MessageRingProducer, (self.name, self.codec, self.payload)


# -- the pure-Python shared-memory ring ------------------------------------------------------

class PythonRingProducer:
    """The producer side of :class:`~.python_ring.PythonRing`."""

    def __init__(self, ring: PythonRing, blocks: bool):
        self.ring, self.blocks = ring, blocks

    @classmethod
    def open(cls, name: str, capacity: int, blocks: bool) -> "PythonRingProducer":
        return cls(PythonRing.attach(name, capacity), blocks)

    def stream(self, n: int, skip: Optional[int]) -> None:
        if self.blocks:
            self.ring.stream_blocks(n, skip, VALUE)
        else:
            self.ring.stream(sequences(n, skip), VALUE)

    def send(self, i: int, stamp: float) -> None:
        self.ring.send(i, stamp)

    def close(self) -> None:
        self.ring.close()


class PythonRingChannel(_CheckedChannel):
    """The pure-Python SPSC ring; this thread is its consumer (polling)."""

    def __init__(self, label: str, shown: str, blocks: bool = False, busy: bool = False,
                 capacity: int = 65536):
        super().__init__(label, shown)
        optional("numpy")           # its consumer reads runs of records as numpy views
        self.blocks, self.busy = blocks, busy
        self.ring = PythonRing(capacity)

    def producer(self):
        return PythonRingProducer, (self.ring.name, self.ring.capacity, self.blocks)

    def opened(self):
        self.ring.unlink()

    def start(self, n, latencies):
        super().start(n, latencies)
        self.ring.reset()

    def consume(self, n):
        if self.blocks:
            self.ring.consume_blocks(n, self.check)
            return
        got, error = self.ring.consume(n, self.latencies, busy=self.busy)
        self.check.count, self.check.error = got, error

    def unblock(self):
        self.ring.stop = True

    def discard(self):
        self.ring.reset()

    def close(self):
        self.ring.close()


# -- the standard library's and other peers --------------------------------------------------

class _QueueProducer:
    """A producer over a pipe end or queue handed to the producer process as is."""

    def __init__(self, q: Any, payload: str, many: bool = False):
        self.q, self.payload, self.many = q, payload, many

    @classmethod
    def open(cls, *args: Any) -> "_QueueProducer":
        return cls(*args)


class PipeProducer(_QueueProducer):
    """``conn.send_bytes(pack(i, x))`` per message."""

    def stream(self, n: int, skip: Optional[int]) -> None:
        send = self.q.send_bytes
        if self.payload == RECORD:
            pack = _RECORD.pack
            for i in sequences(n, skip):
                send(pack(i, VALUE))
        else:
            pack64 = _BYTES64.pack
            for i in sequences(n, skip):
                send(pack64(i))

    def send(self, i: int, stamp: float) -> None:
        self.q.send_bytes(_RECORD.pack(i, stamp))

    def close(self) -> None:
        self.q.close()


class PipeChannel(_CheckedChannel):
    """``multiprocessing.Pipe(duplex=False)``: ``recv_bytes()`` per message here."""

    def __init__(self, label: str, shown: str, payload: str = RECORD):
        super().__init__(label, shown)
        self.payload = payload
        # This process keeps the write end too: the watcher unblocks recv_bytes through it.
        self.reader, self.writer = _CTX.Pipe(duplex=False)

    def producer(self):
        return PipeProducer, (self.writer, self.payload)

    def consume(self, n):
        _receive(self.reader.recv_bytes, _split(self.payload), n, self.check, self.latencies)

    def unblock(self):
        self.writer.send_bytes(_sentinel(self.payload))

    def discard(self):
        while self.reader.poll(0.01):
            self.reader.recv_bytes()

    def close(self):
        self.reader.close()
        self.writer.close()


class MPQueueProducer(_QueueProducer):
    """``q.put((i, x))`` (or the small object) per message."""

    def stream(self, n: int, skip: Optional[int]) -> None:
        put = self.q.put
        if self.payload == RECORD:
            for i in sequences(n, skip):
                put((i, VALUE))
        else:
            for i in sequences(n, skip):
                put({"seq": i, "sym": "ESZ6", "px": 6012.25})

    def send(self, i: int, stamp: float) -> None:
        self.q.put((i, stamp))

    def close(self) -> None:
        self.q.close()
        self.q.join_thread()


class MPQueueChannel(_CheckedChannel):
    """``multiprocessing.Queue``: ``get()`` per message here."""

    def __init__(self, label: str, shown: str, payload: str = RECORD):
        super().__init__(label, shown)
        self.payload = payload
        self.q = _CTX.Queue()

    def producer(self):
        return MPQueueProducer, (self.q, self.payload)

    def consume(self, n):
        split = None if self.payload == RECORD else _split(self.payload)
        _receive(self.q.get, split, n, self.check, self.latencies)

    def unblock(self):
        self.q.put((-1, 0.0) if self.payload == RECORD else _sentinel(self.payload))

    def discard(self):
        import queue
        try:
            while True:
                self.q.get(timeout=0.01)
        except queue.Empty:
            pass

    def close(self):
        self.q.close()
        self.q.join_thread()


class FasterFifoProducer(_QueueProducer):
    """faster-fifo: ``q.put(item)`` per message, or ``q.put_many(list of 1,024)``."""

    def stream(self, n: int, skip: Optional[int]) -> None:
        make = (lambda i: (i, VALUE)) if self.payload == RECORD else _BYTES64.pack
        if self.many:
            put_many = self.q.put_many
            seqs = list(sequences(n, skip))
            for b0 in range(0, len(seqs), BLOCK):
                put_many([make(i) for i in seqs[b0:b0 + BLOCK]], timeout=1e9)
        else:
            put = self.q.put
            if self.payload == RECORD:
                for i in sequences(n, skip):
                    put((i, VALUE), timeout=1e9)
            else:
                for i in sequences(n, skip):
                    put(make(i), timeout=1e9)

    def send(self, i: int, stamp: float) -> None:
        self.q.put((i, stamp), timeout=1e9)


class FasterFifoChannel(_CheckedChannel):
    """faster-fifo's ``Queue`` (1 MiB): ``get()`` per message, or ``get_many()`` here."""

    def __init__(self, label: str, shown: str, payload: str = RECORD, many: bool = True):
        super().__init__(label, shown)
        ff = optional("faster_fifo")
        self.payload, self.many = payload, many
        self.q = ff.Queue(max_size_bytes=1 << 20)

    def producer(self):
        return FasterFifoProducer, (self.q, self.payload, self.many)

    def consume(self, n):
        split = None if self.payload == RECORD else _split(self.payload)
        q = self.q
        if not self.many:
            _receive(lambda: q.get(timeout=1e9), split, n, self.check, self.latencies)
            return
        get_many = q.get_many
        one = self.check.one
        last = n - 1
        got = 0
        while got < n:
            for item in get_many(timeout=1e9, max_messages_to_get=BLOCK):
                s = item[0] if split is None else split(item)[0]
                if s < 0:
                    return
                one(s)
                got += 1
            if self.check.next > last:
                return

    def unblock(self):
        self.q.put((-1, 0.0) if self.payload == RECORD else _sentinel(self.payload))

    def discard(self):
        import queue
        try:
            while True:
                self.q.get_many(timeout=0.01)
        except queue.Empty:
            pass

    def close(self):
        self.q.close()


class Iceoryx2Producer:
    """iceoryx2's Python API: ``publisher.send_copy(Record(i, x))`` per message, the
    publisher retrying until delivered (no message lost when the subscriber is behind)."""

    def __init__(self, node: Any, publisher: Any, record: type):
        self.node, self.publisher, self.record = node, publisher, record

    @classmethod
    def open(cls, service: str, depth: int) -> "Iceoryx2Producer":
        iox2 = _iceoryx2()
        record = _ice_record()
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        svc = _ice_service(iox2, node, service, record, depth).open()
        publisher = (svc.publisher_builder()
                     .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
                     .create())
        return cls(node, publisher, record)

    def stream(self, n: int, skip: Optional[int]) -> None:
        send, rec = self.publisher.send_copy, self.record
        for i in sequences(n, skip):
            send(rec(i, VALUE))

    def send(self, i: int, stamp: float) -> None:
        self.publisher.send_copy(self.record(i, stamp))

    def close(self) -> None:
        self.publisher.delete()
        self.node.delete()


_ICE_RECORD: Optional[type] = None


def _ice_record() -> type:
    global _ICE_RECORD
    if _ICE_RECORD is None:
        import ctypes

        class Record(ctypes.Structure):
            _fields_ = [("seq", ctypes.c_int64), ("v", ctypes.c_double)]
        _ICE_RECORD = Record
    return _ICE_RECORD


def _ice_service(iox2: Any, node: Any, name: str, record: type, depth: int) -> Any:
    return (node.service_builder(iox2.ServiceName.new(name))
            .publish_subscribe(record)
            .enable_safe_overflow(False)        # overwriting unread samples would lose them
            .subscriber_max_buffer_size(depth)
            .history_size(0))


class Iceoryx2Channel(_CheckedChannel):
    """iceoryx2 publish-subscribe (IPC service); this thread polls ``receive()``."""

    def __init__(self, label: str, shown: str, depth: int = 1024):
        super().__init__(label, shown)
        iox2 = _iceoryx2()
        self.service = f"ringbus/bench/{fresh_name('ice')}"
        self.depth = depth
        self.node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        svc = _ice_service(iox2, self.node, self.service, _ice_record(), depth).create()
        self.subscriber = svc.subscriber_builder().buffer_size(depth).create()
        self.stop = False

    def producer(self):
        return Iceoryx2Producer, (self.service, self.depth)

    def start(self, n, latencies):
        super().start(n, latencies)
        self.stop = False

    def consume(self, n):
        receive = self.subscriber.receive
        one = self.check.one
        lat = self.latencies
        clock = time.perf_counter_ns
        last = n - 1
        got = 0
        while got < n:
            sample = receive()
            if sample is None:
                if self.stop:
                    return
                continue
            d = sample.payload().contents
            s = d.seq
            if lat is not None:
                lat.append(clock() - d.v)
            sample.delete()
            one(s)
            got += 1
            if s >= last:
                return

    def unblock(self):
        self.stop = True

    def discard(self):
        while True:
            sample = self.subscriber.receive()
            if sample is None:
                return
            sample.delete()

    def close(self):
        self.subscriber.delete()
        self.node.delete()
