"""``xproc_records``: one producer process -> this process, 16-byte records
``(int64 seq, float64 value)``, every record checked (count and order).

ringbus: a shared ``RecordRing`` (``producers="single"``, ``wait="block"``) whose consumer
thread here hands each batch to a handler as a zero-copy numpy view; the producer calls
``publish((i, x))`` per record, ``publish_many`` with numpy blocks of 1,024, or the nogil C
API (``ringbus_record_publish`` in a C loop). For the ratios, the same C-API producer and
the same ``publish_many`` producer as threads of this process, into a heap ring.

The peers: a pure-Python ``multiprocessing.shared_memory`` SPSC ring (:mod:`.python_ring`)
per record and with numpy blocks of 1,024; ``multiprocessing.Pipe`` ``send_bytes`` /
``recv_bytes``; ``multiprocessing.Queue`` ``put`` / ``get`` of a tuple; faster-fifo
``put_many`` / ``get_many`` (blocks of 1,024 tuples) and ``put`` / ``get``; iceoryx2's Python
API (``send_copy`` of a ctypes struct, a polling ``receive``).
"""
from __future__ import annotations

from functools import partial as p
from typing import Callable, Optional

from ringbus.benchmarks.measure import Case
from ringbus.benchmarks.topology import Settings
from ringbus.benchmarks.xproc import build_case, scaled
from ringbus.benchmarks.xproc_channels import (
    RECORD, FasterFifoChannel, Iceoryx2Channel, MPQueueChannel, PipeChannel, PythonRingChannel,
    RecordRingChannel,
)

NAME = "xproc_records"
PUBLISH = "ringbus publish"
MANY = "ringbus publish_many"
NOGIL = "ringbus nogil C API"
NOGIL_THREAD = "ringbus nogil C API, thread"
MANY_THREAD = "ringbus publish_many, thread"
PY_RING = "python shm ring"
PY_BLOCKS = "python shm ring numpy blocks"
PIPE = "mp.Pipe"
QUEUE = "mp.Queue"
FF_MANY = "faster-fifo put_many"
FF_PUT = "faster-fifo put"
ICEORYX2 = "iceoryx2"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``xproc_records`` case."""
    base = settings.xproc_messages
    rows: list = [
        (PUBLISH, "ringbus RecordRing publish((i, x))", p(RecordRingChannel, mode="publish"),
         scaled(base, 12)),
        (MANY, "ringbus RecordRing publish_many(1,024)", p(RecordRingChannel, mode="many"),
         scaled(base, 200)),
        (NOGIL, "ringbus RecordRing nogil C-API producer", p(RecordRingChannel, mode="nogil"),
         scaled(base, 50)),
        (NOGIL_THREAD, "  same C-API producer, a thread here (heap ring)",
         p(RecordRingChannel, mode="nogil", local=True), scaled(base, 50)),
        (MANY_THREAD, "  same publish_many, a thread here (heap ring)",
         p(RecordRingChannel, mode="many", local=True), scaled(base, 200)),
        (PY_RING, "pure-Python shared_memory SPSC ring, per record", PythonRingChannel,
         scaled(base, 6)),
        (PY_BLOCKS, "  same ring, numpy blocks of 1,024", p(PythonRingChannel, blocks=True),
         scaled(base, 100)),
        (PIPE, "multiprocessing.Pipe send_bytes/recv_bytes", p(PipeChannel, payload=RECORD),
         scaled(base, 0.4)),
        (QUEUE, "multiprocessing.Queue put/get (tuple)", p(MPQueueChannel, payload=RECORD),
         scaled(base, 0.2)),
        (FF_MANY, "faster-fifo put_many(1,024 tuples)/get_many",
         p(FasterFifoChannel, payload=RECORD, many=True), scaled(base, 0.3)),
        (FF_PUT, "faster-fifo put/get (tuple)", p(FasterFifoChannel, payload=RECORD,
                                                  many=False), scaled(base, 0.2)),
        (ICEORYX2, "iceoryx2 send_copy/receive (ctypes struct, polling)", Iceoryx2Channel,
         scaled(base, 0.3)),
    ]
    return build_case(NAME, "1 producer process -> this process, 16-byte records",
                      "processes", settings.xproc_rounds, rows, reference=PY_RING,
                      skip=settings.xproc_skip, progress=progress)
