"""Worker processes against multiprocessing's pools, same work, same run (issue 11).

    python -m ringbus.benchmarks.workers [--quick]

Three measurements, rounds interleaved, medians [min-max]:

- CPU-bound (:func:`~ringbus.benchmarks.work.burn`, about 20 µs of pure Python an item):
  the bus's own consumer thread running it in-process, ``Workers`` with 2 processes,
  ``multiprocessing.Pool(2).imap`` and ``ProcessPoolExecutor(2).map``, each pool at its best
  chunksize of the run. Items/s from the first item sent until the last result is back.
- tiny handler (:func:`~ringbus.benchmarks.work.tiny`): the same contenders, measuring the
  hand-off; and Workers fed record batches (``emit_batch`` of 8,192 16-byte records, split
  by key field, ``value + 1`` per row in the worker, one result array back per part).
- event -> worker -> reply on the parent's bus: round-trip latency p50/p99/p99.9, one
  event about every 250 µs (a 200 µs sleep).

Every contender returns a result per item and every round checks the count (and, for the
pools, the values): a lost item fails the round. Processes start before the clock.
"""
from __future__ import annotations

import concurrent.futures
import gc
import multiprocessing
import statistics
import threading
import time
from typing import Any, Callable, Optional

from ringbus.benchmarks import work

__all__ = ["measure", "render"]

CHUNKSIZES = (1, 16, 256, 4096)


def _median_range(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


class _BusSide:
    """A parent bus whose ``bench.item`` events go to ``handler`` (in-process) or to
    Workers(setup); it counts ``bench.result`` events (or handled items) until all are in."""

    def __init__(self, setup: Optional[str], processes: int, fn: Callable[[int], int]):
        import ringbus
        self.bus = ringbus.Bus()
        self.item = self.bus.event_type("bench.item")
        result = self.bus.event_type("bench.result")
        self.count = 0
        self.done = threading.Event()
        self.want = 0
        self.workers = None
        if setup is None:
            def in_process(x: int) -> None:
                fn(x)
                self._one()
            self.bus.subscribe(self.item, in_process)
        else:
            self.workers = ringbus.Workers(setup, processes=processes, key=None)
            self.bus.subscribe(self.item, self.workers)
            self.bus.subscribe(result, lambda r: self._one())
            self._running = self.workers.running(self.bus)
            self._running.__enter__()

    def _one(self) -> None:
        self.count += 1
        if self.count >= self.want:
            self.done.set()

    def round(self, items: int) -> float:
        publish, item = self.bus.publish, self.item

        def send() -> None:
            for x in range(items):
                publish(item, x)
        return self._timed(items, send)

    def _timed(self, items: int, send: Callable[[], None]) -> float:
        """Items/s from the first ``send`` until ``items`` results are back."""
        self.count, self.want = 0, items
        self.done.clear()
        with self.bus.running():
            t0 = time.perf_counter()
            send()
            if not self.done.wait(600):
                raise RuntimeError(f"only {self.count} of {items} results came back")
            seconds = time.perf_counter() - t0
        if self.count != items:
            raise RuntimeError(f"{self.count} results for {items} items")
        return items / seconds

    def close(self) -> None:
        if self.workers is not None:
            self._running.__exit__(None, None, None)
        self.bus.close()


class _BatchSide(_BusSide):
    """Workers fed record batches (``emit_batch`` of blocks of ``block`` rows, routed by the
    ``key`` field in one pass); each worker sends back one result array per part."""

    def __init__(self, processes: int, block: int = 8192):
        import numpy as np
        import ringbus
        self.bus = ringbus.Bus()
        self.item = self.bus.event_type("bench.item")
        result = self.bus.event_type("bench.result")
        self.count, self.want, self.done = 0, 0, threading.Event()
        self.block = block
        self.workers = ringbus.Workers("ringbus.benchmarks.work:tiny_rows_setup",
                                       processes=processes, key="key")
        self.bus.subscribe_batch(self.item, self.workers)
        self.bus.subscribe(result, self._rows_back)
        self._running = self.workers.running(self.bus)
        self._running.__enter__()
        self._types = np.full(block, self.item, np.int64)
        self._rows = np.zeros(block, np.dtype([("key", "<i8"), ("value", "<f8")]))
        self._rows["key"] = np.arange(block)

    def _rows_back(self, values: Any) -> None:
        self.count += len(values)
        if self.count >= self.want:
            self.done.set()

    def round(self, items: int) -> float:
        # 25 times the rows of the per-event rounds: a round of a few blocks would time
        # mostly the last block's way back.
        items = items * 25 - items * 25 % self.block
        emit_batch, types, rows = self.bus.emit_batch, self._types, self._rows

        def send() -> None:
            for _ in range(items // self.block):
                emit_batch(types, rows)
        return self._timed(items, send)


def _pool_round(mapper: Callable[..., Any], fn: Callable[[int], int], items: int,
                chunksize: int) -> float:
    t0 = time.perf_counter()
    out = list(mapper(fn, range(items), chunksize=chunksize))
    seconds = time.perf_counter() - t0
    if len(out) != items or out[-1] != fn(items - 1):
        raise RuntimeError(f"the pool returned {len(out)} results for {items} items")
    return items / seconds


def _throughput(fn: Callable[[int], int], setup: str, items: int, rounds: int,
                processes: int, batches: bool = False) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    sides: dict[str, _BusSide] = {}
    pool = ctx.Pool(processes)
    executor = concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx)
    samples: dict[str, list[float]] = {}
    try:
        # Made inside the try: a side that fails to start (numpy missing) closes the others.
        sides["ringbus in-process consumer"] = _BusSide(None, processes, fn)
        sides[f"ringbus Workers({processes})"] = _BusSide(setup, processes, fn)
        if batches:
            sides[f"ringbus Workers({processes}), record batches of 8192"] = \
                _BatchSide(processes)
        list(pool.imap(fn, range(processes * 4)))              # started and warm
        list(executor.map(fn, range(processes * 4)))
        for r in range(rounds + 1):
            gc.disable()
            try:
                for label, side in sides.items():
                    rate = side.round(items)
                    if r:
                        samples.setdefault(label, []).append(rate)
                for c in CHUNKSIZES:
                    if c * 4 > items and c > 1:
                        continue
                    for label, mapper in ((f"Pool({processes}).imap", pool.imap),
                                          (f"ProcessPoolExecutor({processes}).map",
                                           executor.map)):
                        rate = _pool_round(mapper, fn, items, c)
                        if r:
                            samples.setdefault(f"{label} chunksize={c}", []).append(rate)
            finally:
                gc.enable()
    finally:
        pool.terminate()
        pool.join()
        executor.shutdown()
        for side in sides.values():
            side.close()
    rows = {label: _median_range(s) for label, s in samples.items()}
    for peer in (f"Pool({processes}).imap", f"ProcessPoolExecutor({processes}).map"):
        best = max((label for label in rows if label.startswith(peer + " ")),
                   key=lambda label: rows[label]["median"])
        rows[f"{peer} best ({best.split()[-1]})"] = rows[best]
    return rows


def _latency(events: int, processes: int) -> dict[str, float]:
    import ringbus
    bus = ringbus.Bus()
    ping, pong = bus.event_type("bench.ping"), bus.event_type("bench.pong")
    lat: list[float] = []
    done = threading.Event()

    def on_pong(stamp: int) -> None:
        lat.append((time.perf_counter_ns() - stamp) / 1000)
        if len(lat) >= events:
            done.set()
    bus.subscribe(pong, on_pong)
    workers = ringbus.Workers("ringbus.benchmarks.work:echo_setup", processes=processes)
    bus.subscribe(ping, workers)
    with workers.running(bus), bus.running():
        for _ in range(events):
            bus.publish(ping, time.perf_counter_ns())
            # Paced by sleeping: a busy-waiting thread would hold the GIL that the reply's
            # threads need (for up to the 5 ms switch interval).
            time.sleep(200e-6)
        if not done.wait(60):
            raise RuntimeError(f"{len(lat)} of {events} replies")
    bus.close()
    lat.sort()
    return {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)],
            "p99.9": lat[int(len(lat) * 0.999)], "events": len(lat)}


def _best(rows: dict[str, Any], peer: str) -> str:
    return next(label for label in rows if label.startswith(peer) and " best " in label)


def measure(cpu_items: int = 4000, tiny_items: int = 40000, rounds: int = 3,
            latency_events: int = 5000, processes: int = 2) -> dict[str, Any]:
    t0 = time.perf_counter()
    for _ in range(100):
        work.burn(1)
    burn_us = (time.perf_counter() - t0) / 100 * 1e6
    result: dict[str, Any] = {"burn_us": burn_us, "processes": processes, "rounds": rounds}
    result["cpu"] = _throughput(work.burn, "ringbus.benchmarks.work:burn_setup", cpu_items,
                                rounds, processes)
    result["tiny"] = _throughput(work.tiny, "ringbus.benchmarks.work:tiny_setup", tiny_items,
                                 rounds, processes, batches=True)
    result["latency"] = _latency(latency_events, processes)
    cpu, tiny = result["cpu"], result["tiny"]
    rb = f"ringbus Workers({processes})"
    result["targets"] = {
        text: rows[rb]["median"] / rows[den]["median"]
        for text, rows, den in (
            (">= 1.7x in-process on CPU-bound", cpu, "ringbus in-process consumer"),
            (">= 0.95x Pool.imap (best) on CPU-bound", cpu, _best(cpu, "Pool(")),
            (">= 1x Pool.imap (best), tiny", tiny, _best(tiny, "Pool(")),
            (">= 3x ProcessPoolExecutor.map (best), tiny", tiny,
             _best(tiny, "ProcessPoolExecutor(")))}
    batched = f"ringbus Workers({processes}), record batches of 8192"
    result["targets"][">= 5x Pool.imap (best), record batches"] = (
        tiny[batched]["median"] / tiny[_best(tiny, "Pool(")]["median"])
    return result


_BOUNDS = {">= 1.7x in-process on CPU-bound": 1.7, ">= 0.95x Pool.imap (best) on CPU-bound": 0.95,
           ">= 1x Pool.imap (best), tiny": 1.0, ">= 3x ProcessPoolExecutor.map (best), tiny": 3.0,
           ">= 5x Pool.imap (best), record batches": 5.0}


def render(result: dict[str, Any]) -> str:
    lines = [f"worker processes vs pools: {result['processes']} processes, "
             f"{result['rounds']} rounds, medians [min-max]; burn() = "
             f"{result['burn_us']:.1f} µs"]
    for case, title in (("cpu", "CPU-bound handler (burn)"), ("tiny", "tiny handler")):
        lines.append(f"  {title}:")
        for label, s in sorted(result[case].items(), key=lambda kv: -kv[1]["median"]):
            lines.append(f"    {label:<48} {s['median'] / 1e3:9.1f} k items/s "
                         f"[{s['min'] / 1e3:.1f}-{s['max'] / 1e3:.1f}]")
    lat = result["latency"]
    lines.append(f"  event -> worker -> reply on the parent bus: p50 {lat['p50']:.0f} µs, "
                 f"p99 {lat['p99']:.0f} µs, p99.9 {lat['p99.9']:.0f} µs "
                 f"({lat['events']} events)")
    for text, ratio in result["targets"].items():
        lines.append(f"  target {text}: {ratio:.2f}x "
                     f"{'met' if ratio >= _BOUNDS[text] else 'NOT met'}")
    return "\n".join(lines)


def _main(argv: Optional[list[str]] = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m ringbus.benchmarks.workers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and rounds")
    args = parser.parse_args(argv)
    kw: dict[str, Any] = (dict(cpu_items=1000, tiny_items=10000, rounds=1,
                               latency_events=1000) if args.quick else {})
    print(render(measure(**kw)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
