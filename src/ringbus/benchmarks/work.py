"""The work the worker-process benchmarks hand out (ringbus.benchmarks.workers): plain
functions, importable by worker processes and by multiprocessing's pools alike, so every
contender runs exactly this code on exactly these items."""
from __future__ import annotations

#: Iterations of :func:`burn`'s loop: about 20 µs of pure-Python work on this class of
#: machine (the benchmark prints what one call measured).
BURN_LOOPS = 600


def burn(x: int) -> int:
    """CPU-bound: about 20 µs of interpreter work, then a result that depends on x."""
    s = x
    for i in range(BURN_LOOPS):
        s = (s * 31 + i) & 0xFFFF
    return s


def tiny(x: int) -> int:
    """The smallest handler: what is measured is the hand-off."""
    return x + 1


def echo_setup(bus) -> None:
    """Latency: the worker sends the parent's time stamp straight back."""
    ping, pong = bus.event_type("bench.ping"), bus.event_type("bench.pong")
    publish = bus.publish
    bus.subscribe(ping, lambda stamp: publish(pong, stamp))


def bench_setup(bus) -> None:
    """The benchmark's workers (ringbus.benchmarks.workers): ``bench.burn`` and
    ``bench.tiny`` items answered with ``bench.result``, ``bench.ping`` with ``bench.pong``."""
    result = bus.event_type("bench.result")
    publish = bus.publish
    for name, fn in (("bench.burn", burn), ("bench.tiny", tiny)):
        bus.subscribe(bus.event_type(name), lambda x, fn=fn: publish(result, fn(x)))
    echo_setup(bus)


def tiny_rows_setup(bus) -> None:
    """tiny on a batch of records: ``value + 1`` for every row, the results back as one
    array per batch."""
    item, result = bus.event_type("bench.tiny"), bus.event_type("bench.result")
    publish = bus.publish

    def on_rows(rows) -> None:
        publish(result, rows["value"] + 1)
    bus.subscribe_batch(item, on_rows)


def noop_setup(bus) -> None:
    """Handlers that do nothing: what is left is the router's and the hand-off's cost."""
    bus.subscribe(bus.event_type("bench.item"), lambda x: None)
