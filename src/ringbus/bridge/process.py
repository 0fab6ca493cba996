"""``python -m ringbus bridge``: a bridge in its own process, draining a shared ring.

    python -m ringbus bridge nats --servers nats://127.0.0.1:4222 --stream md \\
        --ring ticks --subject 'md.tick.{sym}' --key sym
    python -m ringbus bridge redis --url redis://127.0.0.1:6379/0 --stream md \\
        --ring ticks --subject 'md.tick.{sym}' --key sym

It attaches the ring (made by its producers with ``MessageRing(..., shared="ticks")``),
takes its consumer lease and exports its messages (``Bridge.export_ring``) until SIGTERM or
SIGINT, then publishes what it polled, waits for the acks and commits them. Killed at any
moment (kill -9 included), it loses nothing: started again, it resumes from the ring's
committed sequence, and what it publishes again is de-duplicated. One line on stdout says it
is ready (connected, streams made); one more says what it carried when it stops.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, List, Optional


def main(args: argparse.Namespace) -> int:
    import ringbus
    from ringbus.bridge import NatsBridge, RedisBridge
    bus = ringbus.Bus()
    common = dict(codec=args.codec, batch=args.batch, max_in_flight=args.max_in_flight,
                  ack_wait=args.ack_wait)
    bridge: Any
    if args.engine == "nats":
        bridge = NatsBridge(bus, servers=args.servers, stream=args.stream, creds=args.creds,
                            **common)
    else:
        bridge = RedisBridge(bus, url=args.url, stream=args.stream, **common)
    try:
        export = bridge.export_ring(args.ring, subject=args.subject, key=args.key)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as exc:
        print(f"ringbus bridge: {exc}", file=sys.stderr)
        bus.close()
        return 2
    stop = threading.Event()
    received: List[int] = []

    def on_signal(signum: int, frame: Optional[Any]) -> None:
        received.append(signum)
        stop.set()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        with bridge.running(timeout=max(10.0, 2 * args.ack_wait)):
            print(f"ringbus bridge: ready: ring {args.ring!r} -> {bridge!r}, after sequence "
                  f"{export.ring.committed}", flush=True)
            while not stop.wait(0.5) and bridge._running:
                pass
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
        # Not connected, or the ring has a live consumer already: said plainly, exit 1.
        print(f"ringbus bridge: {exc}", file=sys.stderr)
        code = 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stats = export.stats()
        bridge.close()
        bus.close()
    if export.failure is not None:
        print(f"ringbus bridge: reading the ring failed: {export.failure!r}", file=sys.stderr)
        code = 1
    print(f"ringbus bridge: stopped: polled {stats['polled']}, committed "
          f"{stats['committed']}, pending {stats['pending']}, errors {stats['errors']}; "
          f"the ring's committed sequence is {stats['sequence']}", flush=True)
    return code
