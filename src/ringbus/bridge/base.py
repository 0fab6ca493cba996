"""What every bridge does, whatever the engine: the outbox that drains exported event types
from the bus, the inbox that publishes imported messages into it and reports when the local
handlers ran, the de-duplication of what an engine delivers again, the bridge's own thread
and loop, and the counters. ``ringbus.bridge.nats`` and ``ringbus.bridge.redis`` add the
engine: how a batch is published and acknowledged, how one is fetched and acked back.

Threads. Exported events are handed over by the thread that dispatches them (the bus's
consumer, or ``emit``'s caller): a handler appends to a deque, and at the end of the
dispatch batch one wake-up reaches the bridge's loop. Everything that touches the network
runs on that loop. Imported messages go into the bus as one event per fetched batch (a
*carrier*), whose handler, on the bus's consumer, emits each message's event in turn and
notes whether a handler raised; the loop acks after that, never before.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import string
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple, Union

from ringbus.bridge.codec import Codec, MalformedMessage, Producer

# The outbox's mark of a ring's message made ready to publish (ringbus.bridge.ring).
READY: Any = object()

__all__ = ["Bridge", "Export", "Import"]

_log = logging.getLogger("ringbus.bridge")
_carrier_names = itertools.count(1)
_bridge_numbers = itertools.count(1)

Key = Union[None, str, Callable[[Any], Any]]


def _positive(name: str, value: Any, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise TypeError(f"{name} must be a{'n int' if kind is int else ' number'} > 0, "
                        f"got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


class Export:
    """One exported event type: where its events go (a subject or stream key, a template
    filled with the event's key: ``"md.tick.{sym}"``) and how its key is read."""

    __slots__ = ("event_type", "subject", "key", "_head", "_tail")

    def __init__(self, event_type: int, subject: str, key: Key) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(subject) if f is not None]
        if len(fields) > 1:
            raise ValueError(f"subject {subject!r} has {len(fields)} placeholders; one key "
                             f"fills at most one")
        if key is not None and not callable(key) and not isinstance(key, str):
            raise TypeError(f"key must be None, a field name (str) or a callable, got {key!r}")
        self.event_type = event_type
        self.subject = subject
        self.key: Key = key
        self._tail: Optional[str] = None
        self._head = subject
        for head, field, _, _ in string.Formatter().parse(subject):
            if field is not None:
                self._head = head
                self._tail = subject[len(head) + len(field) + 2:]
                if key is None:
                    self.key = field    # without key=, the placeholder names the field
                break

    def subject_of(self, payload: Any) -> str:
        if self._tail is None:
            return self._head
        key = self.key
        value = key(payload) if callable(key) else payload[key]
        text = value if isinstance(value, str) else str(value)
        if not text or any(c in text for c in " .*>\t\r\n"):
            raise ValueError(f"key {value!r} cannot be one token of subject {self.subject!r} "
                             f"(no empty key, no '.', '*', '>' or whitespace)")
        return f"{self._head}{text}{self._tail}"

    def pattern(self, any_token: str) -> str:
        """The subject with its placeholder as a wildcard (``*`` for both engines)."""
        return self._head if self._tail is None else f"{self._head}{any_token}{self._tail}"


class Import:
    """One imported subject (or stream key): the event type its messages become on the bus,
    and the durable consumer / consumer group that remembers what was acked. ``resolve``:
    for a subject with ``{type}``, each message's event type from its subject
    (ringbus.bridge.patterns.TypeFromSubject); ``event_type`` is then the bridge's carrier,
    under which what cannot be imported is reported."""

    __slots__ = ("event_type", "subject", "name", "task", "resolve", "seen")

    def __init__(self, event_type: int, subject: str, name: str,
                 resolve: Optional[Callable[[str], Optional[int]]] = None) -> None:
        self.event_type = event_type
        self.subject = subject
        self.name = name
        self.task: Optional[asyncio.Task[None]] = None
        self.resolve = resolve
        self.seen: Dict[str, None] = {}     # ids handled, oldest first (bounded)


class _Job:
    """One imported batch on its way through the bus: what the carrier's handler emits and
    what it found (True: the handlers ran without raising; False: one raised)."""

    __slots__ = ("events", "results", "loop", "future")

    def __init__(self, events: List[Tuple[int, Any]], loop: asyncio.AbstractEventLoop,
                 future: "asyncio.Future[None]") -> None:
        self.events = events
        self.results: List[bool] = []
        self.loop = loop
        self.future = future


def _set_done(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


class Bridge(ABC):
    """The engine-independent part of NatsBridge and RedisBridge (see their docs)."""

    _engine = "engine"

    def __init__(self, bus: Any, *, codec: str = "msgpack", batch: int = 500,
                 max_in_flight: int = 10_000, ack_wait: float = 5.0, max_deliver: int = 5,
                 redelivery_delay: float = 1.0, dedup_window: int = 1_000_000,
                 fetch_wait: float = 0.5) -> None:
        from ringbus import Bus
        if not isinstance(bus, Bus):
            raise TypeError(f"bus must be a ringbus.Bus, got {bus!r}")
        self._bus: Any = bus            # its private hooks (_add_closer, ...) are not typed
        self._codec = Codec(codec)
        self.batch = _positive("batch", batch, int)
        self.max_in_flight = _positive("max_in_flight", max_in_flight, int)
        self.ack_wait = _positive("ack_wait", ack_wait)
        self.max_deliver = _positive("max_deliver", max_deliver, int)
        if isinstance(redelivery_delay, bool) or not isinstance(redelivery_delay, (int, float)) \
                or redelivery_delay < 0:
            raise ValueError(f"redelivery_delay must be a number >= 0, got {redelivery_delay!r}")
        self.redelivery_delay = float(redelivery_delay)
        self.dedup_window = _positive("dedup_window", dedup_window, int)
        self.fetch_wait = _positive("fetch_wait", fetch_wait)
        self._producer = Producer()
        # Names its subscriptions on the bus: "nats-bridge-1:md.tick.{sym}".
        self._name = f"{self._engine}-bridge-{next(_bridge_numbers)}"
        # By event type; a topic pattern's export (PatternExport) by its pattern.
        self._exports: Dict[Any, Export] = {}
        self._rings: List[Any] = []         # RingExport (ringbus.bridge.ring)
        self._imports: List[Import] = []
        # Handed over by the bus's dispatching thread(s); drained by the loop. A deque: its
        # append and popleft are atomic, whichever threads call them.
        self._outbox: Deque[Tuple[Export, Any]] = collections.deque()
        self._room = threading.Condition(threading.Lock())
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread: Optional[int] = None
        self._wake: Optional[asyncio.Event] = None
        self._stopping = False
        self._running = False
        self._thread: Optional[threading.Thread] = None
        self._seen: Dict[str, None] = {}            # ids handled, oldest first (bounded)
        self._carrier: Optional[int] = None
        self._closer_added = False
        self._connecting: Optional[asyncio.Task[Any]] = None
        self._batch_end_added = False
        self.stats_: Dict[str, Any] = dict(
            exported=0, acked=0, in_flight=0, retried=0, imported=0, acked_back=0,
            redelivered=0, duplicates_dropped=0, dead_lettered=0, lag=0, failed=0,
            malformed=0, export_errors=0, stalls=0, stalled=False, reconnects=0,
            connected=False)

    # -- registration ---------------------------------------------------------------------

    def export(self, event_type: Any, subject: Optional[str] = None, key: Key = None) -> Export:
        """Carry ``event_type``'s events to the engine: each is published to ``subject``
        (a template like ``"md.tick.{sym}"`` takes the event's key: ``key=`` a callable or
        a field name; without ``key=`` the placeholder names the field). One subject (or
        stream) per key keeps each key's events in order.

        ``event_type`` may be a topic pattern (``"md.*"``, ``"md.>"``): every event type
        whose name matches, now or registered later, is exported (a type also exported on
        its own goes by its own export). ``{type}`` in ``subject`` is the event type's
        name (``subject="bus.{type}.{sym}"``); see ringbus.bridge.patterns."""
        from ringbus.bridge.patterns import SKIP, PatternExport, export_pattern, fill_type
        from ringbus.patterns import is_pattern
        bus = self._bus
        self._not_running("export")
        if subject is None:
            subject = self._default_subject()
        if not isinstance(subject, str) or not subject:
            raise TypeError(f"subject must be a non-empty str, got {subject!r}")
        if isinstance(event_type, str) and is_pattern(event_type):
            return export_pattern(self, PatternExport(event_type, subject, key))
        t = bus.event_type(event_type) if isinstance(event_type, str) else \
            bus._registry._known(event_type, "event_type")
        if t in self._exports:
            raise ValueError(f"event type {t} ({bus.event_name(t)!r}) is exported already")
        spec = Export(t, fill_type(subject, bus.event_name(t), t), key)
        for other in self._exports.values():
            if isinstance(other, PatternExport) and other.matches(bus.event_name(t)):
                other.specs[t] = SKIP           # exported on its own: not by the pattern
        self._check_subject(spec.pattern("x"), "subject")
        self._exports[t] = spec
        outbox, room, ring = self._outbox, self._room, bus.ring

        def export_event(payload: Any) -> None:
            outbox.append((spec, payload))
            if not ring._in_batch():
                self._hand_over()       # emit's thread: no batch end will come
        export_event.__qualname__ = f"{type(self).__name__}.export[{subject}]"
        bus.subscribe(t, export_event, name=f"{self._name}:{subject}", weak=False)
        if not self._batch_end_added:
            ring._add_batch_end(self._hand_over)
            self._batch_end_added = True
        self._add_closer()
        return spec

    def export_ring(self, ring: Any, subject: Optional[str] = None, key: Key = None) -> Any:
        """Carry the messages of a ``MessageRing`` (a handle, or the name of a shared one,
        attached here) to the engine, as ``export`` carries events, committing the ring's
        consumer sequence only as far as the engine acknowledged: a bridge process killed
        at any moment loses none of them; the next one resumes from the committed sequence,
        and their ids (the ring's identity and sequence) make the copies it publishes again
        duplicates. The messages decoded by the ring's codec give the key; bytes (no codec)
        are published as they are. Returns the ``RingExport`` (its ``stats()``). See
        ``ringbus.bridge.ring``."""
        from ringbus import MessageRing
        from ringbus.bridge.ring import RingExport
        self._not_running("export_ring")
        if subject is None:
            subject = self._default_subject()
        if not isinstance(subject, str) or not subject:
            raise TypeError(f"subject must be a non-empty str, got {subject!r}")
        owned = isinstance(ring, str)
        if owned:
            ring = MessageRing.attach(ring)
        elif not isinstance(ring, MessageRing):
            raise TypeError(f"ring must be a ringbus.MessageRing or the name of a shared one, "
                            f"got {type(ring).__name__}")
        try:
            if any(r.ring is ring or (ring.shared is not None and r.ring.shared == ring.shared)
                   for r in self._rings):
                raise ValueError(f"ring {ring.shared or ring!r} is exported already")
            if ring.handlers or ring.started:
                raise ValueError(f"ring {ring.shared or ring!r} is consumed by handlers: a "
                                 f"bridge polls it (MessageRing.poll), on a handle of its own")
            export = RingExport(self, ring, subject, key, owned)
            self._check_subject(export.spec.pattern("x"), "subject")
        except BaseException:
            if owned:
                ring.close()
            raise
        self._rings.append(export)
        self._add_closer()
        return export

    def import_(self, event_type: Any, subject: str, name: str) -> Import:
        bus = self._bus
        self._not_running("import_")
        if not isinstance(subject, str) or not subject:
            raise TypeError(f"subject must be a non-empty str, got {subject!r}")
        if not isinstance(name, str) or not name or any(c in name for c in " .*>\t"):
            raise ValueError(f"the durable/group name must be a non-empty str without "
                             f"spaces, '.', '*' or '>', got {name!r}")
        from ringbus.bridge.patterns import TYPE, TypeFromSubject
        from ringbus.patterns import is_pattern
        pattern = isinstance(event_type, str) and is_pattern(event_type)
        resolve = None
        if TYPE in subject or pattern:
            if not pattern:
                raise ValueError(f"subject {subject!r} names each message's event type "
                                 f"({TYPE}): event_type must be the topic pattern those "
                                 f"names match ('md.*', '>'), got {event_type!r}")
            if TYPE not in subject:
                raise ValueError(f"event_type {event_type!r} is a topic pattern: subject "
                                 f"must say where the name is ({TYPE}), got {subject!r}")
            resolve = TypeFromSubject(bus, event_type, subject)
            subject = resolve.subject()
        self._check_subject(subject, "subject")
        if resolve is None:
            t = bus.event_type(event_type) if isinstance(event_type, str) else \
                bus._registry._known(event_type, "event_type")
        if self._carrier is None:
            self._carrier = bus.event_type(f"ringbus.bridge.{next(_carrier_names)}.in")
            bus.subscribe(self._carrier, self._deliver, name=f"{self._name}:import", weak=False)
        if resolve is not None:
            t = self._carrier
        spec = Import(t, subject, name, resolve)
        self._imports.append(spec)
        self._add_closer()
        return spec

    def _not_running(self, what: str) -> None:
        # The streams, consumers and groups are made when the bridge starts.
        if self._running:
            raise RuntimeError(f"{what}() on a running bridge: call it before running() / "
                               f"run()")

    def _add_closer(self) -> None:
        if not self._closer_added:
            self._bus._add_closer(self._close_with_bus)
            self._closer_added = True

    def _default_subject(self) -> str:
        raise TypeError("subject= is required")

    def _check_subject(self, subject: str, what: str) -> None:
        pass

    # -- the outbox (any thread -> the loop) -----------------------------------------------

    def _hand_over(self) -> None:
        """End of a dispatch batch: wake the loop once; past ``max_in_flight`` events not
        yet acknowledged, wait for room (back-pressure into the ring), unless this is the
        loop's own thread (it makes the room)."""
        if not self._outbox:
            return
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return                      # not running: the events wait in the outbox
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            return                      # the loop closed meanwhile
        if threading.get_ident() == self._loop_thread:
            return
        limit = self.max_in_flight
        if len(self._outbox) + self.stats_["in_flight"] > limit:
            with self._room:
                while (self._running and not self._stopping
                       and len(self._outbox) + self.stats_["in_flight"] > limit):
                    self._room.wait(0.05)

    def _made_room(self) -> None:
        with self._room:
            self._room.notify_all()

    def _take(self, n: int) -> List[Tuple[str, str, str, bytes]]:
        """Up to n outbox events, encoded: (id, subject, kind, data). One that cannot be
        encoded (or has no subject) goes to the bus's error policy, counted."""
        out: List[Tuple[str, str, str, bytes]] = []
        outbox = self._outbox
        popleft, append = outbox.popleft, out.append
        encode, next_id = self._codec.encode, self._producer.next_id
        for _ in range(min(n, len(outbox))):
            spec, payload = popleft()
            if spec is READY:
                append(payload)         # a ring's message, made ready by its reader
                continue
            try:
                # The common cases inline: one subject, bytes passed through.
                subject = spec._head if spec._tail is None else spec.subject_of(payload)
                if type(payload) is bytes:
                    kind, data = "bytes", payload
                else:
                    kind, data = encode(payload)
            except Exception as exc:
                self.stats_["export_errors"] += 1
                self._report(spec.event_type, payload, exc)
                continue
            append((next_id(), subject, kind, data))
        return out

    def _report(self, event_type: int, payload: Any, exc: Exception) -> None:
        """An event this bridge could not carry: the bus's error policy, as a handler's
        exception (the subscription: the bridge's own)."""
        bus = self._bus
        subs = [s for s in bus.subscriptions(event_type)
                if s.name and s.name.startswith(self._name + ":")]
        sub = subs[0] if subs else None
        try:
            err = bus._handler_error(event_type, payload, sub, exc)
        except Exception:               # a policy that raised: still not silent
            _log.exception("ringbus.bridge: the error policy failed")
            return
        if err is not None:
            # on_error="raise": nothing to raise into on the bridge's loop; logged instead.
            _log.error("ringbus.bridge: %s event of type %s not carried: %r", self._engine,
                       event_type, exc)

    def _confirmed(self, ids: List[str]) -> None:
        """The engine acknowledged the records ``ids``: the rings' commits follow."""
        for ring in self._rings:
            ring.acked(ids)

    # -- the inbox (the loop -> the bus's consumer -> the loop) --------------------------------

    def _deliver(self, job: _Job) -> None:
        """The carrier's handler, on the bus's consumer: each imported event's handlers,
        then the loop is told (acks follow there)."""
        bus = self._bus
        emit, counters, results = bus.emit, bus._counters, job.results
        try:
            for t, payload in job.events:
                before = counters()["handler_errors"]
                try:
                    emit(t, payload)
                except Exception:
                    results.append(False)   # on_error="raise": the handlers ran, one raised
                    continue
                results.append(counters()["handler_errors"] == before)
        finally:
            try:
                job.loop.call_soon_threadsafe(_set_done, job.future)
            except RuntimeError:
                pass                    # the bridge's loop is gone: nothing will be acked

    async def _through_bus(self, events: List[Tuple[int, Any]]) -> Optional[List[bool]]:
        """Publish one carrier with ``events``; wait until the bus's consumer ran them.
        None when the bridge stops first (nothing is acked then: the engine redelivers)."""
        loop = asyncio.get_running_loop()
        job = _Job(events, loop, loop.create_future())
        bus, carrier = self._bus, self._carrier
        assert carrier is not None
        while not bus.try_publish(carrier, job):
            # The ring is full: no more fetching until there is room.
            if self._stopping:
                return None
            await asyncio.sleep(0.001)
        stop_waiter: "asyncio.Future[Any]" = loop.create_task(self._stopped.wait())
        try:
            await asyncio.wait({job.future, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_waiter.cancel()
        if not job.future.done():
            # Stopping: give the bus's consumer a moment to finish what it holds.
            try:
                await asyncio.wait_for(asyncio.shield(job.future), self._grace)
            except asyncio.TimeoutError:
                return None
        return job.results

    def _duplicate(self, msg_id: Optional[str], spec: Optional[Import] = None) -> bool:
        # Per import: two imports whose subjects overlap each get the message once.
        seen = self._seen if spec is None else spec.seen
        return msg_id is not None and msg_id in seen

    def _handled(self, msg_id: Optional[str], spec: Optional[Import] = None) -> None:
        if msg_id is None:
            return
        seen = self._seen if spec is None else spec.seen
        seen[msg_id] = None
        if len(seen) > self.dedup_window:
            del seen[next(iter(seen))]

    def _decode(self, spec: Import, kind: Optional[str], data: Any) -> Any:
        if data is None:
            raise MalformedMessage("the message has no data")
        return self._codec.decode(kind, data)

    def _malformed(self, spec: Import, data: Any, exc: Exception) -> None:
        self.stats_["malformed"] += 1
        self._report(spec.event_type, data, exc)

    # -- the engine's part --------------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Connect to the engine (the first connection is bounded)."""

    async def _prepare(self) -> None:
        """Make what is missing: streams, consumers, groups."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close what _connect opened."""

    @abstractmethod
    async def _export_loop(self) -> None:
        """Publish what the exports drained, until cancelled."""

    @abstractmethod
    async def _import_loop(self, spec: Import) -> None:
        """Fetch ``spec``'s messages into the bus, until cancelled."""

    # -- running ----------------------------------------------------------------------------

    _grace = 2.0

    async def run(self) -> None:
        """Run the bridge on the running loop until cancelled (or :meth:`stop`): connect,
        create what is missing (streams, consumers, groups), then export and import."""
        if self._running:
            raise RuntimeError(f"{self!r} is running already")
        if not self._exports and not self._imports and not self._rings:
            raise RuntimeError("nothing to bridge: call export(), export_ring() or import_() "
                               "first")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._running = True
        self._connecting = asyncio.current_task()
        tasks: List[asyncio.Task[None]] = []
        try:
            await self._connect()
            await self._prepare()
            self._connecting = None
            self.stats_["connected"] = True
            if self._exports or self._rings:
                tasks.append(asyncio.ensure_future(self._export_loop()))
            for ring in self._rings:
                ring.start()
            for spec in self._imports:
                tasks.append(asyncio.ensure_future(self._import_loop(spec)))
            self._ready()
            await self._stopped.wait()
            # Stop: the rings' readers first (no more polled), then the exporter sends what
            # is in the outbox and waits for its acks; the importers finish the batch in hand.
            for ring in self._rings:
                await asyncio.get_running_loop().run_in_executor(None, ring.stop)
            self._wake.set()
            done, pending = await asyncio.wait(tasks, timeout=self._stop_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for ring in self._rings:
                ring.stop()
            for task in tasks:
                task.cancel()
            self._running = False
            self.stats_["connected"] = False
            self._made_room()
            try:
                await self._disconnect()
            finally:
                self._loop = None
                self._wake = None

    def _ready(self) -> None:
        pass

    _stop_timeout: Optional[float] = 10.0
    _connect_timeout = 10.0

    def stop(self) -> None:
        """Ask :meth:`run` to finish: the outbox is published and acknowledged (within the
        stop timeout), the import batch in hand completes; then it disconnects."""
        loop = self._loop
        if loop is None:
            return
        self._stopping = True
        self._made_room()
        try:
            if self._connecting is not None:
                loop.call_soon_threadsafe(self._connecting.cancel)
            else:
                loop.call_soon_threadsafe(self._stopped.set)
        except RuntimeError:
            pass

    @contextmanager
    def running(self, timeout: float = 10.0) -> Iterator["Bridge"]:
        """Run the bridge on its own thread and event loop for the ``with`` block: ready
        (connected, streams/consumers made) when the block starts; on leaving, the events
        the bus dispatched to it are published and acknowledged, within ``timeout``."""
        _positive("timeout", timeout)
        if self._running or (self._thread is not None and self._thread.is_alive()):
            raise RuntimeError(f"{self!r} is running already")
        ready = threading.Event()
        failure: List[BaseException] = []
        self._ready = ready.set          # type: ignore[method-assign]

        def main() -> None:
            try:
                asyncio.run(self.run())
            except BaseException as exc:
                failure.append(exc)
            finally:
                ready.set()

        self._stop_timeout = self._connect_timeout = timeout
        self._thread = threading.Thread(target=main, name=f"ringbus-bridge-{self._engine}",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(timeout + 5) or failure:
            self.stop()
            self._thread.join(timeout)
            if failure:
                raise failure[0]
            raise TimeoutError(f"{self!r} did not connect within {timeout} s")
        try:
            yield self
        finally:
            self._wait_for_bus(timeout)
            self.stop()
            self._thread.join(timeout + 5)
            del self._ready
            if failure:
                raise failure[0]

    def _wait_for_bus(self, timeout: float) -> None:
        """Before stopping: the events already queued for the bus's consumer thread reach
        the exporter (when the bus's consumer runs; bounded by ``timeout``)."""
        if not self._exports:
            return
        ring = self._bus.ring
        deadline = time.monotonic() + timeout
        while self._bus.pending and ring.started and time.monotonic() < deadline:
            time.sleep(0.001)

    def close(self, timeout: Optional[float] = None) -> None:
        self.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for ring in self._rings:
            ring.close()

    def _close_with_bus(self, left: Optional[float]) -> None:
        self.close(left)
        if self._outbox:
            message = (f"ringbus: {self!r}: {len(self._outbox)} exported event(s) were not "
                       f"published (the bridge was not running)")
            _log.warning(message)

    # -- counters -----------------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """Counters: ``exported`` (published to the engine, first try), ``acked`` (the
        engine acknowledged them), ``in_flight`` (published, not yet acknowledged),
        ``retried`` (published again after no ack within ``ack_wait`` or an error),
        ``imported`` (messages fetched), ``acked_back`` (acked to the engine after the local
        handlers ran), ``redelivered`` (fetched again by the engine's redelivery),
        ``duplicates_dropped`` (an id already handled), ``dead_lettered``, ``failed`` (a
        local handler raised: redelivered later), ``malformed`` (would not decode), ``lag``
        (messages waiting in the engine for this importer), ``outbox`` (exported events
        not yet published), ``stalls`` / ``stalled`` (no ack within ``ack_wait``),
        ``reconnects``, ``connected``."""
        out = dict(self.stats_)
        out["outbox"] = len(self._outbox)
        if self._rings:
            out["rings"] = {r.ring.shared or r.ring.identity: r.stats() for r in self._rings}
        return out
