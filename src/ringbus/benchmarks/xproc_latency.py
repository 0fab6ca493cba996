"""``xproc_latency``: one-way latency from a producer process to this process.

The producer sends one 16-byte record every ``xproc_period_us`` (50 µs): it stamps
``time.perf_counter_ns()`` into the record (CLOCK_MONOTONIC, one clock for every process on
Linux), sends, and busy-waits until the period has passed. The consumer here takes its own
``perf_counter_ns()`` on receipt: the difference is the latency, pooled over all rounds and
reported as percentiles. Every record is checked too (count and order).

Rows: ringbus ``RecordRing`` with its consumer thread waiting by ``spin``, ``yield`` and
``block`` (a futex in the segment); the pure-Python shared-memory ring with a busy-polling
consumer; ``multiprocessing.Pipe``, ``multiprocessing.Queue``, faster-fifo ``put`` / ``get``
and iceoryx2 (polling ``receive``).

On 2 shared cores a spinning consumer and the busy-waiting producer take both: any other
runnable thread shows in the upper percentiles.
"""
from __future__ import annotations

from functools import partial as p
from typing import Callable, Optional

from ringbus.benchmarks.measure import Case
from ringbus.benchmarks.topology import Settings
from ringbus.benchmarks.xproc import build_case
from ringbus.benchmarks.xproc_channels import (
    RECORD, FasterFifoChannel, Iceoryx2Channel, MPQueueChannel, PipeChannel, PythonRingChannel,
    RecordRingChannel,
)

NAME = "xproc_latency"
WAITS = ("spin", "yield", "block")


def ring_label(wait: str) -> str:
    """The row label of the RecordRing whose consumer waits by ``wait``."""
    return f"ringbus {wait}"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``xproc_latency`` case."""
    rows: list = [(ring_label(w), f"ringbus RecordRing, wait={w}",
                   p(RecordRingChannel, mode="publish", wait=w), 0) for w in WAITS]
    rows += [
        ("python shm ring", "pure-Python shared_memory ring, busy poll",
         p(PythonRingChannel, busy=True), 0),
        ("mp.Pipe", "multiprocessing.Pipe send_bytes/recv_bytes", p(PipeChannel, payload=RECORD),
         0),
        ("mp.Queue", "multiprocessing.Queue put/get", p(MPQueueChannel, payload=RECORD), 0),
        ("faster-fifo", "faster-fifo put/get", p(FasterFifoChannel, payload=RECORD,
                                                  many=False), 0),
        ("iceoryx2", "iceoryx2 send_copy/receive (polling)", Iceoryx2Channel, 0),
    ]
    n = settings.xproc_latency_messages
    rows = [(label, shown, make, n) for label, shown, make, _ in rows]
    return build_case(NAME, f"producer process -> this process, 1 message every "
                            f"{settings.xproc_period_us:g} µs, {n:,} per round",
                      "processes_latency", settings.xproc_rounds, rows, reference=None,
                      skip=settings.xproc_skip, period_ns=int(settings.xproc_period_us * 1e3),
                      progress=progress)
