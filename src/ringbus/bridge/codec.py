"""What crosses the network: a payload's bytes and the de-duplication id beside them.

Bytes pass through untouched (marked ``bytes``, so the importer does not decode them); any
other payload is encoded by msgspec, msgpack by default, or JSON. Pickle is never an option:
a bridge decodes data from the network, and unpickling it would run whatever it says.
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Tuple

__all__ = ["Codec", "Producer", "CODECS", "MalformedMessage"]

CODECS = ("msgpack", "json")


class MalformedMessage(ValueError):
    """An imported message that cannot be decoded (or has no data): it goes to the bus's
    error policy and to the dead-letter subject/stream, never to the handlers."""


class Codec:
    """``Codec("msgpack")`` or ``Codec("json")``: encode(payload) -> (kind, bytes);
    decode(kind, data) -> payload, where kind ``"bytes"`` is passed through."""

    __slots__ = ("name", "encoder", "_encode", "_decode")

    def __init__(self, name: str = "msgpack") -> None:
        if name not in CODECS:
            raise ValueError(f"codec must be one of {CODECS} (pickle is never used for "
                             f"data from the network), got {name!r}")
        try:
            import msgspec
        except ImportError as exc:      # pragma: no cover - the extras install it
            raise ImportError("ringbus.bridge needs msgspec: pip install 'ringbus[nats]' or "
                              "'ringbus[redis]'") from exc
        self.name = name
        module = msgspec.msgpack if name == "msgpack" else msgspec.json
        # Public for the compiled framers (ringbus._wire): they encode a batch with one
        # encode_into a reused buffer.
        self.encoder: Any = module.Encoder()
        self._encode: Callable[[Any], bytes] = self.encoder.encode
        self._decode: Callable[[bytes], Any] = module.Decoder().decode

    def encode(self, payload: Any) -> Tuple[str, bytes]:
        if type(payload) is bytes:
            return "bytes", payload
        if isinstance(payload, (bytearray, memoryview)):
            return "bytes", bytes(payload)
        return self.name, self._encode(payload)

    def decode(self, kind: str | None, data: bytes) -> Any:
        """The payload of ``data``; a message from another producer (no kind) is read with
        this codec. Raises MalformedMessage when it does not decode."""
        if kind == "bytes":
            return data
        if kind is not None and kind != self.name:
            if kind not in CODECS:
                raise MalformedMessage(f"unknown codec {kind!r}")
            return Codec(kind).decode(kind, data)
        try:
            return self._decode(data)
        except Exception as exc:
            raise MalformedMessage(f"does not decode as {self.name}: {exc}") from None

    def __repr__(self) -> str:
        return f"Codec({self.name!r})"


class Producer:
    """The de-duplication ids of one exporting bridge: ``producer:sequence``. The producer
    part is new at every process start (and every bridge), so a restarted exporter's events
    are never taken for duplicates of the last run's; the sequence counts from 1. ``count``
    is the last sequence given: the compiled framers (ringbus._wire) continue it a batch at
    a time."""

    __slots__ = ("name", "count")

    def __init__(self) -> None:
        self.name = f"{uuid.uuid4().hex[:16]}-{os.getpid()}"
        self.count = 0

    def next_id(self) -> str:
        self.count += 1
        return f"{self.name}:{self.count}"
