"""Closing a bus, by ``with``, by ``close()`` or at interpreter exit: running consumers are
stopped with drain (bounded by a timeout), and whatever is still queued is reported with a
RuntimeWarning (and on the ``ringbus`` logger) naming the count. Never silent.

The exit cases run in subprocesses: what happens at interpreter exit can only be seen from
outside.
"""
import logging
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

import ringbus


def _run(script, timeout=60):
    # The timeout only guards against a hang (subprocess.TimeoutExpired fails the test).
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=timeout)


def test_exit_reports_events_nobody_consumed():
    proc = _run("""
        import ringbus
        bus = ringbus.Bus()
        T = bus.event_type("t")
        for i in range(7):
            bus.publish(T, i)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" in proc.stderr, proc.stderr
    assert "7 event(s) still queued" in proc.stderr, proc.stderr
    assert "no consumer was running" in proc.stderr


def test_exit_drains_a_running_consumer():
    proc = _run("""
        import sys, threading, time, ringbus
        bus = ringbus.Bus(capacity=1024)
        T = bus.event_type("t")
        seen = []
        release = threading.Event()
        def slow(x):
            release.wait(5)          # hold the consumer until everything is queued
            seen.append(x)
            if len(seen) == 500:
                sys.stdout.write(f"dispatched {len(seen)}\\n")    # one write: no interleaving
                sys.stdout.flush()
        bus.subscribe(T, slow)
        bus.start()
        for i in range(500):
            bus.publish(T, i)
        sys.stdout.write(f"queued {bus.pending}\\n")
        sys.stdout.flush()
        release.set()
    """)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split()
    assert int(out[out.index("queued") + 1]) > 0, proc.stdout     # exit had work to do
    assert "dispatched 500" in proc.stdout, (proc.stdout, proc.stderr)
    assert "RuntimeWarning" not in proc.stderr, proc.stderr


def test_exit_is_bounded_by_close_timeout():
    # Draining all 100 events would take 20 s: the warning's count shows the drain was cut.
    proc = _run(timeout=15, script="""
        import threading, time, ringbus
        bus = ringbus.Bus(close_timeout=0.5)
        T = bus.event_type("t")
        bus.subscribe(T, lambda x: time.sleep(0.2))
        bus.start()
        for i in range(100):
            bus.publish(T, i)
    """)
    assert proc.returncode == 0, proc.stderr
    left = int(re.search(r"with (\d+) event\(s\) still queued", proc.stderr).group(1))
    assert 0 < left < 100, proc.stderr
    assert "RuntimeWarning" in proc.stderr, proc.stderr
    assert "still queued" in proc.stderr and "close timeout" in proc.stderr, proc.stderr


def test_context_manager_drains_and_closes():
    bus = ringbus.Bus()
    T = bus.event_type("t")
    seen = []
    bus.subscribe(T, seen.append)
    with bus as b:
        assert b is bus
        bus.start()
        for i in range(100):
            bus.publish(T, i)
    assert bus.closed
    assert seen == list(range(100))
    assert not bus.ring.started
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish(T, 1)
    with pytest.raises(RuntimeError, match="closed"):
        bus.try_publish(T, 1)
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish_many(T, [1, 2])
    with pytest.raises(RuntimeError, match="closed"):
        bus.start()
    assert bus.emit(T, "inline") == 1          # emit still works on the calling thread
    assert bus.close() == 0                   # idempotent, silent


def test_close_reports_what_is_left(caplog):
    bus = ringbus.Bus()
    T = bus.event_type("t")
    bus.publish(T, 1)
    bus.publish(T, 2)
    caplog.set_level(logging.WARNING, logger="ringbus")
    with pytest.warns(RuntimeWarning, match=r"2 event\(s\) still queued"):
        assert bus.close() == 2
    assert any("2 event(s) still queued" in r.getMessage() for r in caplog.records)
    assert bus.drain() == 2                   # they are still there to be drained


def test_close_reraises_what_ended_a_consumer():
    bus = ringbus.Bus(on_error="raise")
    T = bus.event_type("t")

    def boom(x):
        raise ValueError("handler failed")

    bus.subscribe(T, boom)
    bus.start()
    bus.publish(T, 1)
    deadline = time.monotonic() + 5
    while bus.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ValueError, match="handler failed"):
        bus.close()
    assert bus.closed


def test_closers_run_in_order_after_the_consumers():
    bus = ringbus.Bus()
    T = bus.event_type("t")
    calls = []
    bus.subscribe(T, lambda x: calls.append(("event", x)))
    bus._add_closer(lambda left: calls.append(("worker", bus.ring.started)))
    bus._add_closer(lambda left: calls.append(("bridge", left is not None)))
    bus.start()
    bus.publish(T, 1)
    bus.close(timeout=5)
    assert calls == [("event", 1), ("worker", False), ("bridge", True)]


def test_close_timeout_argument_checked():
    with pytest.raises(ValueError, match="close_timeout"):
        ringbus.Bus(close_timeout=-1)
    bus = ringbus.Bus()
    with pytest.raises(ValueError, match="timeout"):
        bus.close(timeout=float("nan"))
    assert not bus.closed
    bus.close()
