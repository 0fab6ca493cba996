"""Topic patterns in the bridges (ringbus.bridge.patterns): ``export("md.*", subject=
"x.{type}.{sym}")`` carries every matching event type, those registered later too;
``import_("md.*", subject="x.{type}.{sym}")`` gives each message the event type its subject
names; wildcard imports follow NATS token rules on both engines (a Redis stream-key
pattern too). One server per engine for the module (each test its own subjects)."""
from __future__ import annotations

import time
from typing import Any, List, Tuple

import pytest

import ringbus
from bridge_cases import start, stop, wait_for
from ringbus.bridge.patterns import PatternExport, TypeFromSubject, overlap, wildcard
from ringbus.patterns import check_pattern

# All of it, the helpers' tests too: pure Python, nothing for the sanitizers to check.
pytestmark = pytest.mark.servers


@pytest.fixture(scope="module", params=["nats", "redis"])
def engine(request):
    e = start(request.param)
    yield e
    stop(e)


def _collect(bus: Any, topic: str) -> List[Tuple[str, Any]]:
    got: List[Tuple[str, Any]] = []
    bus.subscribe(topic, lambda t, p: got.append((bus.event_name(t), p)), with_type=True)
    return got


def test_a_pattern_exports_every_matching_type_registered_now_and_later(engine):
    out_bus, in_bus = ringbus.Bus(), ringbus.Bus()
    tick, quote = out_bus.event_type("md.tick"), out_bus.event_type("md.quote")
    other = out_bus.event_type("ref.x")
    exporter = engine.bridge(out_bus, stream="p1")
    spec = exporter.export("md.*", subject="p1.{type}.{sym}")
    # The way back: each message's event type is the name its subject carries, registered
    # on the importing bus at its first message (where "md.*" subscribers wait for it).
    importer = engine.bridge(in_bus, stream="p1")
    engine.import_(importer, "md.*", "p1.{type}.{sym}", "all")
    got = _collect(in_bus, "md.*")
    with out_bus.running(), exporter.running(), in_bus.running(), importer.running():
        for i in range(30):
            out_bus.publish(tick, {"sym": "ES", "i": i})
            out_bus.publish(quote, {"sym": "NQ", "i": i})
            out_bus.publish(other, {"sym": "XX", "i": i})        # not matched: stays home
        trade = out_bus.event_type("md.trade")                   # registered while running
        for i in range(30):
            out_bus.publish(trade, {"sym": "CL", "i": i})
        wait_for(lambda: len(got) == 90, what=lambda: f"90 events, got {len(got)}")
    assert sorted(spec.specs) == sorted([tick, quote, trade])
    for name, sym in (("md.tick", "ES"), ("md.quote", "NQ"), ("md.trade", "CL")):
        # Each type in order, with its own payloads.
        assert [p["i"] for n, p in got if n == name] == list(range(30))
        assert {p["sym"] for n, p in got if n == name} == {sym}
    assert "ref.x" not in {n for n, _ in got}
    assert exporter.stats()["exported"] == exporter.stats()["acked"] == 90
    assert importer.stats()["malformed"] == 0 and importer.stats()["acked_back"] == 90


def test_an_exact_export_wins_over_a_pattern_and_type_fills_subjects(engine):
    out_bus, in_bus = ringbus.Bus(), ringbus.Bus()
    tick, quote = out_bus.event_type("md.tick"), out_bus.event_type("md.quote")
    b = engine.bridge(out_bus, stream="p2")
    b.export("md.>", subject="p2.all.{type}")
    b.export(tick, subject="p2.{type}.{sym}")                  # -> p2.md.tick.<sym>
    depth = out_bus.event_type("md.book.depth")                # ">": more tokens too
    with pytest.raises(ValueError, match="overlap"):
        b.export("md.*", subject="p2.other.{type}")
    all_in, tick_in = in_bus.event_type("all"), in_bus.event_type("tick")
    got_all: List[Any] = []
    got_tick: List[Any] = []
    in_bus.subscribe(all_in, got_all.append)
    in_bus.subscribe(tick_in, got_tick.append)
    importer = engine.bridge(in_bus, stream="p2")
    engine.import_(importer, all_in, "p2.all.>", "all")
    engine.import_(importer, tick_in, "p2.md.tick.*", "tick")
    with out_bus.running(), b.running(), in_bus.running(), importer.running():
        out_bus.publish(tick, {"sym": "ES", "v": 1})
        out_bus.publish(quote, {"sym": "ES", "v": 2})
        out_bus.publish(depth, {"sym": "ES", "v": 3})
        wait_for(lambda: len(got_all) == 2 and len(got_tick) == 1)
    # The tick went by its own export only, once.
    assert got_tick == [{"sym": "ES", "v": 1}]
    assert sorted(p["v"] for p in got_all) == [2, 3]
    assert b.stats()["acked"] == 3


def test_wildcard_imports_follow_token_rules_and_find_new_streams(engine):
    bus = ringbus.Bus()
    T = bus.event_type("o")
    one, more = bus.event_type("one"), bus.event_type("more")
    b = engine.bridge(bus, stream="p3")
    b.export(T, subject="p3.orders.{path}", key=lambda p: p["path"])
    got_one: List[Any] = []
    got_more: List[Any] = []
    bus.subscribe(one, lambda p: got_one.append(p["n"]))
    bus.subscribe(more, lambda p: got_more.append(p["n"]))
    engine.import_(b, one, "p3.orders.*", "one")
    engine.import_(b, more, "p3.orders.>", "more")
    with bus.running(), b.running():
        bus.publish(T, {"path": "a", "n": 1})           # p3.orders.a: both
        wait_for(lambda: got_one and got_more)
        # A stream / subject first seen after the importers started (Redis: found by the
        # SCAN they repeat).
        bus.publish(T, {"path": "b", "n": 2})
        wait_for(lambda: len(got_one) == 2 and len(got_more) == 2)
    assert got_one == [1, 2] and got_more == [1, 2]
    if engine.name == "redis":
        # A key of two tokens under p3.orders.: ">" reads it, "*" does not (a glob's '*'
        # would have: it spans dots).
        import redis
        r = redis.Redis.from_url(engine.url)
        try:
            r.xadd("p3.orders.c.d", {"d": b"\x81\xa1n\x03", "c": b"msgpack"})
        finally:
            r.close()
        b2 = engine.bridge(bus, stream="p3")
        engine.import_(b2, one, "p3.orders.*", "one")
        engine.import_(b2, more, "p3.orders.>", "more")
        with bus.running(), b2.running():
            wait_for(lambda: len(got_more) == 3)
        assert got_more == [1, 2, 3] and got_one == [1, 2]


def test_a_pattern_import_never_reads_the_bridges_own_dead_letters(engine):
    if engine.name != "redis":
        pytest.skip("NATS keeps dead letters in their own stream, outside any import")
    bus = ringbus.Bus(on_error=lambda *a: None)
    IN = bus.event_type("in")
    b = engine.bridge(bus, stream="p4")               # dead letters: the key p4.dead
    engine.import_(b, IN, "p4.>", "g")
    import redis
    r = redis.Redis.from_url(engine.url)
    try:
        r.xadd("p4.orders", {"d": b"\xc1 not msgpack", "c": b"msgpack"})
        with bus.running(), b.running():
            wait_for(lambda: b.stats()["dead_lettered"] == 1)
            # The importer's SCAN (every 0.5 s) has seen p4.dead by now: two more rounds.
            time.sleep(1.2)
            r.xadd("p4.orders", {"d": b"\x01", "c": b"msgpack"})
            wait_for(lambda: b.stats()["acked_back"] == 1)
        assert b.stats()["imported"] == 2 and r.xlen("p4.dead") == 1
    finally:
        r.close()


def test_bad_patterns_and_type_templates_are_refused_at_the_call():
    pytest.importorskip("msgspec")
    from ringbus.bridge import RedisBridge
    pytest.importorskip("redis")
    bus = ringbus.Bus()
    T = bus.event_type("md.tick")
    b = RedisBridge(bus, url="redis://127.0.0.1:1/0", stream="x")
    with pytest.raises(ValueError, match="topic patterns"):
        b.export("md.*x", subject="x.{type}")      # neither a name nor a pattern
    with pytest.raises(ValueError, match="placeholders"):
        b.export("md.*", subject="x.{type}.{a}.{b}")
    with pytest.raises(ValueError, match="topic pattern"):
        b.import_(T, subject="x.{type}", group="g")
    with pytest.raises(ValueError, match=r"\{type\}"):
        b.import_("md.*", subject="x.y", group="g")
    with pytest.raises(ValueError, match="whole tokens"):
        b.import_("md.*", subject="x.{type}_v1", group="g")
    with pytest.raises(ValueError, match="'>'"):
        b.import_("md.*", subject="x.{type}.>", group="g")
    with pytest.raises(TypeError, match="key"):
        b.export("md.*", subject="x.{type}.{sym}", key=3)  # type: ignore[arg-type]
    assert not bus.subscriptions(T)            # nothing half-made


def test_pattern_helpers():
    assert overlap(check_pattern("md.*"), check_pattern("md.>"))
    assert overlap(check_pattern("md.*.x"), check_pattern("md.y.*"))
    assert not overlap(check_pattern("md.*"), check_pattern("md.*.*"))
    assert not overlap(check_pattern("md.*"), check_pattern("ref.>"))
    assert wildcard("a.md.*_v1.b") == "a.md.*.b" and wildcard("a.md.>.b") == "a.md.>"
    # The stream subject of a pattern export covers every subject it may publish to.
    assert PatternExport("md.*", "x.{type}.{sym}", None).pattern("*") == "x.md.*.*"
    assert PatternExport("md.>", "x.{type}.{sym}", None).pattern("*") == "x.md.>"
    bus = ringbus.Bus()
    of = TypeFromSubject(bus, "md.>", "x.{type}.{sym}")
    assert of.subject() == "x.md.>"
    assert bus.event_name(of("x.md.book.depth.ES")) == "md.book.depth"
    assert of("x.md.ES") is None                # no name left between head and tail
    assert of("y.md.tick.ES") is None           # another head
    assert TypeFromSubject(bus, ">", "{type}")("ringbus.batch") is None   # never the bus's own
