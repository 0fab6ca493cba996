"""The exporters' compiled wire paths (ringbus._wire) against real servers: what they frame
is what the servers store (ids, codec, data, one entry per event, in order), in large
batches too, and the Redis replies they count are right under RESP2 and RESP3, and when
Redis refuses an XADD (the key holds another type: counted, retried, reported)."""
from __future__ import annotations

import asyncio
import logging

import pytest

import ringbus
from bridge_cases import start, stop, wait_for

pytestmark = pytest.mark.servers


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_export_batches_are_stored_whole_under_resp2_and_resp3(protocol):
    engine = start("redis")
    try:
        import redis
        bus = ringbus.Bus()
        T = bus.event_type("w.out")
        bridge = engine.bridge(bus, protocol=protocol, maxlen=100_000)
        bridge.export(T, subject="w.{sym}", key="sym")
        n = 3000                                    # several 4-batch writes of 2,000
        with bus.running(), bridge.running():
            bus.publish_many(T, [{"sym": "AB"[i % 2], "i": i} for i in range(n)])
            wait_for(lambda: bridge.stats()["acked"] == n, what=lambda: f"{bridge.stats()}")
        assert bridge.stats()["retried"] == 0 and bridge.stats()["export_errors"] == 0
        r = redis.Redis(port=engine.server.port)
        from ringbus.bridge.codec import Codec
        codec = Codec("msgpack")
        ids = []
        for key in (b"w.A", b"w.B"):
            entries = r.xrange(key)
            got = [codec.decode(f[b"c"].decode(), f[b"d"])["i"] for _, f in entries]
            assert got == sorted(got) and len(got) == n // 2
            ids += [f[b"id"].decode() for _, f in entries]
        producer = bridge._producer.name
        assert sorted(int(i.rsplit(":", 1)[1]) for i in ids) == list(range(1, n + 1))
        assert {i.rsplit(":", 1)[0] for i in ids} == {producer}
        r.close()
    finally:
        stop(engine)


def test_a_refused_xadd_is_retried_and_reported_then_goes_through(caplog):
    caplog.set_level(logging.WARNING, logger="ringbus.bridge")
    engine = start("redis")
    try:
        import redis
        r = redis.Redis(port=engine.server.port)
        r.set("w.bad", "a string, not a stream")
        bus = ringbus.Bus()
        T = bus.event_type("w.out")
        bridge = engine.bridge(bus, ack_wait=1.0)
        bridge.export(T, subject="w.bad")
        with bus.running(), bridge.running():
            bus.publish_many(T, [b"x%d" % i for i in range(10)])
            wait_for(lambda: bridge.stats()["stalled"], what=lambda: f"{bridge.stats()}")
            assert bridge.stats()["acked"] == 0 and bridge.stats()["retried"] >= 10
            wait_for(lambda: "WRONGTYPE" in caplog.text)
            r.delete("w.bad")
            wait_for(lambda: bridge.stats()["acked"] == 10, what=lambda: f"{bridge.stats()}")
        assert not bridge.stats()["stalled"]
        # Whole batches are sent again: Redis had refused them all, so each is there once.
        assert [f[b"d"] for _, f in r.xrange("w.bad")] == [b"x%d" % i for i in range(10)]
        r.close()
    finally:
        stop(engine)


def test_nats_export_batches_are_stored_whole_with_their_ids():
    engine = start("nats")
    try:
        bus = ringbus.Bus()
        T = bus.event_type("w.out")
        bridge = engine.bridge(bus, stream="W", batch=700, max_in_flight=1500)
        bridge.export(T, subject="w.{sym}", key="sym")
        n = 5000
        with bus.running(), bridge.running():
            bus.publish_many(T, [{"sym": "AB"[i % 2], "i": i} for i in range(n)])
            wait_for(lambda: bridge.stats()["acked"] == n, what=lambda: f"{bridge.stats()}")
        assert bridge.stats()["in_flight"] == 0 and bridge.stats()["retried"] == 0

        async def read():
            import nats
            from ringbus.bridge.codec import Codec
            nc = await nats.connect(engine.url)
            js = nc.jetstream()
            sub = await js.pull_subscribe("w.>", durable="check", stream="W")
            got = []
            while len(got) < n:
                for m in await sub.fetch(1000, timeout=5):
                    got.append((m.subject, m.headers["Nats-Msg-Id"],
                                Codec("msgpack").decode(m.headers["Ringbus-Codec"], m.data)))
                    await m.ack()
            await nc.close()
            return got
        got = asyncio.run(read())
        assert [p["i"] for _, _, p in got] == list(range(n))
        assert all(s == f"w.{p['sym']}" for s, _, p in got)
        assert [mid.rsplit(":", 1)[1] for _, mid, _ in got] == [str(i) for i in range(1, n + 1)]
    finally:
        stop(engine)


@pytest.mark.parametrize("publish_link", [True, False])
def test_a_message_jetstream_does_not_store_is_counted_reported_and_sent_again(
        caplog, publish_link):
    # The stream exists with room for 3 messages and refuses new ones past that: the
    # PubAcks of the others carry an error. Counted, logged, kept unacknowledged and
    # published again after ack_wait; once there is room, they are stored.
    caplog.set_level(logging.WARNING, logger="ringbus.bridge")
    engine = start("nats")
    try:
        import nats
        from nats.js.api import DiscardPolicy, StreamConfig

        async def make(purge=False):
            nc = await nats.connect(engine.url)
            js = nc.jetstream()
            if purge:
                await js.purge_stream("WF")
            else:
                await js.add_stream(StreamConfig(name="WF", subjects=["wf.>"], max_msgs=3,
                                                 discard=DiscardPolicy.NEW))
            await nc.close()
        asyncio.run(make())
        bus = ringbus.Bus()
        T = bus.event_type("wf.out")
        bridge = engine.bridge(bus, stream="WF", ack_wait=0.5)
        bridge.publish_link = publish_link
        bridge.export(T, subject="wf.x")
        with bus.running(), bridge.running():
            bus.publish_many(T, [b"m%d" % i for i in range(5)])
            wait_for(lambda: bridge.stats()["export_errors"] >= 2,
                     what=lambda: f"{bridge.stats()}")
            assert bridge.stats()["acked"] == 3
            wait_for(lambda: "JetStream refused a message" in caplog.text)
            asyncio.run(make(purge=True))
            wait_for(lambda: bridge.stats()["acked"] == 5, what=lambda: f"{bridge.stats()}")
        assert bridge.stats()["in_flight"] == 0
    finally:
        stop(engine)
