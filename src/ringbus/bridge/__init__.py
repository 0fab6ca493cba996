"""Bridges: selected event types carried through an existing engine, and events from it fed
into a local bus; at-least-once, de-duplicated by id, in order per key.

    from ringbus.bridge import NatsBridge, RedisBridge  # pip install 'ringbus[nats]' / '[redis]'

Each engine's client library is imported when its bridge is made, not here.
"""
from ringbus.bridge.base import Bridge, Export, Import
from ringbus.bridge.codec import Codec, MalformedMessage
from ringbus.bridge.nats import NatsBridge
from ringbus.bridge.redis import RedisBridge
from ringbus.bridge.ring import RingExport

for _cls in (NatsBridge, RedisBridge, MalformedMessage, RingExport):
    _cls.__module__ = "ringbus.bridge"
del _cls

__all__ = ["NatsBridge", "RedisBridge", "Bridge", "Export", "Import", "Codec",
           "MalformedMessage", "RingExport"]
