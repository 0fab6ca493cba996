"""RedisBridge: selected event types to Redis Streams and back (``pip install 'ringbus[redis]'``).

Out: each exported event is appended (XADD) to its stream key, with the fields ``id`` (the
de-duplication id, ``producer:sequence``), ``c`` (the codec) and ``d`` (the data); a batch
goes as one pipeline and leaves the bridge when Redis answered it. A batch that fails, or
gets no answer within ``ack_wait``, is sent again, whole and in order: Redis 7 has no
idempotent XADD, so a retry may store a copy, which the importer drops by its id.

In: a consumer group per import (made when missing, from the stream's start), read
``batch`` entries at a time with XREADGROUP; their events go through the local bus, and the
entries are acknowledged (one XACK per stream) once the bus's handlers ran. An entry whose
handler raised stays pending and is claimed again (XCLAIM) after ``redelivery_delay``; after
``max_deliver`` deliveries, or at once when it does not decode, it goes to the dead-letter
stream ``<stream>.dead``. Entries another consumer left pending longer than ``ack_wait`` (it
died) are taken over with XAUTOCLAIM.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ringbus.bridge.base import Bridge, Import
from ringbus.bridge.codec import MalformedMessage
from ringbus import patterns
from ringbus.bridge.patterns import type_of as _type_of, wildcard

__all__ = ["RedisBridge"]

_log = logging.getLogger("ringbus.bridge")


def _redact(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://***@host:6379/0``."""
    return re.sub(r"//[^@/]*@", "//***@", url)


async def _replies(stream: asyncio.StreamReader, n: int) -> Optional[str]:
    """Read ``n`` RESP replies from ``stream``: the first error's text, or None."""
    from ringbus._wire import count_replies
    buf, got, first_error = b"", 0, None
    while got < n:
        chunk = await stream.read(1 << 16)
        if not chunk:
            raise ConnectionError("Redis closed the connection")
        buf = buf + chunk if buf else chunk
        pos, k, error = count_replies(buf, 0, n - got)
        got += k
        buf = buf[pos:]
        if first_error is None:
            first_error = error
    if buf:
        raise ConnectionError(f"Redis sent more than {n} replies: {buf[:60]!r}")
    return first_error


def _pattern(subject: str) -> Optional[str]:
    """The SCAN pattern of a subject with a placeholder or wildcards; None for one key."""
    glob = re.sub(r"\{[^{}]*\}", "*", subject)
    glob = glob.replace(">", "*")
    return glob if "*" in glob else None


def _fits(subject: str) -> Callable[[bytes], bool]:
    """Whether a key SCAN found matches ``subject`` by NATS token rules, as a NATS subject
    would (a glob's ``*`` spans dots: ``md.*`` is one token here, ``md.>`` one or more)."""
    try:
        tokens = patterns.check_pattern(wildcard(re.sub(r"\{[^{}]*\}", "*", subject)),
                                        "subject")
    except ValueError:
        return lambda key: True         # not dot-separated tokens: the glob alone
    return lambda key: patterns.matches(tokens, key.decode(errors="replace"))


class RedisBridge(Bridge):
    """A bridge between ``bus`` and Redis Streams.

    >>> bridge = RedisBridge(bus, url="redis://127.0.0.1:6380/0", stream="md")
    >>> bridge.export(TICK, subject="md.tick.{sym}", key=lambda p: p["sym"])  # a stream per key
    >>> bridge.import_(ORDER, subject="orders", group="risk")
    >>> with bridge.running(): ...

    ``subject=`` is the stream key (a template gives one stream per key; an import subject
    with ``{...}``, ``*`` or ``>`` reads every matching stream, found with SCAN). ``stream``
    names the bridge: its dead-letter stream is ``<stream>.dead``, and an export without
    ``subject=`` goes to the key ``stream``. Security: ``username=``/``password=`` (AUTH, ACL
    users), ``rediss://`` URLs and ``ssl_*`` options, passed to redis-py as they are; none is
    ever printed (``***`` in the repr and the logs). ``maxlen`` trims each exported stream
    (approximately, ``MAXLEN ~``). Tuning as NatsBridge's.
    """

    _engine = "redis"

    def __init__(self, bus: Any, url: str = "redis://127.0.0.1:6379/0", stream: str = "ringbus",
                 *, maxlen: Optional[int] = None, codec: str = "msgpack", batch: int = 500,
                 max_in_flight: int = 10_000, ack_wait: float = 5.0, max_deliver: int = 5,
                 redelivery_delay: float = 1.0, dedup_window: int = 1_000_000,
                 fetch_wait: float = 0.5, **options: Any) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError as exc:
            raise ImportError("RedisBridge needs redis-py: pip install 'ringbus[redis]'") from exc
        super().__init__(bus, codec=codec, batch=batch, max_in_flight=max_in_flight,
                         ack_wait=ack_wait, max_deliver=max_deliver,
                         redelivery_delay=redelivery_delay, dedup_window=dedup_window,
                         fetch_wait=fetch_wait)
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"url must be a redis://, rediss:// or unix:// URL, got "
                             f"{_redact(str(url))!r}")
        if not isinstance(stream, str) or not stream or any(c in stream for c in " \t\r\n"):
            raise ValueError(f"stream must be a non-empty name without spaces, got {stream!r}")
        if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int)
                                   or maxlen <= 0):
            raise ValueError(f"maxlen must be None or an int > 0, got {maxlen!r}")
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.dead_letter = f"{stream}.dead"
        self._options = options
        self._r: Any = None
        self._consumer = f"ringbus-{self._producer.name}"

    def __repr__(self) -> str:
        opts = sorted(self._options)
        return (f"<ringbus.bridge.RedisBridge url={_redact(self.url)!r} stream={self.stream!r}"
                f"{' options=' + ','.join(opts) + '=***' if opts else ''}>")

    def import_(self, event_type: Any, subject: str,  # type: ignore[override]
                group: str) -> Import:
        """Feed the entries of the stream ``subject`` (or of every stream it matches) into
        the bus as ``event_type`` events, through the consumer group ``group`` (made when
        missing, reading from the stream's start): acked after the bus's handlers ran."""
        return super().import_(event_type, subject, group)

    def _default_subject(self) -> str:
        return self.stream

    def _check_subject(self, subject: str, what: str) -> None:
        if any(c in subject for c in " \t\r\n"):
            raise ValueError(f"{what} {subject!r} is not a stream key (no whitespace)")

    # -- connection -------------------------------------------------------------------------

    async def _connect(self) -> None:
        import redis.asyncio as aredis
        self._r = aredis.from_url(self.url, decode_responses=False,
                                  socket_connect_timeout=2.0, **self._options)
        try:
            await asyncio.wait_for(self._r.ping(), self._connect_timeout)
        except Exception as exc:
            import redis.exceptions as rexc
            text = f"{type(exc).__name__}: {_redact(str(exc))}"
            if isinstance(exc, (rexc.AuthenticationError, rexc.AuthorizationError,
                                rexc.NoPermissionError)) or "WRONGPASS" in text \
                    or "NOAUTH" in text:
                raise PermissionError(f"Redis at {_redact(self.url)} refused the connection: "
                                      f"{text} (check the URL's or username=/password= "
                                      f"credentials)") from None
            if "SSL" in text or "certificate" in text:
                raise ConnectionError(f"Redis at {_redact(self.url)} refused the connection: "
                                      f"TLS: {text}") from None
            if self.url.startswith("rediss:") and ("reset" in text or "closed" in text):
                # TLS 1.3: a server that rejects our certificate (or its absence) does so
                # after the client's side of the handshake, so we see only the reset.
                raise ConnectionError(f"Redis at {_redact(self.url)} refused the connection: "
                                      f"TLS: {text} (the server ended the TLS session at "
                                      f"once: check ssl_certfile=/ssl_keyfile=, the client "
                                      f"certificate it requires)") from None
            raise ConnectionError(f"Redis at {_redact(self.url)} did not answer: "
                                  f"{text}") from None

    async def _prepare(self) -> None:
        """Each fixed stream key the bridge will use (an export without a template, an
        import of one key), read once (XLEN): a key the user's ACL denies fails the start
        with a PermissionError naming it, rather than stalling the exporter or ending the
        importer later. Keys made from templates and patterns are only known later."""
        import redis.exceptions as rexc
        keys = [e.subject for e in self._exports.values()
                if e._tail is None and "{" not in e.subject]
        keys += [i.subject for i in self._imports if _pattern(i.subject) is None]
        for key in dict.fromkeys(keys):
            try:
                await self._r.xlen(key)
            except rexc.NoPermissionError as exc:
                if "key" not in str(exc):
                    continue            # XLEN itself not allowed: nothing learnt
                raise PermissionError(f"Redis at {_redact(self.url)} refused the stream key "
                                      f"{key!r}: {exc} (the user's ACL key patterns)") from None
            except rexc.ResponseError:
                pass                    # WRONGTYPE and the like: the loops report them

    async def _disconnect(self) -> None:
        r, self._r = self._r, None
        if r is not None:
            try:
                await r.aclose()
            except Exception:
                pass

    # -- export -----------------------------------------------------------------------------

    async def _export_loop(self) -> None:
        from ringbus._wire import XaddFramer
        wake, stats = self._wake, self.stats_
        assert wake is not None
        framer = XaddFramer(self.maxlen)
        while True:
            if not self._outbox:
                if self._stopping:
                    return
                wake.clear()
                if not self._outbox:
                    await wake.wait()
                continue
            # Up to 4 batches a write: one round trip and one fsync for more XADDs, framed
            # in one compiled call (ringbus._wire).
            failed: List[Tuple[Any, Any, Exception]] = []
            packed = framer.take(self._outbox, min(4 * self.batch, self.max_in_flight),
                                 self._codec, self._producer, failed)
            for spec, payload, exc in failed:
                stats["export_errors"] += 1
                self._report(spec.event_type, payload, exc)
            n = framer.count
            if not n:
                continue
            stats["exported"] += n
            stats["in_flight"] = n
            tries = 0
            while True:
                try:
                    await asyncio.wait_for(self._send(packed, n), self.ack_wait)
                    break
                except Exception as exc:
                    tries += 1
                    stats["retried"] += n
                    if not stats["stalled"]:
                        stats["stalls"] += 1
                        stats["stalled"] = True
                        stats["connected"] = False
                        _log.warning("ringbus.bridge: no ack from Redis %s for %d XADD(s) "
                                     "(%s); sending them again", _redact(self.url), n,
                                     f"{type(exc).__name__}: {_redact(str(exc))[:200]}")
                    if self._stopping and tries > 2:
                        raise
                    await asyncio.sleep(min(0.05 * tries, 0.5))
            if stats["stalled"]:
                stats["stalled"] = False
                self._answered()
            stats["acked"] += n
            stats["in_flight"] = 0
            if self._rings and framer.ids:
                self._confirmed(framer.ids)     # a shared ring's messages: to its ledger
            self._made_room()

    async def _send(self, packed: bytes, n: int) -> None:
        """One write of ``n`` packed XADDs on a connection of redis-py's pool (it made the
        connection: AUTH, TLS, database), then their ``n`` replies, read from its stream
        and counted by ringbus._wire (redis-py's parser is empty between commands: each
        reads its replies whole; its read_response per reply cost more than the XADD). A
        connection that failed or timed out mid-way is dropped, never reused with replies
        pending."""
        pool = self._r.connection_pool
        conn = await pool.get_connection()
        ok = False
        try:
            await conn.send_packed_command(packed, check_health=False)
            stream = getattr(conn, "_reader", None)
            if isinstance(stream, asyncio.StreamReader):
                first_error = await _replies(stream, n)
            else:                                   # pragma: no cover - other redis-py
                first_error = None
                for _ in range(n):
                    reply = await conn.read_response()
                    if isinstance(reply, Exception) and first_error is None:
                        first_error = str(reply)
            ok = True
            if first_error is not None:
                from redis.exceptions import ResponseError
                raise ResponseError(first_error)
        finally:
            if not ok:
                await conn.disconnect()
            await pool.release(conn)

    # -- import -----------------------------------------------------------------------------

    async def _import_loop(self, spec: Import) -> None:
        import redis.exceptions as rexc
        glob = _pattern(spec.subject)
        fits, dead = _fits(spec.subject), self.dead_letter.encode()
        keys: Set[bytes] = set() if glob else {spec.subject.encode()}
        made: Set[bytes] = set()
        denied: Set[bytes] = set()         # keys the ACL denied once (said once)
        skipped: Set[bytes] = set()        # denied at the last try: until the next scan
        group = spec.name
        retry: Dict[Tuple[bytes, bytes], float] = {}     # (key, entry id) -> due
        attempts: Dict[Tuple[bytes, bytes], int] = {}
        next_scan = next_claim = next_lag = 0.0
        # Set after a lost connection: where the re-read of our own pending entries is.
        own_pending: Optional[Dict[bytes, bytes]] = None
        stats = self.stats_
        while not self._stopping:
            try:
                now = time.monotonic()
                if glob and now >= next_scan:
                    async for k in self._r.scan_iter(match=glob, count=1000, _type="STREAM"):
                        if fits(k) and k != dead:
                            keys.add(k)
                    next_scan = now + 0.5
                    skipped.clear()         # an ACL may allow them now: tried again
                for k in keys - made - skipped:
                    try:
                        await self._r.xgroup_create(k, group, id="0", mkstream=True)
                    except rexc.NoPermissionError as exc:
                        if not glob:
                            raise           # the import's own key: said, tried again
                        # A key a pattern found that the ACL denies: left out until the
                        # next scan, said once.
                        skipped.add(k)
                        if k not in denied:
                            denied.add(k)
                            _log.warning("ringbus.bridge: Redis %s: the import of %s skips "
                                         "the stream %s: %s", _redact(self.url),
                                         spec.subject, k.decode(errors="replace"), exc)
                        continue
                    except rexc.ResponseError as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise
                    made.add(k)
                entries: List[Tuple[bytes, bytes, Dict[bytes, bytes], int]] = []
                due = [ki for ki, t in retry.items() if t <= now]
                if due:
                    for k, eid in due:
                        del retry[(k, eid)]
                        got = await self._r.xclaim(k, group, self._consumer, 0, [eid])
                        for e, fields in got:
                            attempts[(k, e)] = attempts.get((k, e), 1) + 1
                            entries.append((k, e, fields, attempts[(k, e)]))
                if now >= next_claim:
                    next_claim = now + self.ack_wait / 2
                    for k in made:
                        res = await self._r.xautoclaim(k, group, self._consumer,
                                                       int(self.ack_wait * 1000), "0-0",
                                                       count=self.batch)
                        for e, fields in res[1]:
                            if (k, e) in retry or (k, e) in attempts:
                                continue        # ours, failed: claimed when due
                            info = await self._r.xpending_range(k, group, e, e, 1)
                            n = info[0]["times_delivered"] if info else 2
                            attempts[(k, e)] = n
                            entries.append((k, e, fields, n))
                if now >= next_lag and made:
                    next_lag = now + 1.0
                    stats["lag"] = await self._lag(made, group)
                if not entries and made and own_pending is not None:
                    # After a lost connection: this consumer's own pending entries first,
                    # in order (one whose reply the connection lost would otherwise come
                    # back by XAUTOCLAIM behind later entries of its key). Keys found
                    # after the loss too (it may have come before the first SCAN).
                    for k in made:
                        own_pending.setdefault(k, b"0-0")
                    resp = await self._r.xreadgroup(group, self._consumer, own_pending,
                                                    count=self.batch)
                    found = False
                    for k, items in resp or ():
                        for e, fields in items:
                            found = True
                            own_pending[k] = e
                            if (k, e) in retry or not fields:
                                continue        # ours, failed, claimed when due; deleted
                            n = attempts[(k, e)] = attempts.get((k, e), 1) + 1
                            entries.append((k, e, fields, n))
                    if not found:
                        own_pending = None
                elif not entries and made:
                    resp = await self._r.xreadgroup(
                        group, self._consumer, {k: ">" for k in made}, count=self.batch,
                        block=int(self.fetch_wait * 1000))
                    for k, items in resp or ():
                        for e, fields in items:
                            attempts[(k, e)] = 1
                            entries.append((k, e, fields, 1))
                elif not made:
                    await asyncio.sleep(self.fetch_wait)
                    continue
                if not stats["connected"]:
                    self._answered()
                if entries:
                    await self._handle(spec, entries, retry, attempts)
                else:
                    next_lag = 0.0          # idle: the lag is worth a look now
            except (rexc.ConnectionError, rexc.TimeoutError, asyncio.TimeoutError, OSError) as exc:
                if self._stopping:
                    return
                stats["connected"] = False
                own_pending = {k: b"0-0" for k in made}
                _log.warning("ringbus.bridge: Redis %s: read failed (%s); retrying",
                             _redact(self.url), type(exc).__name__)
                await asyncio.sleep(0.1)
            except rexc.ResponseError as exc:
                # Refused by Redis (NOPERM after an ACL change, a key of another type...):
                # said, and tried again; the importer does not end (what it had not acked
                # is delivered again).
                if self._stopping:
                    return
                _log.warning("ringbus.bridge: Redis %s: import of %s: %s: %s; retrying",
                             _redact(self.url), spec.subject, type(exc).__name__,
                             _redact(str(exc))[:200])
                await asyncio.sleep(0.5)

    def _answered(self) -> None:
        """Redis answers again after a lost connection (the exporter's or an importer's,
        whichever notices first): counted once."""
        stats = self.stats_
        if not stats["connected"]:
            stats["connected"] = True
            stats["reconnects"] += 1
            _log.warning("ringbus.bridge: Redis %s answers again", _redact(self.url))

    async def _lag(self, keys: Set[bytes], group: str) -> int:
        lag = 0
        for k in keys:
            for g in await self._r.xinfo_groups(k):
                if g.get("name") in (group, group.encode()):
                    lag += int(g.get("lag") or 0)
        return lag

    async def _handle(self, spec: Import, entries: List[Tuple[bytes, bytes, Dict[bytes, bytes], int]],
                      retry: Dict[Tuple[bytes, bytes], float],
                      attempts: Dict[Tuple[bytes, bytes], int]) -> None:
        stats, t, resolve = self.stats_, spec.event_type, spec.resolve
        stats["imported"] += len(entries)
        ack: Dict[bytes, List[bytes]] = {}
        events: List[Tuple[int, Any]] = []
        held: List[Tuple[bytes, bytes, Optional[str], int, Dict[bytes, bytes]]] = []
        batch_ids: Set[str] = set()
        for k, e, fields, n in entries:
            if n > 1:
                stats["redelivered"] += 1
            raw_id = fields.get(b"id")
            mid = raw_id.decode(errors="replace") if raw_id is not None else None
            if mid is not None and (mid in batch_ids or self._duplicate(mid, spec)):
                stats["duplicates_dropped"] += 1
                ack.setdefault(k, []).append(e)
                attempts.pop((k, e), None)
                continue
            kind = fields.get(b"c")
            data = fields.get(b"d")
            if data is None and len(fields) == 1:
                data = next(iter(fields.values()))      # another producer's one field
            try:
                et = t if resolve is None else _type_of(resolve, k.decode(errors="replace"))
                payload = self._decode(spec, kind.decode() if kind else None, data)
            except (MalformedMessage, UnicodeDecodeError) as exc:
                self._malformed(spec, fields, exc)
                await self._to_dead_letter(k, e, fields, str(exc), spec.name)
                attempts.pop((k, e), None)
                continue
            if mid is not None:
                batch_ids.add(mid)
            events.append((et, payload))
            held.append((k, e, mid, n, fields))
        results: List[bool] = []
        if events:
            ran = await self._through_bus(events)
            if ran is None:
                held = []               # stopping: left pending, claimed again later
            else:
                results = ran
        now = time.monotonic()
        for (k, e, mid, n, fields), ok in zip(held, results):
            if ok:
                self._handled(mid, spec)
                ack.setdefault(k, []).append(e)
                attempts.pop((k, e), None)
                stats["acked_back"] += 1
            else:
                stats["failed"] += 1
                if n >= self.max_deliver:
                    await self._to_dead_letter(k, e, fields,
                                               f"a handler raised on each of {n} deliveries",
                                               spec.name)
                    attempts.pop((k, e), None)
                else:
                    retry[(k, e)] = now + self.redelivery_delay
        if ack:
            pipe = self._r.pipeline(transaction=False)
            for k, ids in ack.items():
                pipe.xack(k, spec.name, *ids)
            await pipe.execute()

    async def _to_dead_letter(self, key: bytes, entry: bytes, fields: Dict[bytes, bytes],
                              reason: str, group: str) -> None:
        dead = dict(fields)
        dead.update({b"stream": key, b"entry": entry, b"reason": reason[:200].encode()})
        pipe = self._r.pipeline(transaction=True)       # moved, or not at all
        pipe.xadd(self.dead_letter, dead)
        pipe.xack(key, group, entry)
        await pipe.execute()
        self.stats_["dead_lettered"] += 1
        _log.warning("ringbus.bridge: entry %s of %s dead-lettered to %s: %s",
                     entry.decode(), key.decode(errors="replace"), self.dead_letter, reason)

