"""What the bridge tests share: a server of each engine per test, a bridge made for it, and
waiting for a condition (never a sleep that a slow machine could outrun)."""
from __future__ import annotations

import time
from typing import Any, Callable

import pytest

import brokers


def wait_for(cond: Callable[[], Any], timeout: float = 15.0,
             what: "str | Callable[[], str]" = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {said or cond}")
        time.sleep(0.005)


class Engine:
    """One engine's server and how to make its bridges (the test's parameter). ``nats-py``
    is NATS with the exporter publishing through nats-py (``publish_link=False``) instead of
    its own connection."""

    def __init__(self, name: str, server: brokers.Server) -> None:
        self.publish_link = name != "nats-py"
        self.name = "nats" if name == "nats-py" else name
        self.server = server

    @property
    def url(self) -> str:
        if self.name == "nats":
            return f"nats://127.0.0.1:{self.server.port}"
        return f"redis://127.0.0.1:{self.server.port}/0"

    def bridge(self, bus: Any, stream: str = "md", **kw: Any) -> Any:
        from ringbus.bridge import NatsBridge, RedisBridge
        if self.name == "nats":
            return NatsBridge(bus, servers=self.url, stream=stream,
                              publish_link=self.publish_link, **kw)
        return RedisBridge(bus, url=self.url, stream=stream, **kw)

    def import_(self, bridge: Any, event_type: Any, subject: str, name: str) -> Any:
        if self.name == "nats":
            return bridge.import_(event_type, subject=subject, durable=name)
        return bridge.import_(event_type, subject=subject, group=name)

    def wildcard(self, prefix: str) -> str:
        """Every subject (NATS) / stream key (Redis) under ``prefix.``."""
        return f"{prefix}.>" if self.name == "nats" else f"{prefix}.*"


def start(name: str) -> Engine:
    pytest.importorskip("msgspec", reason="the bridges' codec (ringbus[nats] / ringbus[redis])")
    if name in ("nats", "nats-py"):
        pytest.importorskip("nats", reason="nats-py (pip install 'ringbus[nats]')")
        return Engine(name, brokers.nats_server())
    pytest.importorskip("redis", reason="redis-py (pip install 'ringbus[redis]')")
    return Engine(name, brokers.redis_server())


def stop(engine: Engine) -> None:
    engine.server.stop()
