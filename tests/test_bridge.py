"""The bridges (issue 12) against real servers: events go out and come back in order per key,
nothing lost; an import is acked only after the local handlers ran, a failure is delivered
again later, past max_deliver it is dead-lettered, like a message that does not decode;
duplicates are dropped by id; a full ring stops the fetching; secrets never show. Each test
starts its own nats-server / redis-server (tests/brokers.py): skipped when not installed."""
from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

import ringbus
from bridge_cases import start, stop, wait_for

pytestmark = pytest.mark.servers


@pytest.fixture(params=["nats", "redis"])
def engine(request):
    e = start(request.param)
    yield e
    stop(e)


def _ticks(n, syms=("ES", "NQ", "CL")):
    return [{"sym": syms[i % len(syms)], "i": i, "px": 6000.0 + i} for i in range(n)]


def _assert_in_order_per_key(got, sent):
    assert sorted(p["i"] for p in got) == sorted(p["i"] for p in sent)
    for sym in {p["sym"] for p in sent}:
        seq = [p["i"] for p in got if p["sym"] == sym]
        assert seq == sorted(seq), f"{sym} out of order"


def test_events_go_out_and_come_back_in_order_per_key(engine):
    out_bus, in_bus = ringbus.Bus(), ringbus.Bus()
    TICK = out_bus.event_type("md.tick")
    IN = in_bus.event_type("md.tick.in")
    exporter = engine.bridge(out_bus)
    exporter.export(TICK, subject="md.tick.{sym}", key=lambda p: p["sym"])
    got = []
    in_bus.subscribe(IN, got.append)
    importer = engine.bridge(in_bus)
    engine.import_(importer, IN, engine.wildcard("md.tick"), "risk")
    sent = _ticks(3000)
    with out_bus.running(), exporter.running():
        out_bus.publish_many(TICK, sent)
    s = exporter.stats()
    assert s["exported"] == s["acked"] == 3000 and s["in_flight"] == 0 and s["outbox"] == 0
    with in_bus.running(), importer.running():
        wait_for(lambda: importer.stats()["acked_back"] == 3000, what="3000 acked back")
    _assert_in_order_per_key(got, sent)
    s = importer.stats()
    assert s["imported"] == 3000 and s["duplicates_dropped"] == 0 and s["failed"] == 0
    # Acked: a new run of the same durable consumer / group gets nothing again.
    got.clear()
    again = engine.bridge(in_bus)
    engine.import_(again, IN, engine.wildcard("md.tick"), "risk")
    with in_bus.running(), again.running():
        time.sleep(0.3)
    assert got == [] and again.stats()["imported"] == 0


def test_nats_py_publish_path_round_trip():
    """publish_link=False (nats-py publishes and fetches): the same round trip."""
    e = start("nats-py")
    try:
        out_bus, in_bus = ringbus.Bus(), ringbus.Bus()
        TICK, IN = out_bus.event_type("md.tick"), in_bus.event_type("md.tick.in")
        exporter = e.bridge(out_bus)
        assert exporter.publish_link is False
        exporter.export(TICK, subject="md.tick.{sym}")
        got = []
        in_bus.subscribe(IN, got.append)
        importer = e.bridge(in_bus)
        e.import_(importer, IN, "md.tick.>", "risk")
        sent = _ticks(500)
        with out_bus.running(), exporter.running(), in_bus.running(), importer.running():
            out_bus.publish_many(TICK, sent)
            wait_for(lambda: len(got) == 500)
        _assert_in_order_per_key(got, sent)
    finally:
        stop(e)


def test_key_field_name_bytes_and_json(engine):
    out_bus, in_bus = ringbus.Bus(), ringbus.Bus()
    A, B = out_bus.event_type("a"), out_bus.event_type("b")
    exporter = engine.bridge(out_bus, codec="json")
    exporter.export(A, subject="a.{sym}")              # the placeholder names the field
    exporter.export(B, subject="b.raw")                 # bytes pass through
    got_a, got_b = [], []
    IA, IB = in_bus.event_type("ia"), in_bus.event_type("ib")
    in_bus.subscribe(IA, got_a.append)
    in_bus.subscribe(IB, got_b.append)
    importer = engine.bridge(in_bus)                    # msgpack: the header/field says json
    engine.import_(importer, IA, engine.wildcard("a"), "ga")
    engine.import_(importer, IB, "b.raw", "gb")
    with out_bus.running(), exporter.running(), in_bus.running(), importer.running():
        out_bus.publish(A, {"sym": "ES", "v": [1, 2]})
        out_bus.publish(B, b"\x00\xffraw")
        wait_for(lambda: got_a and got_b)
    assert got_a == [{"sym": "ES", "v": [1, 2]}] and got_b == [b"\x00\xffraw"]


def test_emit_is_exported_too_and_the_run_coroutine_works(engine):
    bus = ringbus.Bus()
    T = bus.event_type("t")
    IN = bus.event_type("t.in")
    bridge = engine.bridge(bus)
    bridge.export(T, subject="t.one")
    engine.import_(bridge, IN, "t.one", "loop")
    got = []
    bus.subscribe(IN, got.append)

    async def main():
        bus.attach()                                    # the bus's consumer on this loop
        task = asyncio.ensure_future(bridge.run())
        while not bridge.stats()["connected"]:
            await asyncio.sleep(0.01)
        bus.emit(T, "inline")
        while not got:
            await asyncio.sleep(0.01)
        bridge.stop()
        await task
        bus.detach()
    asyncio.run(main())
    assert got == ["inline"]


@pytest.mark.parametrize("failures", [2])
def test_acked_only_after_the_handlers_ran_failures_come_back_later(engine, failures):
    bus = ringbus.Bus()
    T, IN = bus.event_type("o"), bus.event_type("o.in")
    bridge = engine.bridge(bus, redelivery_delay=0.2, max_deliver=5)
    bridge.export(T, subject="orders.x")
    engine.import_(bridge, IN, "orders.x", "risk")
    seen, handled = [], []

    def handler(p):
        seen.append(p)
        if p == "flaky" and seen.count(p) <= failures:
            raise RuntimeError("not yet")
        # Never acked before its handlers ran (an ack at fetch would count all three here).
        assert bridge.stats()["acked_back"] <= len(handled)
        handled.append(p)
    bus.subscribe(IN, handler)
    with bus.running(), bridge.running():
        bus.publish(T, "ok1")
        bus.publish(T, "flaky")
        bus.publish(T, "ok2")
        wait_for(lambda: "flaky" in handled and len(handled) == 3, what="the flaky one")
        wait_for(lambda: bridge.stats()["acked_back"] == 3)
    assert seen.count("flaky") == failures + 1
    s = bridge.stats()
    assert s["failed"] == failures and s["redelivered"] >= failures and s["dead_lettered"] == 0
    assert bus.stats()["handler_errors"] == failures     # the bus's policy saw each


def test_max_deliver_then_dead_letter(engine):
    bus = ringbus.Bus(on_error=lambda *a: None)
    T, IN = bus.event_type("o"), bus.event_type("o.in")
    bridge = engine.bridge(bus, redelivery_delay=0.05, max_deliver=3)
    bridge.export(T, subject="orders.x")
    engine.import_(bridge, IN, "orders.x", "risk")
    calls = []

    def handler(p):
        calls.append(p)
        if p == "poison":
            raise ValueError("never")
    bus.subscribe(IN, handler)
    with bus.running(), bridge.running():
        bus.publish(T, "poison")
        bus.publish(T, "fine")
        wait_for(lambda: bridge.stats()["dead_lettered"] == 1, what="dead letter")
    assert calls.count("poison") == 3 and calls.count("fine") == 1
    assert _dead_letters(engine, bridge) == 1


def _dead_letters(engine, bridge):
    async def count():
        if engine.name == "nats":
            import nats
            nc = await nats.connect(engine.url)
            try:
                info = await nc.jetstream().stream_info(f"{bridge.stream}_dead")
                return info.state.messages
            finally:
                await nc.close()
        import redis.asyncio as aredis
        r = aredis.from_url(engine.url)
        try:
            return await r.xlen(bridge.dead_letter)
        finally:
            await r.aclose()
    return asyncio.run(count())


def _raw_publish(engine, subject, data, msg_id=None):
    async def go():
        if engine.name == "nats":
            import nats
            nc = await nats.connect(engine.url)
            try:
                headers = {"Nats-Msg-Id": msg_id} if msg_id else None
                await nc.jetstream().publish(subject, data, headers=headers)
            finally:
                await nc.close()
            return
        import redis.asyncio as aredis
        r = aredis.from_url(engine.url)
        try:
            fields = {b"d": data}
            if msg_id:
                fields[b"id"] = msg_id
            await r.xadd(subject, fields)
        finally:
            await r.aclose()
    asyncio.run(go())


def test_a_malformed_message_is_dead_lettered_and_the_bridge_goes_on(engine, caplog):
    bus = ringbus.Bus(on_error=lambda *a: errors.append(a))
    errors = []
    T, IN = bus.event_type("o"), bus.event_type("o.in")
    bridge = engine.bridge(bus)
    bridge.export(T, subject="orders.x")               # makes the stream
    engine.import_(bridge, IN, "orders.x", "risk")
    got = []
    bus.subscribe(IN, got.append)
    with bus.running(), bridge.running():
        _raw_publish(engine, "orders.x", b"\xc1 not msgpack")
        bus.publish(T, {"after": 1})
        wait_for(lambda: got and bridge.stats()["dead_lettered"] == 1)
    assert got == [{"after": 1}]
    s = bridge.stats()
    assert s["malformed"] == 1 and s["dead_lettered"] == 1
    assert len(errors) == 1 and "decode" in str(errors[0][3])     # the bus's error policy
    assert _dead_letters(engine, bridge) == 1


def test_duplicates_are_dropped_by_id(engine):
    bus = ringbus.Bus()
    IN = bus.event_type("o.in")
    # JetStream itself drops a repeated Nats-Msg-Id within the stream's duplicate window:
    # a short window lets the copy in, as a copy published after the window would be.
    kw = {"duplicate_window": 0.1} if engine.name == "nats" else {}
    bridge = engine.bridge(bus, **kw)
    T = bus.event_type("o")
    bridge.export(T, subject="orders.x")
    engine.import_(bridge, IN, "orders.x", "risk")
    got = []
    bus.subscribe(IN, got.append)
    import msgspec
    data = msgspec.msgpack.encode("once")
    with bus.running(), bridge.running():
        _raw_publish(engine, "orders.x", data, "p:1")
        time.sleep(0.25)
        _raw_publish(engine, "orders.x", data, "p:1")
        _raw_publish(engine, "orders.x", msgspec.msgpack.encode("next"), "p:2")
        wait_for(lambda: bridge.stats()["acked_back"] == 2
                 and bridge.stats()["duplicates_dropped"] == 1)
    assert got == ["once", "next"]


def test_another_producers_entry_of_one_field_is_its_data():
    e = start("redis")
    try:
        bus = ringbus.Bus()
        IN = bus.event_type("o.in")
        got = []
        bus.subscribe(IN, got.append)
        bridge = e.bridge(bus)
        e.import_(bridge, IN, "orders.raw", "risk")
        import msgspec
        import redis
        r = redis.Redis(port=e.server.port)
        with bus.running(), bridge.running():
            r.xadd("orders.raw", {"payload": msgspec.msgpack.encode({"qty": 3})})
            wait_for(lambda: got)
        r.close()
        assert got == [{"qty": 3}]
    finally:
        stop(e)


def test_a_full_ring_stops_the_fetching(engine):
    bus = ringbus.Bus(capacity=2)
    T, IN = bus.event_type("o"), bus.event_type("o.in")
    exporter_bus = ringbus.Bus()
    ET = exporter_bus.event_type("o")
    exporter = engine.bridge(exporter_bus)
    exporter.export(ET, subject="orders.x")
    bridge = engine.bridge(bus, batch=10)
    engine.import_(bridge, IN, "orders.x", "risk")
    gate = threading.Event()
    got = []

    def slow(p):
        gate.wait(10)
        got.append(p)
    bus.subscribe(IN, slow)
    with exporter_bus.running(), exporter.running():
        exporter_bus.publish_many(ET, range(200))
    with bus.running(), bridge.running():
        wait_for(lambda: bridge.stats()["imported"] >= 10)
        time.sleep(0.3)
        s = bridge.stats()
        # One batch in the bus, none acked, no more fetched while its handlers do not end.
        assert s["imported"] == 10 and s["acked_back"] == 0
        gate.set()
        wait_for(lambda: bridge.stats()["acked_back"] == 200)
    assert got == list(range(200))


def test_a_restarted_exporter_is_never_taken_for_a_duplicate(engine):
    out_bus, in_bus = ringbus.Bus(), ringbus.Bus()
    T, IN = out_bus.event_type("o"), in_bus.event_type("o.in")
    got = []
    in_bus.subscribe(IN, got.append)
    for run in range(2):
        exporter = engine.bridge(out_bus) if run == 0 else engine.bridge(ringbus.Bus())
        bus = out_bus if run == 0 else exporter._bus
        t = bus.event_type("o")
        exporter.export(t, subject="orders.x")
        with bus.running(), exporter.running():
            bus.publish_many(t, [f"run{run}-{i}" for i in range(5)])
    importer = engine.bridge(in_bus)
    engine.import_(importer, IN, "orders.x", "risk")
    with in_bus.running(), importer.running():
        wait_for(lambda: len(got) == 10)
    assert importer.stats()["duplicates_dropped"] == 0


def test_user_password_auth_and_no_secret_in_repr_or_logs(tmp_path, caplog):
    import brokers
    pytest.importorskip("msgspec")
    pytest.importorskip("nats")
    pytest.importorskip("redis")
    from ringbus.bridge import NatsBridge, RedisBridge
    secret = "s3cr3t-Pa55"
    nats_srv = brokers.nats_server(user="ringbus",
                                   password=secret)
    redis_srv = brokers.redis_server(password=secret)
    try:
        bus = ringbus.Bus()
        T, IN = bus.event_type("a"), bus.event_type("a.in")
        got = []
        bus.subscribe(IN, got.append)
        caplog.set_level(logging.DEBUG)
        bridges = [
            NatsBridge(bus, servers=f"nats://127.0.0.1:{nats_srv.port}", stream="auth",
                       user="ringbus", password=secret),
            RedisBridge(bus, url=f"redis://:{secret}@127.0.0.1:{redis_srv.port}/0",
                        stream="auth"),
        ]
        bridges[0].export(T, subject="auth.n")
        bridges[0].import_(IN, subject="auth.n", durable="a")
        t2 = bus.event_type("b")
        bridges[1].export(t2, subject="auth.r")
        bridges[1].import_(IN, subject="auth.r", group="a")
        for b in bridges:
            assert secret not in repr(b) and secret not in str(b)
        with bus.running(), bridges[0].running(), bridges[1].running():
            bus.publish(T, "via nats")
            bus.publish(t2, "via redis")
            wait_for(lambda: len(got) == 2)
        assert sorted(got) == ["via nats", "via redis"]
        # Wrong credentials: a clear failure, the secret not in it.
        wrong = [NatsBridge(bus, servers=f"nats://127.0.0.1:{nats_srv.port}", stream="auth",
                            user="ringbus", password="wrong-" + secret),
                 RedisBridge(bus, url=f"redis://:wrong-{secret}@127.0.0.1:{redis_srv.port}/0",
                             stream="auth")]
        for b in wrong:
            b.export(bus.event_type("c"), subject="auth.n")
            with pytest.raises(Exception) as info:
                with b.running(timeout=2):
                    pass
            assert secret not in str(info.value) and secret not in repr(b)
        assert secret not in caplog.text
    finally:
        nats_srv.stop()
        redis_srv.stop()


def test_bad_arguments_are_refused_at_the_call(engine):
    from ringbus.bridge import NatsBridge, RedisBridge
    bus = ringbus.Bus()
    T = bus.event_type("t")
    b = engine.bridge(bus)
    with pytest.raises(TypeError, match="bus"):
        engine.bridge(object())
    with pytest.raises(ValueError, match="codec"):
        engine.bridge(bus, codec="pickle")
    with pytest.raises(ValueError, match="batch"):
        engine.bridge(bus, batch=0)
    with pytest.raises(TypeError, match="key"):
        b.export(T, subject="t.{k}", key=3)
    with pytest.raises(ValueError, match="placeholders"):
        b.export(T, subject="t.{a}.{b}")
    with pytest.raises(TypeError, match="subject"):
        b.export(T, subject="")
    with pytest.raises(ValueError, match="event_type"):
        b.export(999_999, subject="t.x")
    b.export(T, subject="t.x")
    with pytest.raises(ValueError, match="already"):
        b.export(T, subject="t.y")
    with pytest.raises(ValueError, match="durable/group"):
        engine.import_(b, T, "t.x", "bad name")
    with b.running():
        with pytest.raises(RuntimeError, match="before running"):
            b.export(bus.event_type("late"), subject="t.late")
        with pytest.raises(RuntimeError, match="before running"):
            engine.import_(b, T, "t.x", "late")
    if engine.name == "nats":
        with pytest.raises(ValueError, match="stream"):
            NatsBridge(bus, servers=engine.url, stream="md.bad")
        with pytest.raises(ValueError, match="servers"):
            NatsBridge(bus, servers="localhost", stream="md")
    else:
        with pytest.raises(ValueError, match="url"):
            RedisBridge(bus, url="http://x", stream="md")
    with pytest.raises(RuntimeError, match="nothing to bridge"):
        asyncio.run(engine.bridge(bus).run())


def test_an_event_without_its_key_goes_to_the_error_policy(engine):
    errors = []
    bus = ringbus.Bus(on_error=lambda *a: errors.append(a))
    T = bus.event_type("t")
    b = engine.bridge(bus)
    b.export(T, subject="t.{sym}", key=lambda p: p["sym"])
    with bus.running(), b.running():
        bus.publish(T, {"px": 1})                   # no sym
        bus.publish(T, {"sym": "a.b"})              # not one token
        bus.publish(T, {"sym": "ok"})
        wait_for(lambda: b.stats()["acked"] == 1)
    assert len(errors) == 2 and b.stats()["export_errors"] == 2
