"""What security and patterns cost the bridges, measured (not asserted anywhere):

    python bench/bridge_security.py [--rounds 5]

1. NatsBridge export acknowledged by JetStream, 20,000 100-byte messages a round, over TLS
   (a token too) through the lean publish link vs nats-py's publish path
   (``publish_link=False``), and without TLS through the lean link; rounds interleaved.
2. ns per ``emit`` into an exact export vs a topic-pattern export (``"md.*"``: one dict
   lookup and the type passed), the bridge not running (events wait in its outbox).

Needs nats-server and the openssl CLI (a throwaway CA and server certificate are made in a
temporary directory, as tests/test_bridge_security.py does). Prints medians and ranges.
"""
from __future__ import annotations

import argparse
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import brokers  # noqa: E402  (tests/brokers.py: servers, certificates)
import ringbus  # noqa: E402
from ringbus.bridge import NatsBridge  # noqa: E402

N = 20_000


def export_rate(url: str, stream: str, **kw: object) -> float:
    bus = ringbus.Bus()
    T = bus.event_type("t")
    bridge = NatsBridge(bus, servers=url, stream=stream, token="tok", **kw)  # type: ignore[arg-type]
    bridge.export(T, subject=f"{stream}.x")
    payload = b"x" * 100
    with bus.running(), bridge.running():
        t0 = time.perf_counter()
        for _ in range(N // 1000):
            bus.publish_many(T, [payload] * 1000)
        while bridge.stats()["acked"] < N:
            time.sleep(0.0005)
        return N / (time.perf_counter() - t0)


def emit_ns(pattern: bool, n: int = 200_000) -> float:
    bus = ringbus.Bus()
    T = bus.event_type("md.tick")
    bridge = NatsBridge(bus, servers="nats://127.0.0.1:1", stream="x")
    bridge.export("md.*" if pattern else T, subject="x.{type}")
    emit, p = bus.emit, b"x" * 100
    t0 = time.perf_counter_ns()
    for _ in range(n):
        emit(T, p)
    took = (time.perf_counter_ns() - t0) / n
    bridge._outbox.clear()
    return took


def show(name: str, values: list, unit: str, scale: float = 1.0) -> None:
    v = [x / scale for x in values]
    print(f"  {name:34s} median {statistics.median(v):8.1f} {unit}  "
          f"range {min(v):.1f}-{max(v):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    rounds = ap.parse_args().rounds
    with tempfile.TemporaryDirectory() as d:
        c = brokers.certs(Path(d))
        tls_srv = brokers.nats_server(tls=(c.cert, c.key), token="tok")
        plain_srv = brokers.nats_server(token="tok")
        try:
            ctx = ssl.create_default_context(cafile=c.ca)
            tls_url = f"tls://127.0.0.1:{tls_srv.port}"
            runs = {"TLS, lean link": lambda s: export_rate(tls_url, s, tls=ctx),
                    "TLS, nats-py (publish_link=False)":
                        lambda s: export_rate(tls_url, s, tls=ctx, publish_link=False),
                    "no TLS, lean link":
                        lambda s: export_rate(f"nats://127.0.0.1:{plain_srv.port}", s)}
            rates: dict = {k: [] for k in runs}
            for r in range(rounds):
                for i, (name, run) in enumerate(runs.items()):
                    rates[name].append(run(f"s{r}_{i}"))
        finally:
            tls_srv.stop()
            plain_srv.stop()
    print(f"NatsBridge export, acked, {N:,} x 100 B, {rounds} rounds (k msg/s):")
    for name, v in rates.items():
        show(name, v, "k msg/s", 1e3)
    emits: dict = {"exact export": [], "pattern export (md.*)": []}
    for _ in range(rounds + 2):
        emits["exact export"].append(emit_ns(False))
        emits["pattern export (md.*)"].append(emit_ns(True))
    print("emit into the export handler (ns/event):")
    for name, v in emits.items():
        show(name, v, "ns")


if __name__ == "__main__":
    main()
