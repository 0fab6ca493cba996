"""A shared ring drained into the engine by a bridge (``Bridge.export_ring``), committed
only as far as the engine acknowledged.

The ring's messages are polled without committing them (``MessageRing.poll``): their slots
stay the ring's, so a bridge process killed at any moment leaves every message the engine
had not acknowledged in the segment, and the next bridge polls them again from the
committed sequence. Each message's de-duplication id is the ring's identity (its name,
creator and a nonce drawn when it was made) and its sequence in the ring: the same message
has the same id in every bridge process, so what the dead one had already stored is dropped
as a duplicate (JetStream's ``Nats-Msg-Id`` window; the importer's ids for Redis), and a
ring made again under the same name never has its messages taken for the old one's.

Threads. A reader thread polls (waiting without the GIL), reads each message's key, encodes
it for the engine and hands the batch to the bridge's outbox, ready to publish; the ledger
keeps their ids in ring order. The engine's acknowledgements arrive on the bridge's loop,
which marks them and commits the contiguous acknowledged prefix: an acknowledgement that
overtakes an earlier one waits for it. At most ``max_in_flight`` messages are polled and not
yet committed.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Deque, Iterable, List, Optional, Set, Tuple

from ringbus.bridge.base import READY, Export, Key

__all__ = ["RingExport"]

_log = logging.getLogger("ringbus.bridge")


class RingExport:
    """One ``MessageRing`` drained into the engine by a bridge; made by
    :meth:`Bridge.export_ring`. ``ring`` is its handle, ``stats()`` its counters,
    ``failure`` what ended its reader (the bridge stopped then)."""

    def __init__(self, bridge: Any, ring: Any, subject: str, key: Key, owned: bool) -> None:
        self.ring = ring
        self.spec = Export(-1, subject, key)
        self._bridge = bridge
        self._owned = owned                 # attached by name here: closed with the bridge
        self._prefix = ring.identity + ":"
        codec = ring.codec
        self._ring_decode = None if codec is None else codec.decode
        # msgspec's MessagePack in the ring is the bridge's msgpack on the wire: passed as
        # it is (decoded only for its key).
        self._as_is = (getattr(codec, "name", None) == "msgspec"
                       and bridge._codec.name == "msgpack")
        if codec is None and self.spec._tail is not None and not callable(self.spec.key):
            raise TypeError(f"ring {ring.shared!r} holds bytes (no codec): a subject with a "
                            f"placeholder needs key= a callable of the bytes, got "
                            f"{self.spec.key!r}")
        # The ledger: (id, sequence) in ring order, polled and not yet committed; and the
        # ids the engine acknowledged among them. The reader appends, the loop pops
        # (a deque's append and popleft are atomic, whichever threads call them).
        self._order: Deque[Tuple[str, int]] = collections.deque()
        self._acked: Set[str] = set()
        self._room = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None
        self._reading = False
        self.polled = 0
        self.committed_messages = 0
        self.errors = 0
        # What ended the reader thread (the bridge stopped then), else None.
        self.failure: Optional[BaseException] = None

    # -- the reader thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start polling, from the committed sequence: what an earlier run of this bridge
        polled and the engine did not acknowledge comes again, with the same ids. The
        consumer lease is taken here, on the bridge's loop: a ring another live process
        consumes fails the bridge's start, not its reader later."""
        self._order.clear()
        self._acked.clear()
        self.ring.rewind()
        self.failure = None
        self._reading = True
        self._thread = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"ringbus-bridge-ring-{self.ring.shared}")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (what was polled is still published and acknowledged)."""
        self._reading = False
        with self._room:
            self._room.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _read_loop(self) -> None:
        bridge, ring, order = self._bridge, self.ring, self._order
        outbox, hand_over = bridge._outbox, bridge._hand_over
        limit = bridge.max_in_flight
        try:
            while self._reading and not bridge._stopping:
                room = limit - len(order)
                if room <= 0:
                    with self._room:
                        if limit - len(order) <= 0 and self._reading:
                            self._room.wait(0.05)
                    continue
                got = ring.poll(min(bridge.batch, room), 0.05)
                if not got:
                    continue
                ready = self._ready(got)
                if not self._reading:
                    return                  # polled, never sent: polled again next start
                outbox.extend(ready)
                self.polled += len(got)
                hand_over()
        except BaseException as exc:        # noqa: BLE001 - reported, and the bridge stops
            # A bridge that cannot read its ring would only look alive: it stops, and
            # what it polled and was not acknowledged stays in the ring for the next one.
            self.failure = exc
            _log.error("ringbus.bridge: reading ring %r failed: %r; stopping the bridge",
                       ring.shared, exc, exc_info=exc)
            bridge.stop()

    def _ready(self, got: List[Tuple[int, bytes]]) -> List[Tuple[Any, Tuple[str, str, str, bytes]]]:
        """Each message as a record to publish: (READY, (id, subject, kind, data)); its id
        enters the ledger. One that cannot be carried (no key, no encoding) is logged,
        counted in ``export_errors`` and committed with the rest: it would fail again."""
        spec, prefix, order = self.spec, self._prefix, self._order
        fixed = spec._tail is None
        decode, as_is = self._ring_decode, self._as_is
        encode = self._bridge._codec.encode
        out = []
        for seq, data in got:
            msg_id = f"{prefix}{seq}"
            try:
                if decode is None:
                    subject = spec._head if fixed else spec.subject_of(data)
                    kind, body = "bytes", data
                elif as_is:
                    subject = spec._head if fixed else spec.subject_of(decode(data))
                    kind, body = "msgpack", data
                else:
                    payload = decode(data)
                    subject = spec._head if fixed else spec.subject_of(payload)
                    kind, body = encode(payload)
            except Exception as exc:
                self.errors += 1
                self._bridge.stats_["export_errors"] += 1
                _log.error("ringbus.bridge: message %s of ring %r not carried: %r", seq,
                           self.ring.shared, exc)
                order.append((msg_id, seq))
                self._acked.add(msg_id)
                continue
            order.append((msg_id, seq))
            out.append((READY, (msg_id, subject, kind, body)))
        return out

    # -- acknowledgements (the bridge's loop) -------------------------------------------------

    def acked(self, ids: Iterable[str]) -> None:
        """The engine acknowledged ``ids`` (any of the bridge's): commit the ring up to the
        last message before the first one still unacknowledged."""
        prefix, mark = self._prefix, self._acked.add
        for msg_id in ids:
            if msg_id.startswith(prefix):
                mark(msg_id)
        self.advance()

    def advance(self) -> None:
        order, acked = self._order, self._acked
        last = -1
        while order and order[0][0] in acked:
            msg_id, last = order.popleft()
            acked.discard(msg_id)
        if last >= 0:
            self.committed_messages += self.ring.commit(last)
            with self._room:
                self._room.notify_all()

    @property
    def pending(self) -> int:
        return len(self._order)

    def stats(self) -> dict:
        """``polled`` (taken from the ring), ``committed`` (released in the ring after the
        engine's ack), ``pending`` (polled, not yet acknowledged up to them), ``errors``
        (not carried: logged), ``sequence`` (the ring's committed sequence)."""
        return {"polled": self.polled, "committed": self.committed_messages,
                "pending": len(self._order), "errors": self.errors,
                "sequence": self.ring.committed}

    def close(self) -> None:
        self.stop()
        if self._owned:
            self.ring.close()
