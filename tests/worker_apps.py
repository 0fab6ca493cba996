"""Setup functions for the worker-process tests (tests/test_workers.py): importable by the
workers, which the tests start with multiprocessing's spawn."""
import os
import time

import ringbus


def echo(bus):
    """Each tick comes back as ``done``: (key, n, worker pid, redelivered)."""
    tick, done = bus.event_type("tick"), bus.event_type("done")

    def on_tick(p):
        bus.publish(done, (p["sym"], p["n"], os.getpid(), ringbus.current_event().redelivered))
    bus.subscribe(tick, on_tick)


def slow_echo(bus):
    """echo, 200 µs a tick: a stream long enough to kill a worker in the middle of it."""
    tick, done = bus.event_type("tick"), bus.event_type("done")

    def on_tick(p):
        end = time.perf_counter() + 200e-6
        while time.perf_counter() < end:
            pass
        bus.publish(done, (p["sym"], p["n"], os.getpid(), ringbus.current_event().redelivered))
    bus.subscribe(tick, on_tick)


def poisoned(bus):
    """A payload "poison" kills the process handling it; "raise" raises; others echo."""
    tick, done = bus.event_type("tick"), bus.event_type("done")

    def on_tick(p):
        if p == "poison":
            os._exit(3)
        if p == "raise":
            raise ValueError("a handler error, isolated")
        bus.publish(done, (p, ringbus.current_event().redelivered))
    bus.subscribe(tick, on_tick)


def names_later(bus):
    """Registers a name the parent does not know yet, at setup and while handling."""
    fresh = bus.event_type("made.in.worker")
    tick = bus.event_type("tick")

    def on_tick(p):
        later = bus.event_type(f"later.{p}")
        bus.publish(fresh, (p, later))
    bus.subscribe(tick, on_tick)


def exits(bus):
    """A handler that raises SystemExit: the worker dies mid-event, the event comes again."""
    tick, done = bus.event_type("tick"), bus.event_type("done")
    seen_file = os.environ["RINGBUS_TEST_SEEN"]

    def on_tick(p):
        if p == 1 and not os.path.exists(seen_file):
            open(seen_file, "w").close()
            raise SystemExit(5)
        bus.publish(done, (p, ringbus.current_event().redelivered))
    bus.subscribe(tick, on_tick)


def broken(bus):
    raise KeyError("setup failed on purpose")


not_a_function = 42


def batch_echo(bus):
    """Batches of rows: each comes back as (syms, ns, worker pid)."""
    tick, done = bus.event_type("tick"), bus.event_type("done")

    def on_rows(rows):
        bus.publish(done, (rows["sym"].tolist(), rows["n"].tolist(), os.getpid()))
    bus.subscribe_batch(tick, on_rows)


def answers(bus):
    """Requests: doubles a number, fails on a negative one."""
    ask = bus.event_type("ask")

    def on_ask(x):
        if x < 0:
            raise ValueError(f"negative: {x}")
        return (x * 2, os.getpid())
    bus.subscribe(ask, on_ask)


def big_echo(bus):
    """echo of bytes payloads: together, a dispatch batch of them is longer than one message."""
    tick, done = bus.event_type("tick"), bus.event_type("done")
    bus.subscribe(tick, lambda p: bus.publish(done, (len(p), p[:1])))


def mixed_echo(bus):
    """Ticks and quotes, both answered in the order they came: a tick as ``done`` and a
    quote as ``quoted``, each ``(kind, n, worker pid)``."""
    tick, quote = bus.event_type("tick"), bus.event_type("quote")
    done, quoted = bus.event_type("done"), bus.event_type("quoted")
    bus.subscribe(tick, lambda p: bus.publish(done, ("tick", p["n"], os.getpid())))
    bus.subscribe(quote, lambda p: bus.publish(quoted, ("quote", p["n"], os.getpid())))
