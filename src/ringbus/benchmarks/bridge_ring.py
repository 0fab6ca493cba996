"""A row of ``bridges_nats_out``: a shared ring drained into JetStream by a bridge in its own
process (``python -m ringbus bridge nats``), the ring committed only after the acks.

The benchmark's process is the producer: it publishes the run's 100-byte payloads into a
shared ``MessageRing``; a bridge process started for the run polls them, publishes them
and commits the ring as the PubAcks come. Timed from the first publish until the ring's
committed sequence covers every payload (each one acknowledged by JetStream).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any, Optional

from ringbus.benchmarks.measure import CheckedRun, Contender, Failed

__all__ = ["RB_RING_OUT", "ring_out"]

RB_RING_OUT = "ringbus ring -> bridge process"


class _RingOut(CheckedRun):
    def __init__(self, servers: Any, n: int, payload: bytes) -> None:
        import ringbus
        name = f"bench-ring-out-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # Room for a whole run: the bridge never makes the producer wait for it here.
        frame = 8 + (len(payload) + 7) // 8 * 8
        capacity = 1 << max(16, (2 * n * frame).bit_length())
        self.ring: Optional[Any] = ringbus.MessageRing(capacity, shared=name)
        servers.stack.callback(self._close)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ringbus", "bridge", "nats", "--servers",
             servers.url("nats"), "--stream", f"benchring{os.getpid()}", "--ring", name,
             "--subject", f"benchring{os.getpid()}.out"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("ringbus bridge: ready"):
            self._close()
            raise RuntimeError(f"the bridge process did not start: {line!r}")
        self.n, self.payloads, self.done = n, [payload] * n, 0

    def run(self) -> int:
        ring = self.ring
        assert ring is not None
        base = ring.dispatched
        t0 = time.perf_counter_ns()
        ring.publish_many(self.payloads)
        deadline = time.monotonic() + 120
        while ring.dispatched - base < self.n and time.monotonic() < deadline:
            time.sleep(0.0005)
        elapsed = time.perf_counter_ns() - t0
        self.done = ring.dispatched - base
        return elapsed

    def check(self) -> None:
        if self.done != self.n:
            raise Failed(f"{self.done} of {self.n} committed (acknowledged)")

    def _close(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        if self.ring is not None:
            self.ring.unlink()
            self.ring.close()
            self.ring = None


def ring_out(servers: Any, n: int, payload: bytes) -> Contender:
    """The row, or why there is none."""
    try:
        run = _RingOut(servers, n, payload)
    except (RuntimeError, OSError) as exc:
        return Contender(RB_RING_OUT, RB_RING_OUT, status=f"skipped: {exc}")
    return Contender(RB_RING_OUT, f"{RB_RING_OUT} (acked)", run, n)
