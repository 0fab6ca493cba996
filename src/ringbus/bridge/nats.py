"""NatsBridge: selected event types to NATS JetStream and back (``pip install 'ringbus[nats]'``).

Out: each exported event is published to its subject with a ``Nats-Msg-Id`` header (the
de-duplication id, ``producer:sequence``) and a reply inbox of this bridge; JetStream's
acknowledgement (PubAck) arrives there, and only then does the event leave the bridge. Up to
``max_in_flight`` are unacknowledged at once. One with no ack within ``ack_wait`` is
published again, together with every later one still unacknowledged, in their first order:
the stream's duplicate window drops the copies that had been stored, and each subject keeps
its order. After a reconnect the same happens at once.

In: a durable pull consumer per import, fetched ``batch`` messages at a time; their events go
through the local bus, and each message is acked once the bus's handlers ran, NAKed with a
delay if one raised, and moved to the dead-letter subject after ``max_deliver`` deliveries
(or at once when it does not decode).
"""
from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import ssl
import time
from typing import (Any, Awaitable, Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Set, Tuple, Union)

from ringbus.bridge.base import Bridge, Export, Import, Key
from ringbus.bridge.codec import MalformedMessage
from ringbus.bridge.patterns import type_of as _type_of

__all__ = ["NatsBridge"]

_log = logging.getLogger("ringbus.bridge")

ID_HEADER = "Nats-Msg-Id"
CODEC_HEADER = "Ringbus-Codec"
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _redact(url: str) -> str:
    """``nats://user:secret@host:4222`` -> ``nats://***@host:4222``."""
    return re.sub(r"//[^@/]*@", "//***@", url)


def _refusal(exc: BaseException, text: str) -> Optional[Tuple[type, str]]:
    """A connection error that no retry mends, as (the exception to raise, what it says):
    the server refused the credentials, or the TLS handshake did (a certificate)."""
    lower = text.lower()
    if "authorization violation" in lower or (
            "authentication" in lower and "timeout" not in lower):   # a slow client: retried
        return PermissionError, (f"{text} (check user/password, token, nkeys_seed or "
                                 f"creds)")
    if isinstance(exc, ssl.SSLError) or any(w in lower for w in (
            "certificate", "secure connection", "tls")):
        return ConnectionError, f"TLS: {text}"
    return None


def _covers(pattern: str, subject: str) -> bool:
    """Whether the NATS subject pattern ``pattern`` matches every subject ``subject`` does
    (both may hold wildcards)."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return i < len(s)
        if i >= len(s):
            return False
        if tok == "*":
            if s[i] == ">":
                return False
            continue
        if tok != s[i]:
            return False
    return len(p) == len(s)


def _cover(subjects: List[str]) -> List[str]:
    """The fewest of ``subjects`` that match all of them (JetStream refuses a stream whose
    subjects overlap: ``md.tick.*`` beside ``md.tick.>``)."""
    out: List[str] = []
    for s in subjects:
        if not any(_covers(w, s) for w in out):
            out = [w for w in out if not _covers(s, w)] + [s]
    return out


class NatsBridge(Bridge):
    """A bridge between ``bus`` and NATS JetStream (the stream ``stream``, made when missing,
    its subjects those exported and imported).

    >>> bridge = NatsBridge(bus, servers="nats://127.0.0.1:4333", stream="md")
    >>> bridge.export(TICK, subject="md.tick.{sym}", key=lambda p: p["sym"])
    >>> bridge.import_(ORDER, subject="orders.>", durable="risk")
    >>> with bridge.running(): ...

    Security options are passed to nats-py as they are: ``user``/``password`` (or in the
    URL), ``token``, ``creds`` (the path of a credentials file: a user JWT and its nkey
    seed), ``nkeys_seed`` (the path of an nkey seed file), ``tls`` (an ``ssl.SSLContext``,
    e.g. ``ssl.create_default_context(cafile=...)``; with ``tls://`` servers or a server
    that requires TLS). None of them is ever printed (the repr and the logs show ``***``).
    Credentials the server refuses fail ``running()`` / ``run()`` at once with a
    ``PermissionError``, a certificate it cannot verify with a ``ConnectionError``, each
    saying so.

    Tuning: ``batch`` (fetch and publish size, 500), ``max_in_flight`` (unacknowledged
    exports, 10,000), ``ack_wait`` (seconds: the export's wait for a PubAck and the import
    consumer's AckWait, 5), ``max_deliver`` (5), ``redelivery_delay`` (1 s),
    ``duplicate_window`` (the stream's, seconds, 120), ``dead_letter`` (the subject failed
    messages go to; default ``ringbus.dead.<stream>``, in the stream ``<stream>_dead``),
    ``codec`` ("msgpack" or "json"), ``dedup_window`` (ids remembered by the importer).
    """

    _engine = "nats"

    def __init__(self, bus: Any, servers: Union[str, Sequence[str]] = "nats://127.0.0.1:4222",
                 stream: str = "ringbus", *, user: Optional[str] = None,
                 password: Optional[str] = None, token: Optional[str] = None,
                 creds: Optional[str] = None, nkeys_seed: Optional[str] = None,
                 tls: Optional[ssl.SSLContext] = None,
                 duplicate_window: float = 120.0, dead_letter: Optional[str] = None,
                 publish_link: bool = True,
                 codec: str = "msgpack", batch: int = 500, max_in_flight: int = 10_000,
                 ack_wait: float = 5.0, max_deliver: int = 5, redelivery_delay: float = 1.0,
                 dedup_window: int = 1_000_000, fetch_wait: float = 0.5) -> None:
        try:
            import nats  # noqa: F401
        except ImportError as exc:
            raise ImportError("NatsBridge needs nats-py: pip install 'ringbus[nats]'") from exc
        super().__init__(bus, codec=codec, batch=batch, max_in_flight=max_in_flight,
                         ack_wait=ack_wait, max_deliver=max_deliver,
                         redelivery_delay=redelivery_delay, dedup_window=dedup_window,
                         fetch_wait=fetch_wait)
        if isinstance(servers, str):
            servers = [servers]
        servers = list(servers)
        if not servers or not all(isinstance(s, str) and "://" in s for s in servers):
            raise ValueError(f"servers must be a URL (nats://host:port) or a list of them, "
                             f"got {[_redact(str(s)) for s in servers]!r}")
        if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
            raise ValueError(f"stream must be a JetStream stream name (letters, digits, '_', "
                             f"'-'), got {stream!r}")
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise TypeError(f"tls must be an ssl.SSLContext, got {type(tls).__name__}")
        for arg, value in (("user", user), ("password", password), ("token", token)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{arg} must be a str or None, got {type(value).__name__}")
        for arg, path in (("creds", creds), ("nkeys_seed", nkeys_seed)):
            if path is None:
                continue
            if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
                # The path only: the file's content is the secret.
                raise ValueError(f"{arg} must be the path of a readable file, got "
                                 f"{os.fspath(path) if isinstance(path, os.PathLike) else path!r}")
            if importlib.util.find_spec("nkeys") is None:
                # What nats-py and the lean links sign the server's nonce with.
                raise ImportError(f"{arg}= needs nkeys: pip install 'ringbus[nats]'")
        self.servers = servers
        self.stream = stream
        self._auth: Dict[str, Any] = dict(
            user=user, password=password, token=token,
            user_credentials=None if creds is None else os.fspath(creds),
            nkeys_seed=None if nkeys_seed is None else os.fspath(nkeys_seed), tls=tls)
        self.duplicate_window = float(duplicate_window)
        self.dead_letter = dead_letter or f"ringbus.dead.{stream}"
        self._nc: Any = None
        self._js: Any = None
        # The exporter's and importers' own lean connections (ringbus.bridge.natslink), with
        # the same security options; other schemes (ws://) keep nats-py's.
        self.publish_link = bool(publish_link) and all(
            s.startswith(("nats://", "tls://")) for s in servers)
        self._link: Any = None
        self._link_task: Optional["asyncio.Task[None]"] = None
        # Export through the link: a ringbus._wire.PubWindow, the frames from publish to
        # PubAck. Through nats-py: our sequence -> [id, subject, kind, data, sent_at];
        # insertion order is the first publish order, which every re-publish keeps.
        self._window: Any = None
        self._unacked: Dict[int, List[Any]] = {}
        self._seq = 0
        self._inbox = ""
        self._changed: Optional[asyncio.Event] = None
        self._resend = False
        self._readers: Dict[int, Any] = {}      # import -> its PullLink (or subscription)
        self._last_error: Optional[str] = None
        self._refused: Optional["asyncio.Future[Tuple[type, str]]"] = None
        self._errors_logged: set = set()

    def __repr__(self) -> str:
        auth = [k for k in ("user", "token", "user_credentials", "nkeys_seed", "tls")
                if self._auth.get(k)]
        return (f"<ringbus.bridge.NatsBridge servers={[_redact(s) for s in self.servers]!r} "
                f"stream={self.stream!r}{' auth=' + ','.join(auth) + '=***' if auth else ''}>")

    def import_(self, event_type: Any, subject: str,  # type: ignore[override]
                durable: str) -> Import:
        """Feed the messages of ``subject`` (wildcards allowed) into the bus as
        ``event_type`` events, through the durable pull consumer ``durable`` (made when
        missing): acked after the bus's handlers ran."""
        return super().import_(event_type, subject, durable)

    def _check_subject(self, subject: str, what: str) -> None:
        if any(c in subject for c in " \t\r\n") or ".." in subject or subject.startswith(".") \
                or subject.endswith("."):
            raise ValueError(f"{what} {subject!r} is not a NATS subject")

    def _default_subject(self) -> str:
        return f"{self.stream}.events"

    # -- connection -------------------------------------------------------------------------

    async def _connect(self) -> None:
        import nats
        self._changed = asyncio.Event()
        opts = {k: v for k, v in self._auth.items() if v is not None}
        self._last_error = None
        # Reconnects never give up (max_reconnect_attempts=-1), so the first connection is
        # bounded here instead; and a refusal that no retry mends (credentials, a
        # certificate: _on_error) ends it at once rather than at the timeout.
        self._refused = asyncio.get_running_loop().create_future()
        nc = self._nc = nats.NATS()
        attempt = asyncio.ensure_future(nc.connect(
            servers=self.servers, allow_reconnect=True, max_reconnect_attempts=-1,
            # A float is what it sleeps; typed int in nats-py.
            reconnect_time_wait=0.1,  # type: ignore[arg-type]
            connect_timeout=2, name="ringbus-bridge",
            error_cb=self._on_error, disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected, **opts))
        waiters: Set["asyncio.Future[Any]"] = {attempt, self._refused}
        try:
            await asyncio.wait(waiters, timeout=self._connect_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not attempt.done():
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
        failed = attempt.cancelled() or attempt.exception() is not None
        if not failed:
            self._refused = None
            self._js = nc.jetstream(timeout=max(2.0, self.ack_wait))
            return
        try:
            await asyncio.wait_for(nc.close(), 2.0)
        except Exception:
            pass
        servers = [_redact(u) for u in self.servers]
        if self._refused.done():
            kind, why = self._refused.result()
            raise kind(f"NATS {servers} refused the connection: {why}") from None
        exc = None if attempt.cancelled() else attempt.exception()
        why = self._last_error or (f"{type(exc).__name__}: {exc}" if exc else "no answer")
        raise ConnectionError(f"NATS {servers} did not accept the connection within "
                              f"{self._connect_timeout} s: {_redact(str(why))}") from None

    async def _disconnect(self) -> None:
        readers, self._readers = self._readers, {}
        for reader in readers.values():          # imports that never started
            if hasattr(reader, "verdicts"):
                await reader.close()
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        if self._link_task is not None:
            self._link_task.cancel()
            self._link_task = None
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                if nc.is_connected:
                    await nc.flush(timeout=2)      # the last acks
            except Exception:
                pass
            try:
                await nc.close()
            except Exception:
                pass

    async def _on_error(self, exc: Exception) -> None:
        text = _redact(str(exc)) or type(exc).__name__
        self._last_error = text
        refused = self._refused
        if refused is not None and not refused.done():
            refusal = _refusal(exc, text)
            if refusal is not None:
                refused.set_result(refusal)
                return                          # said once, by the exception
        if text not in self._errors_logged:     # once per kind of error, not per retry
            self._errors_logged.add(text)
            _log.warning("ringbus.bridge: NATS %s: %s", [_redact(s) for s in self.servers],
                         text)

    async def _on_disconnected(self) -> None:
        if self.stats_["connected"]:
            _log.warning("ringbus.bridge: disconnected from NATS %s; reconnecting",
                         [_redact(s) for s in self.servers])
        self.stats_["connected"] = False
        # What nats-py still holds to write went nowhere, and after the reconnect it would
        # be written before our re-publish of what the dead socket swallowed: a subject's
        # later message stored before its earlier one. Dropped here (a private field of
        # nats-py's client; pinned by tests/test_bridge_faults.py): every unacked export is
        # published again in order, lost acks are redelivered and dropped as duplicates, a
        # lost pull request times out and is sent again.
        nc = self._nc
        if nc is not None and isinstance(getattr(nc, "_pending", None), list):
            nc._pending = []
            nc._pending_data_size = 0

    async def _on_reconnected(self) -> None:
        self._errors_logged.clear()
        self.stats_["reconnects"] += 1
        self.stats_["connected"] = True
        _log.warning("ringbus.bridge: reconnected to NATS %s",
                     [_redact(s) for s in self.servers])
        if self._link is None:
            self._republish()

    def _link_lost(self) -> None:
        self.stats_["connected"] = False
        _log.warning("ringbus.bridge: the publish link to NATS %s broke; reconnecting",
                     [_redact(s) for s in self.servers])
        self._resend = True

    def _link_back(self) -> None:
        self.stats_["reconnects"] += 1
        self.stats_["connected"] = True
        _log.warning("ringbus.bridge: the publish link to NATS %s is back",
                     [_redact(s) for s in self.servers])
        self._republish()

    def _up(self) -> bool:
        link = self._link
        return bool(link.connected) if link is not None else bool(self._nc.is_connected)

    async def _write(self, frames: bytes) -> bool:
        """Write frames on the link; False if it is down (they wait for the re-publish
        after the reconnect)."""
        link = self._link
        if not link.connected:
            return False
        if frames:
            link.write(frames)
            await link.drain()
        return True

    async def _send(self, seqs: Any) -> bool:
        """Publish the unacknowledged messages ``seqs`` (in order) through nats-py; False if
        the connection went down first (the rest then waits for the re-publish after the
        reconnect)."""
        unacked = self._unacked
        now = time.monotonic()
        nc, inbox = self._nc, self._inbox
        for seq in seqs:
            if not nc.is_connected:
                return False
            held = unacked.get(seq)
            if held is not None:
                held[4] = now
                await nc.publish(held[1], held[3], reply=f"{inbox}{seq}",
                                 headers=_headers(held[0], held[2]))
        return True

    async def _prepare(self) -> None:
        """The stream (made, or its subjects completed), the dead-letter stream, the PubAck
        inbox."""
        subjects = [e.pattern("*") for e in self._exports.values()]
        subjects += [r.spec.pattern("*") for r in self._rings]
        subjects += [i.subject for i in self._imports]
        await self._ensure_stream(self.stream, subjects, self.duplicate_window)
        if self._imports:
            await self._ensure_stream(f"{self.stream}_dead", [self.dead_letter], 120.0)
        self._readers = {id(spec): await self._prepare_import(spec) for spec in self._imports}
        if self._exports or self._rings:
            if self.publish_link:
                from ringbus._wire import PubWindow
                from ringbus.bridge.natslink import PublishLink
                if self._window is None:
                    # One window (and inbox: its frames name it) for the bridge's life:
                    # what a stop left unacknowledged goes again, as it was, at the next run.
                    self._inbox = self._nc.new_inbox() + "."
                    self._window = PubWindow(self._inbox.encode(), ID_HEADER.encode(),
                                             CODEC_HEADER.encode())
                self._resend = len(self._window) > 0
                self._link = PublishLink(self.servers, self._inbox, window=self._window,
                                         on_ack=self._acks, on_lost=self._link_lost,
                                         on_back=self._link_back, **self._link_auth())
                await self._link.connect()
                self._link_task = asyncio.ensure_future(self._link.run())
            else:
                self._inbox = self._nc.new_inbox() + "."
                await self._nc.subscribe(self._inbox + "*", cb=self._on_puback,
                                         pending_msgs_limit=-1, pending_bytes_limit=-1)

    def _link_auth(self) -> Dict[str, Any]:
        auth = self._auth
        return dict(user=auth["user"], password=auth["password"], token=auth["token"],
                    tls=auth["tls"], creds=auth["user_credentials"],
                    nkeys_seed=auth["nkeys_seed"])

    async def _ensure_stream(self, name: str, subjects: List[str], window: float) -> None:
        from nats.js.errors import BadRequestError, NotFoundError
        js = self._js
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            try:
                await js.add_stream(name=name, subjects=_cover(subjects),
                                    duplicate_window=window)
            except BadRequestError as exc:
                if exc.err_code != 10065:       # "subjects overlap with an existing stream"
                    raise
                owners = set()
                for s in subjects:
                    try:
                        owners.add(await js.find_stream_name_by_subject(s))
                    except NotFoundError:
                        pass
                raise ValueError(f"stream {name!r} does not exist and its subjects {subjects} "
                                 f"overlap the stream(s) {sorted(owners)}: pass "
                                 f"stream={next(iter(sorted(owners)), '...')!r}") from None
            return
        have = list(info.config.subjects or [])
        if any(not any(_covers(h, s) for h in have) for s in subjects):
            config = info.config
            config.subjects = _cover(have + subjects)
            await js.update_stream(config)

    # -- export -----------------------------------------------------------------------------

    async def _export_loop(self) -> None:
        # Whatever goes wrong in one turn is logged and the exporter goes on: what it holds
        # unacknowledged is re-published (order kept), nothing is dropped.
        while True:
            try:
                await self._export_turns()
                return
            except Exception as exc:
                _log.warning("ringbus.bridge: exporter: %r; going on", exc)
                self._resend = True
                await asyncio.sleep(0.05)

    async def _export_turns(self) -> None:
        changed, wake = self._changed, self._wake
        assert changed is not None and wake is not None
        stats, up, window = self.stats_, self._up, self._window
        unacked: Any = window if window is not None else self._unacked
        watchdog = asyncio.ensure_future(self._watch_acks())
        try:
            while True:
                if self._resend and up():
                    self._resend = False
                    await self._publish_again()
                room = self.max_in_flight - len(unacked)
                if not self._outbox:
                    if self._stopping and not unacked:
                        return
                    wake.clear()
                    if not self._outbox:
                        await _either(wake, changed)
                        changed.clear()
                    continue
                if room <= 0 or not up():
                    # Acks make room; the reconnect's re-publish request sets it too.
                    changed.clear()
                    await changed.wait()
                    continue
                if window is not None:
                    # The batch framed in one compiled call (ringbus._wire).
                    failed: List[Tuple[Any, Any, Exception]] = []
                    first = window.next_seq
                    frames = window.take(self._outbox, min(self.batch, room), self._codec,
                                         self._producer, time.monotonic(), failed)
                    for spec, payload, exc in failed:
                        stats["export_errors"] += 1
                        self._report(spec.event_type, payload, exc)
                    if not frames:
                        continue
                    stats["exported"] += window.next_seq - first
                    stats["in_flight"] = len(window)
                    if not await self._write(frames):
                        self._resend = True
                    continue
                records = self._take(min(self.batch, room))
                if not records:
                    continue
                now = time.monotonic()
                first = seq = self._seq + 1
                for msg_id, subject, kind, data in records:
                    unacked[seq] = [msg_id, subject, kind, data, now]
                    seq += 1
                self._seq = seq - 1
                stats["exported"] += len(records)
                stats["in_flight"] = len(unacked)
                if not await self._send(range(first, self._seq + 1)):
                    # The rest goes with the re-publish after the reconnect, in order.
                    self._resend = True
        finally:
            watchdog.cancel()

    async def _on_puback(self, msg: Any) -> None:
        self._acked(int(msg.subject[len(self._inbox):]), msg.data)

    def _acks(self, n: int, errors: List[Tuple[int, bytes]]) -> None:
        """The PubAcks of one read of the publish link: ``n`` released from the window;
        ``errors``: refused (counted, logged, published again later). A shared ring's
        messages among them are confirmed to its ledger (ringbus.bridge.ring)."""
        for seq, data in errors:
            self._not_stored(data)
        if n:
            self._count_acks(n)
            if self._rings:
                ids = self._window.take_confirmed()
                if ids:
                    self._confirmed(ids)

    def _acked(self, seq: int, data: bytes) -> None:
        if b'"error"' in data:
            self._not_stored(data)
            return
        held = self._unacked.pop(seq, None)
        if held is None:
            return                      # the ack of a copy published again
        self._count_acks(1)
        if self._rings:
            self._confirmed([held[0]])

    def _not_stored(self, data: bytes) -> None:
        # Not stored (e.g. the stream is full, or missing): published again by the ack
        # watchdog after ack_wait.
        self.stats_["export_errors"] += 1
        _log.warning("ringbus.bridge: JetStream refused a message: %s",
                     data.decode(errors="replace"))

    def _in_flight(self) -> int:
        window = self._window
        return len(window) if window is not None else len(self._unacked)

    def _count_acks(self, n: int) -> None:
        stats = self.stats_
        stats["acked"] += n
        in_flight = stats["in_flight"] = self._in_flight()
        if stats["stalled"]:
            stats["stalled"] = False
            _log.warning("ringbus.bridge: JetStream acknowledges again (NATS %s)",
                         [_redact(s) for s in self.servers])
        changed = self._changed
        if changed is not None and not changed.is_set() and \
                in_flight <= self.max_in_flight // 2:
            changed.set()
        if len(self._outbox) + in_flight <= self.max_in_flight:
            # Whenever the bus's thread may go on (its test in _hand_over), not only at the
            # first ack past half: it would otherwise sleep out its 50 ms timeout while the
            # exporter's window runs dry.
            self._made_room()

    async def _watch_acks(self) -> None:
        """Every quarter of ack_wait: unacknowledged past ack_wait -> reported, published
        again (it and all after it, in order)."""
        while True:
            await asyncio.sleep(self.ack_wait / 4)
            window, unacked = self._window, self._unacked
            if window is not None:
                sent_at = window.oldest_sent_at
                if sent_at is None:
                    continue
            else:
                if not unacked:
                    continue
                sent_at = next(iter(unacked.values()))[4]
            waited = time.monotonic() - sent_at
            if waited < self.ack_wait:
                continue
            stats = self.stats_
            if not stats["stalled"]:
                stats["stalls"] += 1
                stats["stalled"] = True
                _log.warning("ringbus.bridge: no ack from JetStream for %.1f s (NATS %s, %d "
                             "in flight); publishing them again", waited,
                             [_redact(s) for s in self.servers], self._in_flight())
            self._republish()

    def _republish(self) -> None:
        # Done by the export loop, before anything new: one writer keeps the order.
        self._resend = True
        if self._changed is not None:
            self._changed.set()

    async def _publish_again(self) -> None:
        window = self._window
        if window is not None:
            n = len(window)
            if n and self._link is not None:
                if await self._write(window.unacked(time.monotonic())):
                    self.stats_["retried"] += n
                else:
                    self._resend = True
            return
        seqs = list(self._unacked)
        if not seqs or self._nc is None:
            return
        if await self._send(seqs):
            self.stats_["retried"] += len(seqs)
        else:
            self._resend = True

    # -- import -----------------------------------------------------------------------------

    async def _prepare_import(self, spec: Import) -> Any:
        """The durable consumer (made when missing) and what reads it: a PullLink,
        connected, or nats-py's pull subscription. Before the bridge says it is ready."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError
        config = ConsumerConfig(durable_name=spec.name, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait,
                                max_deliver=-1, filter_subject=spec.subject,
                                max_ack_pending=max(self.batch * 4, 1000))
        if not self.publish_link:
            return await self._js.pull_subscribe(spec.subject, durable=spec.name,
                                                 stream=self.stream, config=config)
        try:
            await self._js.consumer_info(self.stream, spec.name)
        except NotFoundError:
            await self._js.add_consumer(self.stream, config)
        from ringbus.bridge.natslink import PullLink
        link = PullLink(self.servers, self._nc.new_inbox() + ".", on_lost=lambda: None,
                        on_back=lambda: None, **self._link_auth())

        def back() -> None:
            # What the lost connection had delivered, unacked, is redelivered once
            # ack_wait has passed, and JetStream serves redeliveries before new
            # messages: fetching nothing until then keeps each subject's order.
            link.hold_until = time.monotonic() + self.ack_wait
        link.on_back = back
        await link.connect()
        return link

    async def _import_loop(self, spec: Import) -> None:
        link = self._readers.pop(id(spec))
        if not self.publish_link:
            await self._import_with_nats_py(spec, link)
            return
        reader = asyncio.ensure_future(link.run())
        try:
            while not self._stopping:
                wait = link.hold_until - time.monotonic()
                if not link.connected or wait > 0:
                    await asyncio.sleep(0.05 if wait <= 0 else min(wait, 0.1))
                    continue
                try:
                    # What is there now, up to a batch; when nothing is, wait for the first
                    # (a long poll of one message: a batch request would hold what comes
                    # until it filled up or expired).
                    deliveries = await link.fetch(self.stream, spec.name, self.batch, 1.0,
                                                  no_wait=True)
                    if not deliveries:
                        deliveries = await link.fetch(self.stream, spec.name, 1,
                                                      self.fetch_wait)
                    if not deliveries:
                        self.stats_["lag"] = 0
                        continue
                    if not await self._consume(spec, deliveries, link.verdicts):
                        return
                except Exception as exc:
                    # Down mid-batch (or worse): what was not acked is delivered again
                    # after ack_wait; the importer goes on.
                    _log.warning("ringbus.bridge: import from %s: %r; going on",
                                 spec.subject, exc)
                    await asyncio.sleep(0.1)
        finally:
            await link.close()
            reader.cancel()

    async def _import_with_nats_py(self, spec: Import, psub: Any) -> None:
        import nats.errors
        while not self._stopping:
            try:
                msgs = await psub.fetch(self.batch, timeout=self.fetch_wait)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                self.stats_["lag"] = 0
                continue
            except Exception as exc:
                if self._stopping:
                    return
                _log.warning("ringbus.bridge: fetch from %s failed: %r; retrying",
                             spec.subject, exc)
                await asyncio.sleep(0.1)
                continue
            if not msgs:
                continue
            deliveries = []
            for m in msgs:
                md, hdr = m.metadata, m.headers or {}
                deliveries.append(Delivery(m.subject, hdr.get(ID_HEADER), hdr.get(CODEC_HEADER),
                                           m.data, md.num_delivered, md.num_pending, m))
            if not await self._consume(spec, deliveries, self._verdicts_by_nats_py):
                return

    async def _verdicts_by_nats_py(self, verdicts: List[Tuple["Delivery", bytes]]) -> None:
        for d, verdict in verdicts:
            m = d.handle
            if verdict == ACK:
                await m.ack()
            elif verdict == TERM:
                await m.term()
            else:
                await m.nak(delay=self.redelivery_delay or None)

    async def _consume(self, spec: Import, deliveries: List["Delivery"],
                       send: Callable[[List[Tuple["Delivery", bytes]]], Awaitable[None]]
                       ) -> bool:
        """One fetched batch: duplicates and malformed messages out, the rest through the
        bus; then each message's verdict (ack, NAK with a delay, term) goes back in one go.
        False when the bridge stopped first (nothing of the rest is acked)."""
        stats, decode, t, resolve = self.stats_, self._decode, spec.event_type, spec.resolve
        stats["imported"] += len(deliveries)
        verdicts: List[Tuple[Delivery, bytes]] = []
        events: List[Tuple[int, Any]] = []
        held: List[Delivery] = []
        batch_ids = set()
        for d in deliveries:
            if d.delivered > 1:
                stats["redelivered"] += 1
            mid = d.msg_id
            if mid is not None and (mid in batch_ids or self._duplicate(mid, spec)):
                stats["duplicates_dropped"] += 1
                verdicts.append((d, ACK))
                continue
            try:
                et = t if resolve is None else _type_of(resolve, d.subject)
                payload = decode(spec, d.kind, d.data)
            except MalformedMessage as exc:
                self._malformed(spec, d.data, exc)
                if await self._to_dead_letter(d, str(exc)):
                    verdicts.append((d, TERM))
                continue
            if mid is not None:
                batch_ids.add(mid)
            events.append((et, payload))
            held.append(d)
        if deliveries:
            stats["lag"] = deliveries[-1].pending
        if events:
            results = await self._through_bus(events)
            if results is None:
                await send(verdicts)
                return False            # stopping: not acked, the engine delivers them again
            nak = NAK_AFTER(self.redelivery_delay)
            for d, ok in zip(held, results):
                if ok:
                    self._handled(d.msg_id, spec)
                    verdicts.append((d, ACK))
                    stats["acked_back"] += 1
                else:
                    stats["failed"] += 1
                    if d.delivered >= self.max_deliver:
                        if await self._to_dead_letter(d, f"a handler raised on each of "
                                                         f"{d.delivered} deliveries"):
                            verdicts.append((d, TERM))
                    else:
                        verdicts.append((d, nak))
        await send(verdicts)
        return True

    async def _to_dead_letter(self, d: "Delivery", reason: str) -> bool:
        headers = {"Ringbus-Subject": d.subject, "Ringbus-Reason": reason[:200]}
        if d.msg_id is not None:
            headers["Ringbus-Msg-Id"] = d.msg_id
        if d.kind is not None:
            headers[CODEC_HEADER] = d.kind
        try:
            await self._js.publish(self.dead_letter, d.data, headers=headers)
        except Exception as exc:
            # Not moved: left unacked, delivered again after ack_wait.
            _log.warning("ringbus.bridge: dead-letter publish failed: %r", exc)
            return False
        self.stats_["dead_lettered"] += 1
        _log.warning("ringbus.bridge: message on %s dead-lettered to %s: %s", d.subject,
                     self.dead_letter, reason)
        return True


ACK, TERM = b"+ACK", b"+TERM"


def NAK_AFTER(delay: float) -> bytes:
    """The NAK that asks for a redelivery ``delay`` seconds from now."""
    return b"-NAK" if delay <= 0 else b'-NAK {"delay": %d}' % int(delay * 1e9)


class Delivery(NamedTuple):
    """One message a pull consumer delivered: its stream subject, de-duplication id and
    codec (headers), data, delivery count, the consumer's pending count after it, and the
    handle to answer it (its ack subject, or nats-py's Msg)."""

    subject: str
    msg_id: Optional[str]
    kind: Optional[str]
    data: bytes
    delivered: int
    pending: int
    handle: Any




def _headers(msg_id: str, kind: str) -> Dict[str, str]:
    return {ID_HEADER: msg_id, CODEC_HEADER: kind}


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    if a.is_set() or b.is_set():
        return
    ta, tb = asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())
    try:
        await asyncio.wait([ta, tb], return_when=asyncio.FIRST_COMPLETED)
    finally:
        ta.cancel()
        tb.cancel()
