"""The bridges' own NATS connections, the hot paths between the bus and the socket. Each
speaks just enough of the NATS protocol for one job, on one wildcard inbox, answering the
server's ``PING``; nats-py does everything else (streams, consumers, dead letters). What they
save is nats-py's per-message work: a coroutine and a header dict per publish, a Msg object
and a queue hop per delivered message, an awaited publish per ack.

- :class:`PublishLink` (export): ``HPUB`` with the ``Nats-Msg-Id`` header, a batch in one
  write; JetStream's PubAcks (``MSG``) parsed a read at a time by the compiled
  :class:`ringbus._wire.PubWindow`, which framed the batch and holds each frame until its
  PubAck.
- :class:`PullLink` (import): pull requests to a durable consumer, the delivered ``HMSG``s
  parsed from the read buffer, and the acks / NAKs / terms of a batch in one write.

Neither buffers across a reconnect: what a dead socket swallowed is re-published by the
exporter in order before anything new, and an importer's lost acks mean redeliveries, which
it drops by id. Used with every security option of NatsBridge: user/password or a token,
TLS (upgraded after the server's INFO, as nats-py does), an nkey seed or a credentials file
(the server's nonce signed with ``nkeys``, as nats-py does).
"""
from __future__ import annotations

import asyncio
import base64
import importlib
import json
import logging
import re
import ssl
from abc import ABC, abstractmethod
from typing import Any, Callable, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit

from ringbus.bridge.nats import CODEC_HEADER, ID_HEADER, Delivery

__all__ = ["PublishLink", "PullLink"]

_log = logging.getLogger("ringbus.bridge")



class _Link(ABC):
    """One raw connection: ``connect()``, ``write(bytes)`` and ``await drain()``;
    ``run()`` reads (what comes is the subclass's ``_parse``) and, when the connection breaks, calls
    ``on_lost()``, reconnects every 0.1 s and calls ``on_back()``."""

    what = "link"

    def __init__(self, servers: Sequence[str], inbox: str, *, user: Optional[str],
                 password: Optional[str], token: Optional[str], on_lost: Callable[[], None],
                 on_back: Callable[[], None], tls: Optional[ssl.SSLContext] = None,
                 creds: Optional[str] = None, nkeys_seed: Optional[str] = None) -> None:
        self.servers = list(servers)
        self.inbox = inbox                  # "_INBOX.<nuid>.": what comes back, inbox + n
        self._user, self._password, self._token = user, password, token
        # Paths, read at each connect: the seed is in memory only while it signs.
        self._tls, self._creds, self._nkeys_seed = tls, creds, nkeys_seed
        self.on_lost, self.on_back = on_lost, on_back
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
        raise ConnectionError(f"no NATS server accepted the {self.what}: {last}")

    async def _open(self, url: str) -> None:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1",
                                                       parts.port or 4222, limit=1 << 20)
        try:
            line = await reader.readline()
            if not line.startswith(b"INFO "):
                raise ConnectionError(f"not a NATS server: {line[:40]!r}")
            info = json.loads(line[5:])
            if info.get("tls_required") or parts.scheme == "tls":
                # NATS upgrades after its plain-text INFO, as nats-py does.
                await writer.start_tls(self._tls or ssl.create_default_context(),
                                       server_hostname=parts.hostname)
            user = unquote(parts.username) if parts.username else self._user
            password = unquote(parts.password) if parts.password else self._password
            options: dict = {"verbose": False, "pedantic": False, "headers": True,
                             "no_responders": True, "protocol": 1, "lang": "python",
                             "version": "ringbus", "name": f"ringbus-bridge-{self.what}"}
            if user:
                options.update(user=user, **{"pass": password or ""})
            elif self._token:
                options["auth_token"] = self._token
            if (self._creds or self._nkeys_seed) and info.get("nonce"):
                options.update(_signed(info["nonce"], self._creds, self._nkeys_seed))
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

    def write(self, data: bytes) -> None:
        """Written, or dropped while the connection is down: what the callers lose that way
        comes back by their own rules (a re-publish, a redelivery, a pull request again)."""
        if self._writer is not None:
            self._writer.write(data)

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
        # Parsed from the bytes read, not line by line through StreamReader: a read brings
        # hundreds of messages.
        reader = self._reader
        assert reader is not None
        buf = b""
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            buf = buf + chunk if buf else chunk
            buf = buf[self._parse(buf):]

    @abstractmethod
    def _parse(self, buf: bytes) -> int:
        """Handle the whole messages at the start of ``buf``; how many bytes they were."""

    def _control(self, buf: bytes, pos: int, eol: int) -> None:
        """A line that is not a message: PING is answered, -ERR logged; +OK, PONG and INFO
        need nothing."""
        if buf.startswith(b"PING", pos):
            self.write(b"PONG\r\n")
        elif buf.startswith(b"-ERR", pos):
            _log.warning("ringbus.bridge: NATS (%s): %s", self.what,
                         buf[pos + 5:eol].strip().decode(errors="replace"))

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


class PublishLink(_Link):
    """The exporter's link: ``write(frames)`` (made by its :class:`ringbus._wire.PubWindow`),
    then ``await drain()``; each read's PubAcks release their messages from the window
    (compiled: no per-message Python), then ``on_ack(acked, errors)`` is called once: how
    many were released, and the (sequence, data) of those that carried an error."""

    what = "publish link"

    def __init__(self, servers: Sequence[str], inbox: str, *, window: Any,
                 on_ack: Callable[[int, List[Tuple[int, bytes]]], None], **kw: Any) -> None:
        super().__init__(servers, inbox, **kw)
        self.window = window
        self.on_ack = on_ack

    def _parse(self, buf: bytes) -> int:
        feed, window = self.window.feed, self.window
        acked, pos, end = 0, 0, len(buf)
        while pos < end:
            pos = feed(buf, pos)
            acked += window.acked
            if pos >= end or buf.startswith(b"MSG ", pos):
                break                           # all done, or a message not all here yet
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            self._control(buf, pos, eol)
            pos = eol + 2
        errors = window.errors
        if acked or errors:
            self.on_ack(acked, list(errors))    # one call per read
            errors.clear()
        return pos


class PullLink(_Link):
    """The importer's link: ``await fetch(stream, durable, batch, expires)`` sends one pull
    request and returns what it delivered (a list of ``Delivery``; empty when the request
    expired with nothing); ``await verdicts([(delivery, b"+ACK" / b"-NAK ..." /
    b"+TERM"), ...])`` answers them in one write."""

    what = "pull link"
    # "HMSG <subject> <sid> [reply] <header bytes> <total bytes>" / "MSG ... <bytes>"
    _HMSG = re.compile(rb"HMSG (\S+) +\d+ +(?:(\S+) +)?(\d+) +(\d+)\r\n")
    _MSG = re.compile(rb"MSG (\S+) +\d+ +(?:(\S+) +)?(\d+)\r\n")

    def __init__(self, servers: Sequence[str], inbox: str, **kw: Any) -> None:
        super().__init__(servers, inbox, **kw)
        self._request = 0
        self._want = 0
        self.hold_until = 0.0               # the importer fetches nothing before (monotonic)
        self._got: List[Any] = []
        self._done: Optional["asyncio.Future[None]"] = None

    async def fetch(self, stream: str, durable: str, batch: int, expires: float,
                    no_wait: bool = False) -> List[Any]:
        if self._got:
            # Delivered after the last request was given up: theirs, not lost.
            got, self._got = self._got, []
            return got
        if not self.connected:
            return []
        loop = asyncio.get_running_loop()
        self._request += 1
        self._want = batch
        done = self._done = loop.create_future()
        body = (b'{"batch": %d, "no_wait": true}' % batch if no_wait
                else b'{"batch": %d, "expires": %d}' % (batch, int(expires * 1e9)))
        self.write(b"PUB $JS.API.CONSUMER.MSG.NEXT.%s.%s %s%d %d\r\n%s\r\n" % (
            stream.encode(), durable.encode(), self.inbox.encode(), self._request, len(body),
            body))
        try:
            await asyncio.wait_for(asyncio.shield(done), expires + 1.0)
        except asyncio.TimeoutError:
            pass                            # a lost request or status: what came is it
        self._done = None
        got, self._got = self._got, []
        return got

    async def verdicts(self, verdicts: List[Tuple[Any, bytes]]) -> None:
        if not verdicts or self._writer is None:
            return                          # lost: the consumer redelivers after ack_wait
        out = []
        for d, verdict in verdicts:
            out.append(b"PUB %s %d\r\n%s\r\n" % (d.handle, len(verdict), verdict))
        self.write(b"".join(out))
        await self.drain()

    def _finish(self) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)

    def _parse(self, buf: bytes) -> int:
        hmsg, msg = self._HMSG.match, self._MSG.match
        id_key, codec_key = _ID_KEY, _CODEC_KEY
        got = self._got
        pos, end = 0, len(buf)
        while pos < end:
            m = hmsg(buf, pos)
            if m is not None:
                start = m.end()
                hlen, total = int(m.group(3)), int(m.group(4))
                stop = start + total
                if stop + 2 > end:
                    break                       # not all here yet
                reply = m.group(2)
                pos = stop + 2
                if reply is None or not reply.startswith(b"$JS.ACK."):
                    # A status (404 no messages, 408 request expired, 409 ...): this
                    # request is over.
                    self._finish()
                    continue
                got.append(_delivery(m.group(1), reply, buf[start:start + hlen],
                                     buf[start + hlen:stop], id_key, codec_key))
                if len(got) >= self._want:
                    self._finish()
                continue
            m = msg(buf, pos)
            if m is not None:
                start = m.end()
                stop = start + int(m.group(3))
                if stop + 2 > end:
                    break
                reply = m.group(2)
                pos = stop + 2
                if reply is not None and reply.startswith(b"$JS.ACK."):
                    got.append(_delivery(m.group(1), reply, b"", buf[start:stop], id_key,
                                         codec_key))
                    if len(got) >= self._want:
                        self._finish()
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            self._control(buf, pos, eol)
            pos = eol + 2
        return pos


def _signed(nonce: str, creds: Optional[str], seed_file: Optional[str]) -> dict:
    """The CONNECT fields that prove who we are with an nkey: the server's nonce signed by
    the seed of a credentials file (with its user JWT) or of an nkey seed file."""
    nkeys = importlib.import_module("nkeys")     # checked by NatsBridge; untyped
    jwt, seed = _read_creds(creds) if creds else (None, _read_seed(seed_file))
    kp = nkeys.from_seed(bytearray(seed.encode()))
    try:
        sig = base64.urlsafe_b64encode(kp.sign(nonce.encode())).rstrip(b"=").decode()
        return {"sig": sig, "jwt": jwt} if jwt else {"sig": sig,
                                                     "nkey": kp.public_key.decode()}
    finally:
        kp.wipe()


def _read_seed(path: Optional[str]) -> str:
    assert path is not None
    with open(path) as f:
        for line in f:
            if line.strip().startswith("S"):
                return line.strip()
    raise ValueError(f"no nkey seed in {path}")


def _read_creds(path: str) -> Tuple[str, str]:
    """(user JWT, seed) of a credentials file: the line after each ``-----BEGIN ...``."""
    with open(path) as f:
        lines = [line.strip() for line in f]
    after = {lines[i]: lines[i + 1] for i in range(len(lines) - 1)
             if lines[i].startswith("---") and "BEGIN" in lines[i]}
    jwt = next((v for k, v in after.items() if "JWT" in k), None)
    seed = next((v for k, v in after.items() if "SEED" in k), None)
    if not jwt or not seed:
        raise ValueError(f"{path} is not a NATS credentials file (a user JWT and its seed)")
    return jwt, seed


def _header(head: bytes, key: bytes) -> Optional[str]:
    i = head.find(key)
    if i < 0:
        return None
    j = head.find(b"\r\n", i + len(key))
    return head[i + len(key):j].strip().decode(errors="replace")


_ID_KEY = b"\r\n" + ID_HEADER.encode() + b":"
_CODEC_KEY = b"\r\n" + CODEC_HEADER.encode() + b":"


def _delivery(subject: bytes, reply: bytes, head: bytes, data: bytes, id_key: bytes,
              codec_key: bytes) -> Delivery:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
    # (and, from nats-server 2.10, <domain>.<account hash> first and a token last).
    tokens = reply.split(b".")
    if len(tokens) >= 12:
        delivered, pending = int(tokens[6]), int(tokens[10])
    else:
        delivered, pending = int(tokens[4]), int(tokens[8])
    return Delivery(subject.decode(), _header(head, id_key) if head else None,
               _header(head, codec_key) if head else None, data, delivered, pending, reply)
