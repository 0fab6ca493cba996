"""Rings made without a Bus are closed at interpreter exit as a Bus is (issue 8, defect 10):
running consumers are stopped with drain=True (bounded), and whatever is still queued is
reported with a RuntimeWarning naming the count. A Bus's own ring is reported once, by the
Bus. The cases run in subprocesses: interpreter exit can only be seen from outside."""
import subprocess
import sys
import textwrap


def _run(script, timeout=60):
    # The timeout only guards against a hang (subprocess.TimeoutExpired fails the test).
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=timeout)


def test_exit_reports_a_plain_ring_nobody_consumed():
    proc = _run("""
        import ringbus
        ring = ringbus.RingBuffer(64)
        for i in range(5):
            ring.publish(0, i)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" in proc.stderr, proc.stderr
    assert "RingBuffer at interpreter exit with 5 events still queued" in proc.stderr
    assert "no consumer was running" in proc.stderr


def test_exit_reports_a_record_ring_nobody_consumed():
    proc = _run("""
        import numpy as np, ringbus
        ring = ringbus.RecordRing(np.dtype([("v", "<i8")]), 64)
        ring.publish_many(np.zeros(9, dtype=ring.dtype))
    """)
    assert proc.returncode == 0, proc.stderr
    assert "RecordRing at interpreter exit with 9 records still queued" in proc.stderr


def test_exit_drains_a_running_record_ring_consumer():
    proc = _run("""
        import sys, threading, numpy as np, ringbus
        ring = ringbus.RecordRing(np.dtype([("v", "<i8")]), 1024)
        got = []
        release = threading.Event()
        def slow(view):
            release.wait(5)          # hold the consumer until everything is queued
            got.extend(view["v"].tolist())
            if len(got) == 300:
                sys.stdout.write("dispatched 300\\n")
                sys.stdout.flush()
        ring.subscribe(slow)
        ring.start()
        ring.publish_many(np.arange(300, dtype="<i8").view(ring.dtype))
        release.set()
    """)
    assert proc.returncode == 0, proc.stderr
    assert "dispatched 300" in proc.stdout, (proc.stdout, proc.stderr)
    assert "still queued" not in proc.stderr, proc.stderr


def test_exit_drains_a_running_ring_stage():
    proc = _run("""
        import sys, ringbus
        seen = []
        def journal(t, payload):
            seen.append(payload)
            if len(seen) == 100:
                sys.stdout.write("journaled 100\\n")
                sys.stdout.flush()
        bus = ringbus.Bus()          # only the table the 'dispatch' stage dispatches to
        T = bus.event_type("t")
        ring = ringbus.RingBuffer(256)
        ring.stage("journal", journal)
        ring.start(bus)
        for i in range(100):
            ring.publish(T, i)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "journaled 100" in proc.stdout, (proc.stdout, proc.stderr)
    assert "still queued" not in proc.stderr, proc.stderr


def test_a_bus_ring_is_reported_once_by_the_bus():
    proc = _run("""
        import ringbus
        bus = ringbus.Bus()
        T = bus.event_type("t")
        for i in range(3):
            bus.publish(T, i)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("still queued") == 2, proc.stderr   # the logger and the warning
    assert "RingBuffer at interpreter exit" not in proc.stderr
