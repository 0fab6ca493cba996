"""RecordRing throughput: a producer thread publishing records through the C API in a nogil
loop -> the ring's consumer thread -> one batch handler, in records per second, against the
object ring's per-event path (``bus.publish`` -> the bus's consumer thread -> one handler),
measured in the same run, rounds interleaved, medians and their ratio.

How to call it (numpy needed; nothing is asserted, the targets come back as booleans)::

    from ringbus.benchmarks.record_ring import measure, render
    result = measure()                      # defaults: about 10 s on 2 cores
    print(render(result))
    result["record_ring"]["median"]         # records/s, C API producer -> batch handler
    result["object_ring"]["median"]         # events/s, bus.publish -> consumer thread
    result["ratio"]                         # the first over the second
    result["targets"]                       # {"record_ring >= 20M records/s": bool, ...}

or ``python -m ringbus.benchmarks.record_ring [--quick]``.

What each side does per item:

- record ring: the producer thread calls ``ringbus_record_publish`` (one 16-byte record:
  int64 sequence + float64, through the capsule's function table exactly as another
  extension would) in a loop without the GIL; the consumer thread waits without the GIL,
  takes it once per batch and calls a Python handler with a zero-copy view, which counts
  ``len(view)``.
- object ring: a Python thread calls ``bus.publish(TYPE, i)``; the bus's consumer thread
  dispatches each event to a Python handler that counts it.

Both are timed from the producer's start until ``stop(drain=True)`` returns, that is until
every item went through its handler.
"""
from __future__ import annotations

import gc
import statistics
import threading
import time
from typing import Any, Optional

__all__ = ["measure", "render", "TARGET_RECORDS_PER_S", "TARGET_RATIO"]

#: The issue's targets (issue 4): records/s, and times the object ring's per-event rate.
TARGET_RECORDS_PER_S = 20e6
TARGET_RATIO = 5.0


def _timed(fn):
    # As timeit does: no cyclic collection billed to whichever side allocates next.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if enabled:
            gc.enable()


def _record_round(records: int, capacity: int, producers: Any, wait: Any,
                  batch: int) -> tuple[float, int]:
    import numpy as np

    from ringbus import RecordRing
    from ringbus._records import _publish_nogil

    dtype = np.dtype([("seq", "<i8"), ("value", "<f8")])
    ring = RecordRing(dtype, capacity, producers=producers, wait=wait)
    count = [0]

    def on_batch(view):
        count[0] += len(view)

    ring.subscribe(on_batch)
    source = np.zeros(1024, dtype=dtype)
    result: list = []

    def run():
        ring.start()
        producer = threading.Thread(target=lambda: result.append(
            _publish_nogil(ring, source, records, seq_offset=0, batch=batch)))
        t0 = time.perf_counter()
        producer.start()
        producer.join()
        ring.stop(drain=True)
        return time.perf_counter() - t0

    seconds = _timed(run)
    if count[0] != records or result[0][0] != records:
        raise RuntimeError(f"record ring lost records: {count[0]} of {records} dispatched")
    return records / seconds, ring.stats()["batches"]


def _object_round(events: int, capacity: int, wait: Any) -> float:
    from ringbus import Bus

    bus = Bus(capacity=capacity, wait=wait)
    kind = bus.event_type("bench.tick")
    count = [0]

    def on_event(payload):
        count[0] += 1

    bus.subscribe(kind, on_event)

    def produce():
        publish = bus.publish
        for i in range(events):
            publish(kind, i)

    def run():
        bus.start()
        producer = threading.Thread(target=produce)
        t0 = time.perf_counter()
        producer.start()
        producer.join()
        bus.stop(drain=True)
        return time.perf_counter() - t0

    seconds = _timed(run)
    if count[0] != events:
        raise RuntimeError(f"object ring lost events: {count[0]} of {events} dispatched")
    return events / seconds


def _summary(samples: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": samples}


def measure(records: int = 5_000_000, events: int = 300_000, rounds: int = 7,
            capacity: int = 65536, producers: str = "multi", wait: str = "block",
            variants: bool = True, warmup: int = 1) -> dict[str, Any]:
    """Measure the record ring's C API path against the object ring's per-event path.

    ``records`` per record-ring round, ``events`` per object-ring round (it is ~10x slower
    per item), ``rounds`` timed rounds of each, interleaved, after ``warmup`` untimed ones.
    ``producers``/``wait`` configure both rings (defaults: the rings' defaults). With
    ``variants``, also the record ring with one producer (``producers="single"``) and with
    ``ringbus_record_publish_many`` in chunks of 256, for context.

    Returns a dict: ``record_ring`` and ``object_ring`` (``median``, ``min``, ``max``,
    ``samples``, in items/s), ``ratio`` (median over median), ``variants`` (label ->
    summary), ``batches`` (the record ring's median views per round), ``targets`` (label ->
    met?) and ``settings``.
    """
    if records < 1 or events < 1 or rounds < 1:
        raise ValueError("records, events and rounds must be >= 1")
    rec: list[float] = []
    obj: list[float] = []
    batches: list[int] = []
    extra: dict[str, list[float]] = {}
    plan: list[tuple[str, dict[str, Any]]] = [
        ("single producer", dict(producers="single", batch=0)),
        ("publish_many x256", dict(producers=producers, batch=256))] if variants else []
    for r in range(warmup + rounds):
        timed = r >= warmup
        # Alternate which side goes first: a burst of noise on a shared VM lands on both.
        order = ("rec", "obj") if r % 2 == 0 else ("obj", "rec")
        for side in order:
            if side == "rec":
                rate, nb = _record_round(records, capacity, producers, wait, 0)
                if timed:
                    rec.append(rate)
                    batches.append(nb)
            else:
                rate = _object_round(events, capacity, wait)
                if timed:
                    obj.append(rate)
        for label, kw in plan:
            rate, _ = _record_round(records, capacity, kw["producers"], wait, kw["batch"])
            if timed:
                extra.setdefault(label, []).append(rate)
    result: dict[str, Any] = {
        "record_ring": _summary(rec),
        "object_ring": _summary(obj),
        "variants": {label: _summary(s) for label, s in extra.items()},
        "batches": statistics.median(batches),
        "settings": {"records": records, "events": events, "rounds": rounds,
                     "capacity": capacity, "producers": producers, "wait": wait,
                     "record_bytes": 16},
    }
    result["ratio"] = result["record_ring"]["median"] / result["object_ring"]["median"]
    result["targets"] = {
        f"record_ring >= {TARGET_RECORDS_PER_S / 1e6:.0f}M records/s":
            result["record_ring"]["median"] >= TARGET_RECORDS_PER_S,
        f"record_ring >= {TARGET_RATIO:.0f}x object ring":
            result["ratio"] >= TARGET_RATIO,
    }
    return result


def render(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`measure`'s result."""
    s = result["settings"]

    def row(label, summary, unit):
        return (f"  {label:<44} {summary['median'] / 1e6:8.2f} M {unit}/s "
                f"(min {summary['min'] / 1e6:.2f}, max {summary['max'] / 1e6:.2f})")

    lines = [f"record ring vs object ring: capacity {s['capacity']}, producers="
             f"{s['producers']!r}, wait={s['wait']!r}, {s['rounds']} rounds, medians",
             row("RecordRing: C API publish (nogil) -> batch", result["record_ring"],
                 "records"),
             row("Bus.publish -> consumer thread -> handler", result["object_ring"],
                 "events")]
    for label, summary in result["variants"].items():
        lines.append(row(f"RecordRing: {label}", summary, "records"))
    lines.append(f"  ratio (record ring / object ring): {result['ratio']:.1f}x; "
                 f"{s['records'] / result['batches']:.0f} records per view on average")
    for label, met in result["targets"].items():
        lines.append(f"  target {label}: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def _main(argv: Optional[list[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ringbus.benchmarks.record_ring",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and rounds")
    parser.add_argument("--wait", default="block", help="both rings' wait strategy")
    parser.add_argument("--producers", default="multi", help="'multi' or 'single'")
    args = parser.parse_args(argv)
    kw: dict[str, Any] = (dict(records=1_000_000, events=100_000, rounds=3) if args.quick
                          else {})
    print(render(measure(producers=args.producers, wait=args.wait, **kw)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
