"""A bridge in its own process draining a shared ring (issue 12), under real faults: a
producer process fills the ring; the bridge process (``python -m ringbus bridge``) is killed
(-9) while the engine holds what it published unacknowledged (the server paused), and
started again: every event is in the engine exactly once after de-duplication (JetStream's
own window: the stream itself holds each once; Redis: the importer's ids), each key in
order, and the ring's committed sequence reaches the end. And the in-process case: a bus's
exporter killed and started again never has its new events dropped as duplicates."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import ringbus
from bridge_cases import start, stop, wait_for
from test_bridge_faults import SYMS, _check
from processes import name, reap  # noqa: F401  (name: a fixture)

pytestmark = pytest.mark.servers

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

PRODUCER = textwrap.dedent("""
    import sys, time
    import ringbus
    ring = ringbus.MessageRing.attach(sys.argv[1])
    n, syms = int(sys.argv[2]), ("ES", "NQ", "CL", "GC")
    for i in range(n):
        ring.publish({"sym": syms[i % 4], "i": i})
        if i % 100 == 99:
            time.sleep(0.01)                # a stream, not one burst
    ring.close()
""")


@pytest.fixture(params=["nats", "redis"])
def engine(request):
    e = start(request.param)
    yield e
    stop(e)


def _bridge_process(engine, ring_name):
    where = ["--servers", engine.url] if engine.name == "nats" else ["--url", engine.url]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ringbus", "bridge", engine.name, *where, "--stream", "md",
         "--ring", ring_name, "--subject", "md.tick.{sym}", "--ack-wait", "0.5",
         "--batch", "100", "--max-in-flight", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    line = proc.stdout.readline()
    assert line.startswith("ringbus bridge: ready"), (line, proc.stderr.read()
                                                     if proc.poll() is not None else "")
    return proc


def _imported(engine, n):
    """Every event the engine holds for ``md.tick.*``, through an importing bridge (its
    de-duplication by id included), in the order its handler saw them."""
    got = []
    bus = ringbus.Bus()
    IN = bus.event_type("md.tick.in")
    bus.subscribe(IN, got.append)
    bridge = engine.bridge(bus, ack_wait=0.5, fetch_wait=0.1)
    engine.import_(bridge, IN, engine.wildcard("md.tick"), "check")
    with bus.running(), bridge.running():
        wait_for(lambda: len({p["i"] for p in got}) >= n, timeout=20,
                 what=lambda: f"all imported: {bridge.stats()}")
        time.sleep(0.2)                     # a copy, if any, would arrive meanwhile
        stats = bridge.stats()
    bus.close()
    return got, stats


def _settled(read, quiet=0.3):
    """``read()`` once it has not changed for ``quiet`` seconds."""
    last, since = read(), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.02)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def _stream_messages(engine):
    import nats

    async def count():
        nc = await nats.connect(engine.url)
        try:
            return (await nc.jetstream().stream_info("md")).state.messages
        finally:
            await nc.close()
    return asyncio.run(count())


def test_a_bridge_process_killed_mid_stream_resumes_from_the_committed_sequence(engine, name):
    n = 3000
    ring = ringbus.MessageRing(1 << 20, shared=name, codec="msgspec")
    producer = bridge = None
    try:
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER, name, str(n)], env=ENV)
        bridge = _bridge_process(engine, name)
        wait_for(lambda: ring.dispatched >= n // 4, what="a quarter committed")
        # The engine stops answering: what the bridge publishes now it polled and cannot
        # commit. Killed then, it leaves all of that in the ring.
        engine.server.pause()
        try:
            # Acks the server sent before it stopped may still be on their way: the
            # committed sequence settles first, then no ack can move it.
            committed = _settled(lambda: ring.committed)
            wait_for(lambda: ring._front()[1] > committed + 200, timeout=10,
                     what="polled past the committed sequence")
            bridge.kill()
            bridge.wait(10)
            assert ring.committed == committed, "committed without the engine's ack"
        finally:
            engine.server.resume()
        assert ring.pending > 0
        bridge = _bridge_process(engine, name)
        producer.wait(30)
        assert producer.returncode == 0
        wait_for(lambda: ring.dispatched == n and ring.pending == 0, timeout=20,
                 what=lambda: f"all committed: {ring.stats()}")
        bridge.send_signal(signal.SIGTERM)
        out, err = bridge.communicate(timeout=15)
        assert bridge.returncode == 0, err
        assert "stopped: polled" in out
    finally:
        for p in (producer, bridge):
            if p is not None:
                reap(p)
        stats = ring.stats()
        ring.close()
        ring.unlink()
    # What the killed bridge had polled and not committed came again, marked.
    assert stats["redelivered"] > 0 and stats["abandoned"] == 0
    got, imported = _imported(engine, n)
    _check(got, n)
    if engine.name == "nats":
        # De-duplicated by JetStream itself: the stream holds each event once.
        assert _stream_messages(engine) == n
    else:
        # Redis 7 has no idempotent XADD: the copies are there, and dropped by id.
        assert imported["duplicates_dropped"] > 0


EXPORTER = textwrap.dedent("""
    import sys, time
    import ringbus
    from ringbus.bridge import NatsBridge, RedisBridge
    engine, url, first, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    bus = ringbus.Bus()
    T = bus.event_type("tick")
    if engine == "nats":
        bridge = NatsBridge(bus, servers=url, stream="md", ack_wait=0.5)
    else:
        bridge = RedisBridge(bus, url=url, stream="md", ack_wait=0.5)
    bridge.export(T, subject="md.tick.{sym}", key="sym")
    syms = ("ES", "NQ", "CL", "GC")
    with bus.running(), bridge.running():
        bus.publish_many(T, [{"sym": syms[i % 4], "i": i} for i in range(first, first + n)])
        while bridge.stats()["acked"] < n:
            time.sleep(0.005)
        print("acked", flush=True)
        time.sleep(60)                      # killed here
""")


def test_an_in_process_exporter_restarted_never_has_new_events_dropped_as_duplicates(engine):
    """A bus's exporter holds its events in memory: killed, it loses what the engine had not
    acknowledged (README, bridges). Its ids are ``producer:sequence`` with a producer new at
    every process start, so the next process's events, numbered from 1 again, are not taken
    for the dead one's."""
    n = 300
    for run in range(2):
        proc = subprocess.Popen([sys.executable, "-c", EXPORTER, engine.name, engine.url,
                                 str(run * n), str(n)], stdout=subprocess.PIPE, text=True,
                                env=ENV)
        try:
            assert proc.stdout.readline().strip() == "acked"
            proc.kill()
            proc.wait(10)
        finally:
            reap(proc)
    got, _ = _imported(engine, 2 * n)
    _check(got, 2 * n)
    if engine.name == "nats":
        assert _stream_messages(engine) == 2 * n


def test_export_ring_refuses_what_it_cannot_drain(name):
    pytest.importorskip("nats", reason="nats-py (pip install 'ringbus[nats]')")
    from ringbus.bridge import NatsBridge
    bridge = NatsBridge(ringbus.Bus(), servers="nats://127.0.0.1:1", stream="md")
    with pytest.raises(TypeError, match="ring must be a ringbus.MessageRing"):
        bridge.export_ring(object(), subject="md.x")
    with pytest.raises(FileNotFoundError):
        bridge.export_ring(name, subject="md.x")
    handled = ringbus.MessageRing(4096)
    handled.subscribe(lambda v: None)
    with pytest.raises(ValueError, match="consumed by handlers"):
        bridge.export_ring(handled, subject="md.x")
    raw = ringbus.MessageRing(4096)
    with pytest.raises(TypeError, match="key= a callable"):
        bridge.export_ring(raw, subject="md.{sym}", key="sym")
    out = bridge.export_ring(raw, subject="md.{sym}", key=lambda b: b[:2].decode())
    with pytest.raises(ValueError, match="exported already"):
        bridge.export_ring(raw, subject="md.y")
    assert out.stats()["sequence"] == -1
    bridge.close()


def test_a_second_bridge_process_on_a_consumed_ring_exits_saying_why(engine, name):
    ring = ringbus.MessageRing(1 << 16, shared=name, codec="msgspec")
    first = None
    try:
        first = _bridge_process(engine, name)
        ring.publish({"sym": "ES", "i": 0})
        wait_for(lambda: ring.dispatched == 1, what="the first bridge consuming")
        where = ["--servers", engine.url] if engine.name == "nats" else ["--url", engine.url]
        second = subprocess.run(
            [sys.executable, "-m", "ringbus", "bridge", engine.name, *where, "--stream", "md",
             "--ring", name, "--subject", "md.tick.{sym}"],
            capture_output=True, text=True, env=ENV, timeout=60)
        assert second.returncode == 1
        assert f"already has a consumer: process {first.pid}" in second.stderr
        missing = subprocess.run(
            [sys.executable, "-m", "ringbus", "bridge", engine.name, *where,
             "--ring", name + "-none"], capture_output=True, text=True, env=ENV, timeout=60)
        assert missing.returncode == 2 and "ringbus bridge:" in missing.stderr
    finally:
        if first is not None:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=15)
            reap(first)
        ring.close()
        ring.unlink()


@pytest.mark.parametrize("kind", ["nats", "nats-py", "redis"])
def test_export_ring_commits_what_each_publish_path_had_acknowledged(kind):
    """In one process too (a heap ring): each engine's ack path commits the ring, and a
    codec's objects arrive as objects; both NATS publish paths."""
    e = start(kind)
    try:
        ring = ringbus.MessageRing(1 << 16, codec="pickle")
        n = 500
        ring.publish_many([{"sym": SYMS[i % 4], "i": i} for i in range(n)])
        bridge = e.bridge(ringbus.Bus(), ack_wait=0.5, batch=64)
        out = bridge.export_ring(ring, subject="md.tick.{sym}", key=lambda p: p["sym"])
        with bridge.running():
            wait_for(lambda: ring.pending == 0, what=lambda: f"committed: {out.stats()}")
        s = out.stats()
        assert s["polled"] == s["committed"] == n and s["pending"] == 0
        assert ring.committed == s["sequence"] and bridge.stats()["acked"] == n
        bridge.close()
        ring.close()
        got, _ = _imported(e, n)
        _check(got, n)
    finally:
        stop(e)
