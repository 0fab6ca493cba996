"""``bridges_nats_out``, ``bridges_nats_in``, ``bridges_redis_out``, ``bridges_redis_in``,
``bridges_latency``: the bridges (issue 12) against the engines' own Python clients, same
servers, same run. The servers are started for the run (``ringbus.bridge.testing``: Debian's
``nats-server -js`` and ``redis-server`` on loopback, temporary stores) and stopped after;
without them, or without nats-py / redis-py, the rows say so.

- ``bridges_nats_out``: 100-byte payloads acknowledged by JetStream: ringbus (``publish_many``
  into the bus, its consumer thread, the NatsBridge exporting; timed until every PubAck is
  back), nats-py ``await js.publish`` one at a time, ``js.publish_async`` (1,000 pending,
  then ``publish_async_completed``), FastStream's NATS publisher awaited, and core
  ``nc.publish`` into the stream's subject + flush (stored, no acks: the ceiling).
- ``bridges_nats_in``: messages already in the stream, handled and acked: ringbus (the
  NatsBridge importing into a bus whose consumer thread runs a handler), against a nats-py
  pull consumer ``fetch(500)`` + ``ack()`` each.
- ``bridges_redis_out``: XADD of 100-byte payloads: ringbus (RedisBridge) vs redis-py
  pipelines of 500 (``transaction=False``), each awaited.
- ``bridges_redis_in``: entries read through a consumer group and acked: ringbus
  (RedisBridge) vs ``XREADGROUP COUNT 500`` + one ``XACK`` of the batch.
- ``bridges_latency``: bus -> bridge -> engine -> bridge -> another bus's handler, one event
  every millisecond; percentiles in µs.

Every run checks its count (acks, handled messages), or the row says FAILED.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from typing import Any, Callable, List, Optional

from ringbus.benchmarks.measure import Case, CheckedRun, Contender, Failed
from ringbus.benchmarks.topology import Settings

__all__ = ["NAMES", "NATS_OUT", "NATS_IN", "REDIS_OUT", "REDIS_IN", "LATENCY", "build",
           "RB_NATS_OUT", "JS_AWAIT", "JS_ASYNC", "FASTSTREAM", "CORE", "RB_NATS_IN",
           "PULL_ACK", "RB_REDIS_OUT", "XADD_PIPE", "RB_REDIS_IN", "XREADGROUP",
           "LAT_NATS", "LAT_REDIS", "GROUP"]

NATS_OUT, NATS_IN = "bridges_nats_out", "bridges_nats_in"
REDIS_OUT, REDIS_IN, LATENCY = "bridges_redis_out", "bridges_redis_in", "bridges_latency"
NAMES = (NATS_OUT, NATS_IN, REDIS_OUT, REDIS_IN, LATENCY)
GROUP = "bridges"

RB_NATS_OUT = "ringbus NatsBridge export"
JS_AWAIT = "nats-py await js.publish"
JS_ASYNC = "nats-py js.publish_async"
FASTSTREAM = "FastStream NATS publish"
CORE = "nats-py core publish, no acks"
RB_NATS_IN = "ringbus NatsBridge import"
PULL_ACK = "nats-py fetch(500) + ack each"
RB_REDIS_OUT = "ringbus RedisBridge export"
XADD_PIPE = "redis-py XADD pipelined x500"
RB_REDIS_IN = "ringbus RedisBridge import"
XREADGROUP = "redis-py XREADGROUP 500 + XACK"
LAT_NATS = "ringbus NatsBridge -> JetStream -> NatsBridge"
LAT_REDIS = "ringbus RedisBridge -> Redis -> RedisBridge"

PAYLOAD = bytes(range(100))
_streams = itertools.count(1)


class _Servers:
    """The run's servers and the objects that must outlive the rounds; closed once."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.nats: Any = None
        self.redis: Any = None
        self.nats_missing = self.redis_missing = ""
        self.loop = asyncio.new_event_loop()       # the peers' clients live on it
        self.stack.callback(self.loop.close)

    def start(self) -> None:
        from ringbus.bridge import testing
        try:
            import msgspec  # noqa: F401
        except ImportError:
            self.nats_missing = self.redis_missing = "msgspec not installed"
            return
        for engine, module in (("nats", "nats"), ("redis", "redis")):
            try:
                __import__(module)
            except ImportError:
                setattr(self, f"{engine}_missing",
                        f"{module} client not installed (pip install 'ringbus[{engine}]')")
                continue
            try:
                server = (testing.nats_server() if engine == "nats"
                          else testing.redis_server(fsync="everysec"))
            except (testing.ServerMissing, RuntimeError) as exc:
                setattr(self, f"{engine}_missing", f"skipped: {exc}")
                continue
            self.stack.callback(server.stop)
            setattr(self, engine, server)

    def url(self, engine: str) -> str:
        server = getattr(self, engine)
        return (f"nats://127.0.0.1:{server.port}" if engine == "nats"
                else f"redis://127.0.0.1:{server.port}/0")

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.stack.close()


_shared: Optional[_Servers] = None


def _servers() -> _Servers:
    global _shared
    if _shared is None:
        _shared = _Servers()
        _shared.start()
    return _shared


def _close_servers() -> None:
    global _shared
    if _shared is not None:
        shared, _shared = _shared, None
        shared.close()


# -- ringbus rows -------------------------------------------------------------------------


class _Export(CheckedRun):
    """``n`` payloads published into a bus whose consumer thread feeds a bridge; timed
    until the engine acknowledged all of them."""

    def __init__(self, servers: _Servers, engine: str, n: int) -> None:
        import ringbus
        self.bus = ringbus.Bus()
        self.t = self.bus.event_type(f"bench.bridge.{engine}.out")
        self.bridge = _bridge(servers, engine, self.bus)
        self.bridge.export(self.t, subject=f"bench{next(_streams)}.out")
        servers.stack.enter_context(self.bridge.running())
        servers.stack.enter_context(self.bus.running())
        self.n = n
        self.acked = 0

    def run(self) -> int:
        stats, payloads = self.bridge.stats, [PAYLOAD] * self.n
        base = stats()["acked"]
        t0 = time.perf_counter_ns()
        self.bus.publish_many(self.t, payloads)
        deadline = time.monotonic() + 120
        while stats()["acked"] - base < self.n and time.monotonic() < deadline:
            time.sleep(0.0005)
        elapsed = time.perf_counter_ns() - t0
        self.acked = stats()["acked"] - base
        return elapsed

    def check(self) -> None:
        if self.acked != self.n:
            raise Failed(f"{self.acked} of {self.n} acknowledged")


class _Import(CheckedRun):
    """``n`` messages put into the engine (untimed); timed from the bridge's start until
    the bus's handler ran for all of them and each was acked."""

    def __init__(self, servers: _Servers, engine: str, n: int) -> None:
        import ringbus
        self.servers, self.engine, self.n = servers, engine, n
        self.bus = ringbus.Bus()
        t = self.bus.event_type(f"bench.bridge.{engine}.in")
        self.handled = 0

        def handle(p: Any) -> None:
            self.handled += 1
        self.bus.subscribe(t, handle)
        self.subject = f"bench{next(_streams)}.in"
        self.bridge = _bridge(servers, engine, self.bus)
        if engine == "nats":
            self.bridge.import_(t, subject=self.subject, durable="rb")
        else:
            self.bridge.import_(t, subject=self.subject, group="rb")
        servers.stack.enter_context(self.bus.running())
        with self.bridge.running():
            pass                    # its stream (or group) and consumer exist from now on
        self.got = 0

    def run(self) -> int:
        _fill(self.servers, self.engine, self.subject, self.n)
        stats = self.bridge.stats
        base = stats()["acked_back"]
        with self.bridge.running():
            t0 = time.perf_counter_ns()
            deadline = time.monotonic() + 120
            while stats()["acked_back"] - base < self.n and time.monotonic() < deadline:
                time.sleep(0.0005)
            elapsed = time.perf_counter_ns() - t0
        self.got = stats()["acked_back"] - base
        return elapsed

    def check(self) -> None:
        if self.got != self.n:
            raise Failed(f"{self.got} of {self.n} handled and acked")


def _bridge(servers: _Servers, engine: str, bus: Any, stream: Optional[str] = None) -> Any:
    from ringbus.bridge import NatsBridge, RedisBridge
    stream = stream or f"bench{next(_streams)}"
    if engine == "nats":
        return NatsBridge(bus, servers=servers.url("nats"), stream=stream)
    return RedisBridge(bus, url=servers.url("redis"), stream=stream)


def _fill(servers: _Servers, engine: str, subject: str, n: int) -> None:
    """``n`` messages into ``subject`` (a stream's subject / a stream key), msgpack'd bytes
    as a bridge's exporter would send them, without timing."""
    import msgspec
    data = msgspec.msgpack.encode(PAYLOAD)

    async def nats_fill() -> None:
        import nats
        nc = await nats.connect(servers.url("nats"))
        js = nc.jetstream()
        for i in range(n):
            await nc.publish(subject, data)
        await nc.flush()
        # Stored: the stream's count is what the importer will see.
        name = await js.find_stream_name_by_subject(subject)
        while True:
            info = await js.stream_info(name)
            if info.state.messages >= n:
                break
            await asyncio.sleep(0.005)
        await nc.close()

    async def redis_fill() -> None:
        import redis.asyncio as aredis
        r = aredis.from_url(servers.url("redis"))
        for start in range(0, n, 500):
            pipe = r.pipeline(transaction=False)
            for _ in range(start, min(n, start + 500)):
                pipe.xadd(subject, {b"d": data})
            await pipe.execute()
        await r.aclose()
    servers.run(nats_fill() if engine == "nats" else redis_fill())


# -- the peers --------------------------------------------------------------------------


class _Async(CheckedRun):
    """A peer's coroutine ``body(n) -> count`` on the servers' loop, timed inside."""

    def __init__(self, servers: _Servers, n: int, body: Callable[[int], Any],
                 prepare: Optional[Callable[[], Any]] = None) -> None:
        self.servers, self.n, self.body, self.prepare = servers, n, body, prepare
        self.count = 0

    def run(self) -> int:
        if self.prepare is not None:
            self.prepare()
        t0 = time.perf_counter_ns()
        self.count = self.servers.run(self.body(self.n))
        return time.perf_counter_ns() - t0

    def check(self) -> None:
        if self.count != self.n:
            raise Failed(f"{self.count} of {self.n}")


def _nats_peers(servers: _Servers, n: int) -> List[Contender]:
    import nats
    subject = f"bench{next(_streams)}.peer"
    nc = servers.run(nats.connect(servers.url("nats")))
    servers.stack.callback(lambda: servers.run(nc.close()))
    js = nc.jetstream()
    servers.run(js.add_stream(name=subject.replace(".", "_"), subjects=[subject]))

    async def awaited(k: int) -> int:
        for _ in range(k):
            await js.publish(subject, PAYLOAD)
        return k

    ajs = nc.jetstream(publish_async_max_pending=1000)

    async def pipelined(k: int) -> int:
        for _ in range(k):
            await ajs.publish_async(subject, PAYLOAD)
        await ajs.publish_async_completed()
        return k

    async def core(k: int) -> int:
        for _ in range(k):
            await nc.publish(subject, PAYLOAD)
        await nc.flush()
        return k

    slow = max(500, n // 10)
    rows = [Contender(JS_AWAIT, f"{JS_AWAIT} ({slow:,} a run)",
                      _Async(servers, slow, awaited), slow),
            Contender(JS_ASYNC, f"{JS_ASYNC} (1,000 pending)", _Async(servers, n, pipelined), n),
            _faststream(servers, subject, slow),
            Contender(CORE, f"{CORE} (ceiling)", _Async(servers, n, core), n)]
    return rows


def _faststream(servers: _Servers, subject: str, n: int) -> Contender:
    try:
        from faststream.nats import NatsBroker
    except ImportError:
        return Contender(FASTSTREAM, FASTSTREAM, status="not installed (pip install faststream[nats])")
    broker = NatsBroker(servers.url("nats"))
    servers.run(broker.connect())
    servers.stack.callback(lambda: servers.run(broker.stop()))
    stream = subject.replace(".", "_")

    async def body(k: int) -> int:
        for _ in range(k):
            await broker.publish(PAYLOAD, subject, stream=stream)
        return k
    return Contender(FASTSTREAM, f"{FASTSTREAM} awaited ({n:,} a run)",
                     _Async(servers, n, body), n)


def _nats_pull(servers: _Servers, n: int) -> Contender:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig
    subject = f"bench{next(_streams)}.pull"
    nc = servers.run(nats.connect(servers.url("nats")))
    servers.stack.callback(lambda: servers.run(nc.close()))
    js = nc.jetstream()
    servers.run(js.add_stream(name=subject.replace(".", "_"), subjects=[subject]))
    psub = servers.run(js.pull_subscribe(subject, durable="peer",
                                         config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)))

    async def body(k: int) -> int:
        got = 0
        while got < k:
            for m in await psub.fetch(500, timeout=5):
                await m.ack()
                got += 1
        return got
    return Contender(PULL_ACK, PULL_ACK,
                     _Async(servers, n, body, lambda: _fill(servers, "nats", subject, n)), n)


def _redis_peers(servers: _Servers, n: int, reading: bool) -> Contender:
    import redis.asyncio as aredis
    r = aredis.from_url(servers.url("redis"))
    servers.stack.callback(lambda: servers.run(r.aclose()))
    key = f"bench{next(_streams)}.peer"
    if not reading:
        async def xadd(k: int) -> int:
            for start in range(0, k, 500):
                pipe = r.pipeline(transaction=False)
                for _ in range(start, min(k, start + 500)):
                    pipe.xadd(key, {b"d": PAYLOAD})
                await pipe.execute()
            return k
        return Contender(XADD_PIPE, XADD_PIPE, _Async(servers, n, xadd), n)
    servers.run(r.xgroup_create(key, "peer", id="0", mkstream=True))

    async def read(k: int) -> int:
        got = 0
        while got < k:
            resp: Any = await r.xreadgroup("peer", "c", {key: ">"}, count=500, block=1000)
            for _, items in resp:
                await r.xack(key, "peer", *[e for e, _ in items])
                got += len(items)
        return got
    return Contender(XREADGROUP, XREADGROUP,
                     _Async(servers, n, read, lambda: _fill(servers, "redis", key, n)), n)


# -- latency ----------------------------------------------------------------------------


class _Latency(CheckedRun):
    """One event a millisecond, bus -> bridge -> engine -> bridge -> another bus; the
    latency of each from its publish to its handler."""

    def __init__(self, servers: _Servers, engine: str, n: int) -> None:
        import ringbus
        self.n = n
        self.out = ringbus.Bus()
        self.inb = ringbus.Bus()
        self.t = self.out.event_type(f"bench.lat.{engine}")
        t_in = self.inb.event_type(f"bench.lat.{engine}.in")
        self.samples: List[float] = []
        self.done = threading.Event()

        def handle(stamp: int) -> None:
            self.samples.append(time.perf_counter_ns() - stamp)
            if len(self.samples) >= self.n:
                self.done.set()
        self.inb.subscribe(t_in, handle)
        subject = f"lat{next(_streams)}.x"
        stream = subject.replace(".", "_")
        exporter = _bridge(servers, engine, self.out, stream)
        importer = _bridge(servers, engine, self.inb, stream)
        exporter.export(self.t, subject=subject)
        if engine == "nats":
            importer.import_(t_in, subject=subject, durable="lat")
        else:
            importer.import_(t_in, subject=subject, group="lat")
        for cm in (exporter.running(), importer.running(), self.out.running(),
                   self.inb.running()):
            servers.stack.enter_context(cm)
        self.last: List[float] = []

    def run(self) -> int:
        self.samples, self.done = [], threading.Event()
        t0 = time.perf_counter_ns()
        for _ in range(self.n):
            self.out.publish(self.t, time.perf_counter_ns())
            time.sleep(0.001)
        self.done.wait(30)
        self.last = self.samples
        return time.perf_counter_ns() - t0

    def check(self) -> None:
        if len(self.last) != self.n:
            raise Failed(f"{len(self.last)} of {self.n} arrived")

    def observe(self) -> List[float]:
        return list(self.last)


# -- cases ------------------------------------------------------------------------------


def _missing(servers: _Servers, engine: str) -> str:
    return getattr(servers, f"{engine}_missing") or ""


def build(name: str, settings: Settings, progress: Optional[Callable[[str], None]] = None
          ) -> Case:
    """Set up bridge case ``name``: the servers start with the first one."""
    servers = _servers()
    n = settings.bridge_messages
    if name in (NATS_OUT, NATS_IN):
        why = _missing(servers, "nats")
        if name == NATS_OUT:
            rows = ([Contender(RB_NATS_OUT, f"{RB_NATS_OUT} (acked)",
                               _Export(servers, "nats", n), n)] + _nats_peers(servers, n)
                    if not why else [Contender(RB_NATS_OUT, RB_NATS_OUT, status=why)])
            if not why:
                from ringbus.benchmarks.bridge_ring import ring_out
                rows.insert(1, ring_out(servers, n, PAYLOAD))
            title = "100-byte payloads acknowledged by JetStream"
            ref = JS_ASYNC
        else:
            rows = ([Contender(RB_NATS_IN, f"{RB_NATS_IN} (handled, acked)",
                               _Import(servers, "nats", n), n), _nats_pull(servers, n)]
                    if not why else [Contender(RB_NATS_IN, RB_NATS_IN, status=why)])
            title = "JetStream messages handled and acked"
            ref = PULL_ACK
    elif name in (REDIS_OUT, REDIS_IN):
        why = _missing(servers, "redis")
        reading = name == REDIS_IN
        label = RB_REDIS_IN if reading else RB_REDIS_OUT
        row = (_Import if reading else _Export)
        rows = ([Contender(label, label, row(servers, "redis", n), n),
                 _redis_peers(servers, n, reading)]
                if not why else [Contender(label, label, status=why)])
        title = ("Redis stream entries read by a consumer group and acked" if reading
                 else "100-byte payloads appended to a Redis stream (XADD)")
        ref = XREADGROUP if reading else XADD_PIPE
    elif name == LATENCY:
        k = settings.bridge_latency_messages
        rows = []
        for engine, label in (("nats", LAT_NATS), ("redis", LAT_REDIS)):
            why = _missing(servers, engine)
            if why:
                rows.append(Contender(label, label, status=why))
                continue
            run = _Latency(servers, engine, k)
            rows.append(Contender(label, label, run, k, observe=run.observe))
        case = Case(LATENCY, "bus -> engine -> another bus, one event a millisecond", rows,
                    table="bridges_latency", rounds=settings.bridge_rounds, group=GROUP)
        case.close = _close_servers         # type: ignore[attr-defined]
        return case
    else:
        raise ValueError(f"unknown bridge case {name!r}")
    case = Case(name, title, rows, table="bridges", rounds=settings.bridge_rounds,
                reference=ref, group=GROUP)
    case.close = _close_servers             # type: ignore[attr-defined]
    return case
