"""PublishLink: the exporter's own NATS connection, the hot path between the outbox and the
socket. It speaks just enough of the NATS protocol to publish (``HPUB`` with the
``Nats-Msg-Id`` header, a batch in one write) and to read JetStream's PubAcks on one
wildcard inbox (``MSG``), answering the server's ``PING``. nats-py does the rest (streams,
consumers, imports); its per-message publish and its subscription callbacks are what this
saves.

It never buffers across a reconnect: what a dead socket swallowed is re-published by the
bridge, in order, before anything new (see NatsBridge). Used for ``nats://`` servers with
user/password or a token; TLS and credentials files keep nats-py's path.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Callable, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit

__all__ = ["PublishLink"]

_log = logging.getLogger("ringbus.bridge")

# One exported message: (our sequence, subject, de-duplication id, codec, data).
Record = Tuple[int, str, str, str, bytes]


class PublishLink:
    """``connect()``, then ``write(records)`` and ``await drain()``; ``on_ack(acks)``
    gets the PubAcks of each read, a list of (sequence, data), ``on_lost()`` when the connection broke, ``on_back()``
    once it is made again (by ``run()``, which also reads)."""

    def __init__(self, servers: Sequence[str], inbox: str, *, user: Optional[str],
                 password: Optional[str], token: Optional[str],
                 on_ack: Callable[[List[Tuple[int, bytes]]], None], on_lost: Callable[[], None],
                 on_back: Callable[[], None]) -> None:
        self.servers = list(servers)
        self.inbox = inbox                  # "_INBOX.<nuid>." : acks come to inbox + seq
        self._user, self._password, self._token = user, password, token
        self.on_ack, self.on_lost, self.on_back = on_ack, on_lost, on_back
        self.connected = False
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._next = 0
        self._closing = False

    async def connect(self, timeout: float = 2.0) -> None:
        last: Optional[BaseException] = None
        for _ in range(len(self.servers)):
            url = self.servers[self._next % len(self.servers)]
            self._next += 1
            try:
                await asyncio.wait_for(self._open(url), timeout)
                self.connected = True
                return
            except (OSError, asyncio.TimeoutError, ConnectionError) as exc:
                last = exc
        raise ConnectionError(f"no NATS server accepted the publish link: {last}")

    async def _open(self, url: str) -> None:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1",
                                                       parts.port or 4222, limit=1 << 20)
        try:
            line = await reader.readline()
            if not line.startswith(b"INFO "):
                raise ConnectionError(f"not a NATS server: {line[:40]!r}")
            info = json.loads(line[5:])
            if info.get("tls_required"):
                raise ConnectionError("the server requires TLS (the publish link has none)")
            user = unquote(parts.username) if parts.username else self._user
            password = unquote(parts.password) if parts.password else self._password
            options: dict = {"verbose": False, "pedantic": False, "headers": True,
                             "no_responders": True, "protocol": 1, "lang": "python",
                             "version": "ringbus", "name": "ringbus-bridge-publish"}
            if user:
                options.update(user=user, **{"pass": password or ""})
            elif self._token:
                options["auth_token"] = self._token
            writer.write(b"CONNECT " + json.dumps(options).encode() + b"\r\nPING\r\n")
            await writer.drain()
            while True:
                line = await reader.readline()
                if not line:
                    raise ConnectionError("the server closed the connection")
                if line.startswith(b"-ERR"):
                    raise ConnectionError(line[5:].strip().decode(errors="replace"))
                if line.startswith(b"PONG"):
                    break
            writer.write(f"SUB {self.inbox}* 1\r\n".encode())
            await writer.drain()
        except BaseException:
            writer.close()
            raise
        self._reader, self._writer = reader, writer

    def write(self, records: List[Record]) -> None:
        """One write of HPUBs for ``records`` (no await: the caller drains)."""
        inbox = self.inbox
        out: List[bytes] = []
        append = out.append
        for seq, subject, msg_id, kind, data in records:
            hdr = f"NATS/1.0\r\nNats-Msg-Id: {msg_id}\r\nRingbus-Codec: {kind}\r\n\r\n"
            hlen = len(hdr)                 # ASCII: ids, codec names
            append(f"HPUB {subject} {inbox}{seq} {hlen} {hlen + len(data)}\r\n{hdr}".encode())
            append(data)
            append(b"\r\n")
        assert self._writer is not None
        self._writer.write(b"".join(out))

    async def drain(self) -> None:
        if self._writer is not None:
            try:
                await self._writer.drain()
            except (ConnectionError, OSError):
                pass                        # the reader sees it and reconnects

    async def run(self) -> None:
        """Read PubAcks and PINGs until closed; reconnect (every 0.1 s) when the
        connection breaks, calling on_lost / on_back."""
        while not self._closing:
            try:
                await self._read()
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
                pass
            if self._closing:
                return
            self.connected = False
            if self._writer is not None:
                self._writer.close()
            self._reader = self._writer = None
            self.on_lost()
            while not self._closing:
                try:
                    await self.connect(timeout=1.0)
                    break
                except ConnectionError:
                    await asyncio.sleep(0.1)
            if self.connected:
                self.on_back()

    async def _read(self) -> None:
        # Parsed from the bytes read, not line by line through StreamReader: one PubAck is
        # about 100 bytes and a read brings hundreds, handed over in one on_ack call.
        reader = self._reader
        assert reader is not None
        # "MSG <inbox><seq> <sid> [reply] <size>": nats-server 2.9 leaves two spaces where
        # the reply is empty.
        ack = re.compile(re.escape(self.inbox.encode()) + rb"(\d+) +\d+ +(?:\S+ +)?(\d+)\r\n")
        on_ack = self.on_ack
        buf = b""
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            buf = buf + chunk if buf else chunk
            pos, end = 0, len(buf)
            acks: List[Tuple[int, bytes]] = []
            match = ack.match
            while pos < end:
                if buf.startswith(b"MSG ", pos):
                    m = match(buf, pos + 4)
                    if m is not None:
                        start = m.end()
                        stop = start + int(m.group(2))
                        if stop + 2 > end:
                            break               # the payload is not all here yet
                        acks.append((int(m.group(1)), buf[start:stop]))
                        pos = stop + 2
                        continue
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                if buf.startswith(b"MSG ", pos):
                    # Not an ack of ours (nothing else is subscribed): skip its payload.
                    stop = eol + 2 + int(buf[pos:eol].split()[-1])
                    if stop + 2 > end:
                        break
                    pos = stop + 2
                    continue
                if buf.startswith(b"PING", pos):
                    assert self._writer is not None
                    self._writer.write(b"PONG\r\n")
                elif buf.startswith(b"-ERR", pos):
                    _log.warning("ringbus.bridge: NATS (publish link): %s",
                                 buf[pos + 5:eol].strip().decode(errors="replace"))
                # +OK, PONG, INFO: nothing to do
                pos = eol + 2
            buf = buf[pos:]
            if acks:
                on_ack(acks)

    async def close(self) -> None:
        self._closing = True
        writer, self._writer = self._writer, None
        self.connected = False
        if writer is not None:
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except Exception:
                pass
            writer.close()
