"""``xproc_messages``: one producer process -> this process, variable-length messages, every
message checked (count and order, by the sequence number it carries).

ringbus: a shared ``MessageRing`` (1 MiB, ``producers="single"``, ``wait="block"``) whose
consumer thread here calls a handler per message: 64-byte ``bytes`` (``struct "<q56x"``: the
sequence, then zeros) read through the memoryview, and small Python objects
(``{"seq": i, "sym": "ESZ6", "px": 6012.25}``) through ``codec="pickle"`` and
``codec="msgspec"``. The peers: faster-fifo with the same 64-byte bytes (``put_many`` of
1,024 / ``get_many``, and ``put`` / ``get``), ``multiprocessing.Queue`` with the same small
objects, ``multiprocessing.Pipe`` ``send_bytes`` / ``recv_bytes`` with the 64-byte bytes.
"""
from __future__ import annotations

from functools import partial as p
from typing import Callable, Optional

from ringbus.benchmarks.measure import Case
from ringbus.benchmarks.topology import Settings
from ringbus.benchmarks.xproc import build_case, scaled
from ringbus.benchmarks.xproc_channels import (
    BYTES64, OBJECT, FasterFifoChannel, MessageRingChannel, MPQueueChannel, PipeChannel,
)

NAME = "xproc_messages"
BYTES = "ringbus bytes"
PICKLE = "ringbus pickle"
MSGSPEC = "ringbus msgspec"
FF_MANY = "faster-fifo put_many bytes"
FF_PUT = "faster-fifo put bytes"
QUEUE = "mp.Queue objects"
PIPE = "mp.Pipe bytes"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``xproc_messages`` case."""
    base = settings.xproc_messages
    rows: list = [
        (BYTES, "ringbus MessageRing publish(64 bytes)",
         p(MessageRingChannel, payload=BYTES64), scaled(base, 4)),
        (PICKLE, "ringbus MessageRing(codec='pickle') publish(obj)",
         p(MessageRingChannel, payload=OBJECT, codec="pickle"), scaled(base, 1.2)),
        (MSGSPEC, "ringbus MessageRing(codec='msgspec') publish(obj)",
         p(MessageRingChannel, payload=OBJECT, codec="msgspec"), scaled(base, 2)),
        (FF_MANY, "faster-fifo put_many(1,024 x 64 bytes)/get_many",
         p(FasterFifoChannel, payload=BYTES64, many=True), scaled(base, 0.3)),
        (FF_PUT, "faster-fifo put/get(64 bytes)",
         p(FasterFifoChannel, payload=BYTES64, many=False), scaled(base, 0.2)),
        (QUEUE, "multiprocessing.Queue put/get(obj)", p(MPQueueChannel, payload=OBJECT),
         scaled(base, 0.2)),
        (PIPE, "multiprocessing.Pipe send_bytes/recv_bytes(64 bytes)",
         p(PipeChannel, payload=BYTES64), scaled(base, 0.4)),
    ]
    return build_case(NAME, "1 producer process -> this process, 64-byte messages and small "
                            "objects", "processes", settings.xproc_rounds, rows,
                      reference=QUEUE, skip=settings.xproc_skip, progress=progress)
