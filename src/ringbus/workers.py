"""Worker processes: handlers that run in parallel, each event in the worker that owns its
key, supervised, nothing lost when one dies.

    workers = ringbus.Workers("myapp.strategy:setup", processes=4, key=lambda p: p["sym"])
    bus.subscribe(TICK, workers)         # TICK's events go to the worker that owns the key
    with workers.running(bus):           # start, supervise, stop with drain
        ...

The parent routes each event (on whichever thread dispatches it: ``emit``'s, or the bus's
consumer) into the inbox of worker ``hash(key) % processes``, a shared MessageRing the
worker consumes; what the worker's handlers publish comes back through its outbox ring and
is published on the parent's bus by one thread per worker, in order. A supervisor thread
starts the workers, answers their requests (event-type names), restarts the ones that die
and stops them. See README.md, "Worker processes", for the guarantees.
"""
from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import os
import threading
import time
import uuid
import zlib
from contextlib import contextmanager
from multiprocessing.connection import wait as _wait_any
from operator import itemgetter
from typing import Any, Callable, Iterator, Optional, Union

from ringbus import _worker
from ringbus.aio import _current as requests_in_flight, current_request
from ringbus._messages import MessageRing, PickleCodec
from ringbus.registry import log_fields
from ringbus._route import GATHERED, Router, is_gathered, publish_each, split_rows, unpack

__all__ = ["Workers", "PoisonEvent"]

_log = logging.getLogger("ringbus")

Key = Union[None, str, Callable[[Any], Any]]

# A replacement that dies before it is ready this many times in a row is not started again.
_MAX_EARLY_DEATHS = 3
# Events the router gathers for one worker before it sends them without waiting for the
# end of the dispatch batch (a bound on one inbox message).
_GATHER_MAX = 1024


class PoisonEvent(RuntimeError):
    """An event that ended ``attempts`` worker processes in a row: it was taken out of the
    worker's inbox and handed to the bus's error policy instead of another worker."""

    def __init__(self, message: str, event_type: Optional[int], payload: Any, worker: int,
                 attempts: int):
        super().__init__(message)
        self.event_type = event_type
        self.payload = payload
        self.worker = worker
        self.attempts = attempts


def worker_index(key: Any, processes: int) -> int:
    """The worker that owns ``key``: stable across runs for integers, str and bytes (an
    integer, numpy's too, is its own hash; text and bytes hash by CRC-32), ``hash(key)``
    for anything else. A batch's rows go where each row alone would go."""
    if isinstance(key, str):
        return zlib.crc32(key.encode("utf-8", "surrogatepass")) % processes
    if isinstance(key, (bytes, bytearray, memoryview)):
        return zlib.crc32(key) % processes
    index = getattr(type(key), "__index__", None)
    if index is not None:
        return index(key) % processes
    return hash(key) % processes


#: The third field of an inbox message that carries a batch of rows, not one payload, or a
#: request (its fourth field: the request's id in the parent).
BATCH = 1
REQUEST = 2
#: The first field of an outbox message that answers a request: (REPLY, id, value, error).
REPLY = -1


def _row_workers(rows: Any, key: Any, field: Optional[str], processes: int) -> Any:
    """The worker of each row of ``rows`` (a numpy array), as worker_index would pick it."""
    import numpy as np
    if field is not None:
        column = rows[field]
        if column.dtype.kind in "iub":
            return (column.astype(np.int64, copy=False) % processes).astype(np.intp)
        values = column.tolist()
    else:
        values = [key(row) for row in rows]
    return np.fromiter((worker_index(v, processes) for v in values), np.intp, len(values))


def _as_records(rows: Any) -> Any:
    """A DataFrame's or Arrow batch's group (emit_batch of a frame) as the numpy records a
    worker is sent: each library's own structured export (Arrow's through pandas)."""
    kind = type(rows).__module__.partition(".")[0]
    if kind == "pandas":
        return rows.to_records(index=False)
    if kind == "polars":
        return rows.to_numpy(structured=True)
    if kind == "pyarrow":
        return rows.to_pandas().to_records(index=False)
    raise TypeError(f"a Workers batch takes numpy rows, a pandas or polars DataFrame or an "
                    f"Arrow batch, got {type(rows).__name__}")


def _int_key_layout(rows: Any, field: Optional[str]) -> Optional[tuple[int, int, bool]]:
    """(offset, size, signed) of ``rows``' key field when the compiled split can read it:
    a native-endian integer (or bool) field of C-contiguous rows without objects; else
    None."""
    dtype = rows.dtype
    if field is None or dtype.fields is None or field not in dtype.fields \
            or dtype.hasobject or not rows.flags.c_contiguous or rows.ndim != 1:
        return None
    key_type, offset = dtype.fields[field][:2]
    if key_type.kind not in "iub" or key_type.itemsize not in (1, 2, 4, 8) \
            or not key_type.isnative:
        return None
    return offset, key_type.itemsize, key_type.kind == "i"


def _setup_arg(setup: Any) -> str:
    """The setup as ``"module:function"``, importable here (else the error says why)."""
    if callable(setup) and not isinstance(setup, str):
        module = getattr(setup, "__module__", None)
        qualname = getattr(setup, "__qualname__", "")
        if module is None or "<" in qualname:
            raise TypeError(f"setup must be importable by the worker processes: a module-level "
                            f"function or a 'module:function' string, got {setup!r}")
        setup = f"{module}:{qualname}"
    if not isinstance(setup, str) or setup.count(":") != 1 or not all(setup.split(":")):
        raise TypeError(f"setup must be a 'module:function' string (or a module-level "
                        f"function), got {setup!r}")
    try:
        _worker.resolve(setup)
    except ImportError as exc:
        raise ImportError(f"setup {setup!r}: cannot import its module: {exc}") from exc
    except AttributeError as exc:
        raise ValueError(f"setup {setup!r}: no such function: {exc}") from None
    return setup


def _key_arg(key: Key) -> Optional[Callable[[Any], Any]]:
    if key is None or callable(key):
        return key
    if isinstance(key, str):
        return itemgetter(key)                  # a dict's key or a record's field
    raise TypeError(f"key must be None, a callable payload -> key or a field name (str), "
                    f"got {type(key).__name__}: {key!r}")


class _Slot:
    """One worker: its rings (kept across restarts), its current process, its counters."""

    def __init__(self, index: int, inbox: MessageRing, outbox: MessageRing):
        self.index = index
        self.inbox = inbox
        self.outbox = outbox
        self.process: Any = None
        self.pid: Optional[int] = None          # the current (or last) process's
        self.conn: Any = None
        self.send_lock = threading.Lock()
        self.ready = threading.Event()
        self.failure: Optional[str] = None
        self.stopped = threading.Event()
        self.stopping = False
        self.given_up = False
        self.errors = 0
        self.restarts = 0
        self.poisoned = 0
        self.early_deaths = 0
        self.attempts: dict[int, int] = {}      # inflight mark -> worker deaths holding it
        # A gathered message (a list of events) redelivered is handled carefully: the
        # worker says which item it is at, so a death is charged to that event.
        self.at: Optional[tuple[int, int]] = None           # (message sequence, item)
        self.item_attempts: dict[tuple[int, int], int] = {}
        self.skip: set[tuple[int, int]] = set()             # poison items, taken out
        # The ring counts messages; a gathered one carries k events: k - 1 more than it
        # counts. (published count just after it, k - 1) until the worker released it.
        self.extra_in = self.extra_handled = self.extra_redelivered = self.extra_back = 0
        self.extra_pending: collections.deque[tuple[int, int]] = collections.deque()

    def hang_up(self) -> None:
        """Close the control pipe (the worker reads end of file)."""
        with self.send_lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    def send(self, *message: Any) -> None:
        with self.send_lock:
            if self.conn is not None:
                try:
                    self.conn.send(message)
                except (OSError, EOFError):
                    pass                        # the process is gone: its sentinel says so


class Workers:
    """Workers(setup, processes=None, key=None, *, capacity_bytes=4194304, codec='pickle', max_attempts=3, start_method='spawn', stop_timeout=10.0, outbox_wait='block')
    --

    A group of worker processes that handle the events routed to them by key.

    setup : "module:function" (or a module-level function)
        Run once in each worker process with that worker's own :class:`ringbus.Bus`, on which
        it subscribes the handlers. Every event-type name of the parent has the same id there.
        Checked here, in the parent: a setup that cannot be imported raises at once.
    processes : int >= 1 (default: the number of CPUs)
    key : None, a callable ``payload -> key``, or a field name
        The worker of an event is ``worker_index(key(payload), processes)``: events with
        the same key are handled by one worker, in publish order. A str is a field (a dict's
        key, a record's field). None: round robin, no order between events.
    capacity_bytes : int
        Each worker's inbox and outbox ring (MessageRing, shared memory).
    codec : "pickle" (default), "msgspec" or a codec object: how payloads cross.
    max_attempts : int >= 1 (3)
        An event that ends this many worker processes in a row is a poison event: taken out
        and handed to the bus's error policy as :class:`PoisonEvent`, counted.
    start_method : "spawn" (default) or "forkserver"
    stop_timeout : seconds (10.0): how long leaving ``running()`` waits for the drain.
    outbox_wait : "block" (default), "sleep", "yield" or "spin"
        How the parent's thread per worker waits for what that worker publishes. "block"
        parks on a futex: no cost while idle, a wake-up per outbox message (one per
        gathered inbox message, not per event). "sleep" polls (spin, yield, then 50 µs
        sleeps): measured on 2 cores, it cost the idle parent 19% of a core for 2 workers
        and gained nothing on CPU-bound or tiny handlers; "yield" and "spin" keep a core
        busy per worker, for the lowest latency when cores are spare.
    """

    def __init__(self, setup: Any, processes: Optional[int] = None, key: Key = None, *,
                 capacity_bytes: int = 1 << 22, codec: Any = "pickle", max_attempts: int = 3,
                 start_method: str = "spawn", stop_timeout: Optional[float] = 10.0,
                 outbox_wait: Any = "block"):
        self.setup = _setup_arg(setup)
        if processes is None:
            processes = os.cpu_count() or 1
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ValueError(f"processes must be an int >= 1, got {processes!r}")
        self.processes = processes
        self._key = _key_arg(key)
        self.key = key
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) \
                or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        self.max_attempts = max_attempts
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method must be 'spawn' or 'forkserver' (fork is unsafe "
                             f"with threads), got {start_method!r}")
        self.start_method = start_method
        if stop_timeout is not None and not (isinstance(stop_timeout, (int, float))
                                             and stop_timeout >= 0):
            raise ValueError(f"stop_timeout must be None or a number >= 0, got "
                             f"{stop_timeout!r}")
        self.stop_timeout = stop_timeout
        if outbox_wait not in ("sleep", "block", "yield", "spin"):
            raise ValueError(f"outbox_wait must be 'sleep', 'block', 'yield' or 'spin', got "
                             f"{outbox_wait!r}")
        self.outbox_wait = outbox_wait
        # Made once here so a wrong capacity or codec fails at construction, not at start.
        probe = MessageRing(capacity_bytes, codec=codec)
        self.capacity_bytes = probe.capacity_bytes
        probe.close()
        self.codec = codec
        self._bus: Any = None
        self._routes: dict[int, Any] = {}       # event type -> its Subscription (poison)
        self._publish: list[Callable[[Any], Any]] = []  # per worker, filled while running
        # Per worker, the events routed during the bus's current dispatch batch: sent as one
        # inbox message at the batch's end (the Disruptor's end of batch), not one by one.
        # Their payloads, and their types (one id, or a list: see ringbus._route).
        self._gathering: list[list[Any]] = []
        self._gathering_types: list[Any] = []
        self._ring: Any = None                  # the bus's ring, whose batch ends we flush at
        self._slots: list[_Slot] = []
        self._state = "new"
        self._lock = threading.Lock()
        self._supervisor: Optional[threading.Thread] = None
        self._context: Any = multiprocessing.get_context(start_method)
        self._requests: dict[int, Any] = {}     # id -> bus.request() a worker will answer
        self._request_ids = itertools.count()

    # -- routing -------------------------------------------------------------------------

    def worker_of(self, key: Any) -> int:
        """The index of the worker that owns ``key``."""
        return worker_index(key, self.processes)

    def _ringbus_router(self, bus: Any, event_type: int,
                        batch: bool = False) -> Callable[[Any], None]:
        """Not API (Registry.subscribe): the handler that routes ``event_type``'s events
        (``batch``: its batches, for subscribe_batch)."""
        if self._bus is not None and self._bus is not bus:
            raise ValueError("these Workers already serve another Bus")
        self._bus = bus
        publish = self._publish                 # the list itself: filled by start()
        n = self.processes
        key = self._key
        t = event_type

        def not_running() -> None:
            raise RuntimeError(f"Workers({self.setup!r}) are not running: route events "
                               f"inside 'with workers.running(bus):'")

        if batch:
            return self._batch_router(t, not_running)
        return Router(t, n, key, worker_index, publish, self._gathering,
                      self._gathering_types, bus.ring,
                      requests_in_flight,
                      lambda req: (t, req.payload, REQUEST, self._take(req)),
                      self._send_gathered, not_running, _GATHER_MAX)

    def _take(self, req: Any) -> int:
        """Hold ``req`` (a bus.request() being served) until a worker's reply; its id."""
        current_request()                   # taken: it stays open after the router returns
        rid = next(self._request_ids)
        self._requests[rid] = req
        return rid

    def _answer(self, rid: int, value: Any, error: Optional[BaseException]) -> None:
        req = self._requests.pop(rid, None)
        if req is None:
            return                          # answered already: a redelivered request
        if error is not None:
            req.fail(error)
        else:
            req.reply(value)

    def _batch_router(self, t: int, not_running: Callable[[], None]) -> Callable[[Any], None]:
        """A batch's rows, split by worker in one pass (order kept within each part), one
        inbox message per part (or per slice of a part that would not fit a message)."""
        import numpy as np
        publish, n, key = self._publish, self.processes, self._key
        field = self.key if isinstance(self.key, str) else None
        counter = itertools.count()
        # A message holds at most half the ring, less the codec's framing.
        room = self.capacity_bytes // 2 - 4096

        def send(w: int, rows: Any) -> None:
            step = max(1, room // max(1, rows.dtype.itemsize))
            for lo in range(0, len(rows), step):
                publish[w]((t, rows[lo:lo + step], BATCH))

        def route_batch(rows: Any) -> None:
            if not publish:
                not_running()
            if not len(rows):
                return
            if not isinstance(rows, np.ndarray):
                rows = _as_records(rows)
            if key is None:
                send(next(counter) % n, rows)
                return
            layout = _int_key_layout(rows, field)
            if layout is not None:
                # An integer field of plain rows: split in one compiled pass.
                grouped, bounds = split_rows(rows, *layout, n)
            else:
                owner = _row_workers(rows, key, field, n)
                order = np.argsort(owner, kind="stable")
                grouped = rows[order]
                bounds = np.searchsorted(owner[order], np.arange(n + 1)).tolist()
            for w in range(n):
                if bounds[w] < bounds[w + 1]:
                    send(w, grouped[bounds[w]:bounds[w + 1]])

        route_batch.__qualname__ = f"Workers[{self.setup}].route_batch"
        return route_batch

    def _routed(self, event_type: int, subscription: Any) -> None:
        self._routes[event_type] = subscription

    def _end_of_batch(self) -> None:
        for w, gathered in enumerate(self._gathering):
            if gathered:
                self._send_gathered(w)

    def _send_gathered(self, w: int) -> None:
        """Worker w's gathered events as one inbox message (each on its own when together
        they are too long for one message, or one does not encode). An event that cannot be
        sent goes to the error policy, as a route that raised would."""
        payloads, types = self._gathering[w], self._gathering_types[w]
        self._gathering[w] = []
        self._gathering_types[w] = None
        publish = self._publish
        try:
            if not publish:
                raise RuntimeError(f"Workers({self.setup!r}) stopped before these events "
                                   f"were sent to worker {w}")
            if len(payloads) > 1:
                try:
                    publish[w]((types, payloads, GATHERED))
                except (ValueError, TypeError):
                    pass                    # one by one: the error names the event
                else:
                    slot = self._slots[w]
                    slot.extra_in += len(payloads) - 1
                    slot.extra_pending.append((slot.inbox._published_count(),
                                               len(payloads) - 1))
                    return
        except Exception as exc:
            for item in unpack(types, payloads):
                self._not_routed(item, exc)
            return
        for item in unpack(types, payloads):
            try:
                publish[w](item)
            except Exception as exc:
                self._not_routed(item, exc)

    def _not_routed(self, item: tuple, exc: Exception) -> None:
        if len(item) == 4:                  # a request: its caller gets the error
            req = self._requests.pop(item[3], None)
            if req is not None:
                req.fail(exc)
            return
        subscription = self._routes.get(item[0])
        if subscription is None or self._bus._handler_error(item[0], item[1], subscription,
                                                             exc) is not None:
            _log.error("ringbus: an event of type %s was not routed to the workers: %s",
                       item[0], exc, extra=self._log_fields(item[0], subscription))

    # -- lifetime ------------------------------------------------------------------------

    @contextmanager
    def running(self, bus: Any) -> Iterator["Workers"]:
        """``with workers.running(bus):`` starts the workers, supervises them, and on leaving
        (Ctrl-C included) stops them with drain within ``stop_timeout``."""
        self.start(bus)
        try:
            yield self
        finally:
            self.stop(drain=True, timeout=self.stop_timeout)

    def start(self, bus: Any, timeout: float = 60.0) -> None:
        """Start the worker processes and wait until each ran its setup (RuntimeError with
        the worker's traceback if one failed)."""
        with self._lock:
            if self._state == "running":
                raise RuntimeError("these Workers are already running")
            if self._bus is not None and self._bus is not bus:
                raise ValueError("these Workers serve another Bus (the one they were "
                                 "subscribed on)")
            self._bus = bus
            self._state = "running"
            self._closing = False
        token = f"rbw{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            for i in range(self.processes):
                inbox = MessageRing(self.capacity_bytes, shared=f"{token}-{i}i",
                                    codec=self.codec)
                outbox = MessageRing(self.capacity_bytes, shared=f"{token}-{i}o",
                                     codec=self.codec, producers="multi",
                                     wait=self.outbox_wait)
                slot = _Slot(i, inbox, outbox)
                self._slots.append(slot)
                outbox.subscribe(self._forwarder(slot))
                outbox.start()
                self._spawn(slot)
            self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                                name="ringbus-workers-supervisor")
            self._supervisor.start()
            deadline = time.monotonic() + timeout
            for slot in self._slots:
                if not slot.ready.wait(max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"worker {slot.index} did not finish its setup within "
                                       f"{timeout} s")
                if slot.failure is not None:
                    raise RuntimeError(f"worker {slot.index}'s setup {self.setup!r} failed:\n"
                                       f"{slot.failure}")
                if slot.given_up:
                    raise RuntimeError(f"worker {slot.index} died before its setup finished "
                                       f"(its output is above, on stderr)")
            self._gathering[:] = [[] for _ in self._slots]
            self._gathering_types[:] = [None for _ in self._slots]
            self._publish[:] = [slot.inbox.publish for slot in self._slots]
            self._ring = bus.ring
            self._ring._add_batch_end(self._end_of_batch)
            if not getattr(self, "_closer_added", False):
                bus._add_closer(lambda left: self.stop(drain=True, timeout=left))
                self._closer_added = True
        except BaseException:
            self._teardown()
            raise

    def _forwarder(self, slot: _Slot) -> Callable[[Any], None]:
        bus, publish, answer = self._bus, self._bus.publish, self._answer

        def forward(item: Any) -> None:
            if is_gathered(item):           # what one gathered message published
                slot.extra_back += len(item[1]) - 1
                publish_each(bus, item[0], item[1])
            elif len(item) == 4 and item[0] == REPLY:
                answer(item[1], item[2], item[3])
            else:
                publish(item[0], item[1])
        return forward

    def _spawn(self, slot: _Slot) -> None:
        parent_end, child_end = self._context.Pipe(duplex=True)
        spec = {"setup": self.setup, "index": slot.index, "inbox": slot.inbox.shared,
                "outbox": slot.outbox.shared, "codec": self.codec,
                "names": _worker.event_names(self._bus), "skip": sorted(slot.skip),
                "control": child_end}
        process = self._context.Process(target=_worker.main, args=(spec,), daemon=True,
                                        name=f"ringbus-worker-{slot.index}")
        slot.ready.clear()
        slot.failure = None
        process.start()
        child_end.close()
        with slot.send_lock:
            slot.conn = parent_end
        slot.process = process
        slot.pid = process.pid

    # -- supervision ---------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._closing:
            live = [s for s in self._slots if s.process is not None]
            waitables: dict[Any, tuple[_Slot, str]] = {}
            for s in live:
                waitables[s.process.sentinel] = (s, "exit")
                if s.conn is not None:
                    waitables[s.conn] = (s, "message")
            # Messages first: what a worker said before it died ("at") is read before its
            # exit is handled.
            ready_list = sorted(_wait_any(list(waitables), timeout=0.5),
                                key=lambda r: waitables[r][1] != "message")
            for ready in ready_list:
                slot, what = waitables[ready]
                try:
                    if what == "message":
                        self._on_message(slot)
                    else:
                        self._on_exit(slot)
                except Exception:
                    _log.exception("ringbus: the workers' supervisor failed on worker %d",
                                   slot.index)

    def _on_message(self, slot: _Slot) -> None:
        if slot.conn is None:
            return                          # closed by its exit, handled just before
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):
            slot.hang_up()                  # the exit comes through the sentinel
            return
        kind = message[0]
        if kind == "ready":
            slot.early_deaths = 0
            slot.ready.set()
            if slot.stopping:               # a replacement started during the stop
                slot.send("stop")
        elif kind == "failed":
            slot.failure = message[1]
            slot.ready.set()
            slot.hang_up()                      # its last message
        elif kind == "at":
            slot.at = (message[1], message[2])
        elif kind == "redelivered":         # a gathered message of this many events
            slot.extra_redelivered += message[1] - 1
        elif kind == "error":
            slot.errors += message[1]
        elif kind == "names":
            self._bus.event_type(message[1])
            slot.send("names", _worker.event_names(self._bus))
        elif kind == "stopped":
            slot.stopped.set()
            slot.hang_up()                      # its last message

    def _on_exit(self, slot: _Slot) -> None:
        process = slot.process
        process.join()
        while slot.conn is not None and slot.conn.poll():
            self._on_message(slot)          # its last words (the item it was at)
        slot.hang_up()
        if slot.stopped.is_set() or self._closing:
            slot.process = None             # stopped as asked
            return
        if slot.failure is not None:
            slot.process = None             # its setup raised: start() reports it
            return
        if not slot.ready.is_set():
            slot.early_deaths += 1
        if slot.early_deaths >= _MAX_EARLY_DEATHS:
            _log.error("ringbus: worker %d died before it was ready %d times in a row; not "
                       "restarted (its events stay in its inbox)", slot.index,
                       slot.early_deaths)
            slot.given_up = True
            slot.process = None
            slot.ready.set()
            return
        _log.warning("ringbus: worker %d (pid %s) exited with code %s; restarting it",
                     slot.index, process.pid, process.exitcode)
        self._count_attempt(slot)
        slot.restarts += 1
        self._spawn(slot)

    def _count_attempt(self, slot: _Slot) -> None:
        """The dead worker held the message that ends at its inbox's inflight mark: one more
        death on it; at max_attempts, and once it is the first unreleased message (the
        previous replacement released what came before it one by one), it is poison.

        A gathered message (a list of events) is never poison as a whole: its replacement
        handles it carefully, saying which item it is at, and a death then counts against
        that item (with the death that first hit the message, before the item was known);
        at max_attempts the item is left out (the next replacement skips it), the rest of
        the message is handled."""
        committed, inflight, front_end = slot.inbox._front()
        at, slot.at = slot.at, None
        if inflight <= committed:
            return                          # nothing was in hand
        if at is not None and at[0] == committed + 1 and front_end == inflight:
            n = slot.item_attempts[at] = slot.item_attempts.get(at, 0) + 1
            n += slot.attempts.get(inflight, 0)
            if n >= self.max_attempts:
                slot.skip.add(at)
                raw = slot.inbox._peek_front()
                message = self._decode(raw) if raw is not None else None
                self._poisoned(slot, unpack(message[0], message[1])[at[1]]
                               if message is not None else None, n)
            return
        n = slot.attempts[inflight] = slot.attempts.get(inflight, 0) + 1
        if n >= self.max_attempts and front_end == inflight:
            raw = slot.inbox._peek_front()
            try:
                gathered = raw is not None and is_gathered(self._decode(raw))
            except Exception:
                gathered = False
            if not gathered:
                del slot.attempts[inflight]
                self._take_poison(slot, n)

    def _take_poison(self, slot: _Slot, attempts: int) -> None:
        raw: list[bytes] = []
        handle = MessageRing.attach(str(slot.inbox.shared), codec="bytes")
        try:
            handle.subscribe(lambda view: raw.append(bytes(view)))
            handle.drain(max_messages=1)        # takes the dead worker's lease, then gives it up
        finally:
            handle.close()
        item = None
        try:
            item = self._decode(raw[0])
        except Exception:
            pass
        self._poisoned(slot, item, attempts)

    def _poisoned(self, slot: _Slot, item: Any, attempts: int) -> None:
        """Report ``item`` (the inbox message's (type, payload, ...), None if it could not be
        read) as a PoisonEvent to the bus's error policy (a request: to its caller)."""
        slot.poisoned += 1
        # A message decodes as a tuple (pickle) or a list (msgspec).
        event = isinstance(item, (tuple, list))
        event_type, payload = (item[0], item[1]) if event else (None, item)
        exc = PoisonEvent(f"event of type {event_type} ended worker {slot.index} {attempts} "
                          f"times in a row: taken out of its inbox, not handled",
                          event_type, payload, slot.index, attempts)
        if event and len(item) == 4:
            self._not_routed(item, exc)         # the request fails with it
            return
        subscription = None if event_type is None else self._routes.get(event_type)
        if event_type is None or subscription is None:
            _log.error("ringbus: %s", exc, extra=self._log_fields(event_type, subscription))
            return
        if self._bus._handler_error(event_type, payload, subscription, exc) is not None:
            # on_error="raise": nobody to raise it to
            _log.error("ringbus: %s", exc, extra=self._log_fields(event_type, subscription))

    def _log_fields(self, event_type: Optional[int], subscription: Any) -> dict[str, Any]:
        name = None
        if event_type is not None:
            try:
                name = self._bus.event_name(event_type)
            except ValueError:
                pass
        return log_fields(event_type, name, subscription)

    def _decode(self, data: bytes) -> Any:
        codec = self.codec
        if codec == "pickle":
            codec = PickleCodec()
        elif isinstance(codec, str):
            from ringbus._messages import MsgspecCodec
            codec = MsgspecCodec()
        return codec.decode(memoryview(data))

    # -- stopping ------------------------------------------------------------------------

    _closing = False            # the teardown: no more restarts

    def stop(self, drain: bool = True, timeout: Optional[float] = None) -> None:
        """Stop the workers. ``drain=True``: every event routed before the call is handled
        (a worker that dies meanwhile is replaced to finish), and what the workers published
        is on the parent's bus when this returns. Past ``timeout`` seconds (None: no bound),
        or with ``drain=False``, the workers are terminated. Then the rings are removed.
        Stopping stopped Workers does nothing."""
        with self._lock:
            if self._state != "running":
                return
            self._state = "stopping"
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._publish.clear()               # routing ends: new events raise
            for slot in self._slots:
                slot.stopping = True
                if drain:
                    slot.send("stop")
            if drain:
                for slot in self._slots:
                    while not slot.stopped.is_set() and not slot.given_up:
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            break
                        slot.stopped.wait(0.1 if left is None else min(0.1, left))
        finally:
            self._teardown(deadline)

    def _teardown(self, deadline: Optional[float] = None) -> None:
        self._publish.clear()
        if self._ring is not None:
            self._ring._remove_batch_end(self._end_of_batch)
            self._ring = None
            self._end_of_batch()            # gathered as the stop came: to the error policy
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.join()             # within its wait's 0.5 s
            self._supervisor = None
        for slot in self._slots:
            slot.stopping = True
            process = slot.process
            if process is None:
                continue
            left = 1.0 if deadline is None else max(0.1, deadline - time.monotonic())
            process.join(left)
            if process.is_alive():
                process.kill()
                process.join(5.0)
        for slot in self._slots:
            slot.hang_up()
            try:
                slot.outbox.stop(drain=True, timeout=5.0)
            except Exception:
                _log.exception("ringbus: worker %d's outbox", slot.index)
        self._kept = self._snapshot()
        while self._requests:
            _rid, req = self._requests.popitem()
            req.fail(RuntimeError("the workers stopped before answering this request"))
        for slot in self._slots:
            for ring in (slot.inbox, slot.outbox):
                try:
                    ring.unlink()
                except OSError:
                    pass
                ring.close()
            slot.process = None
        self._slots = []
        self._closing = False
        self._state = "stopped"

    # -- counters ------------------------------------------------------------------------

    def _snapshot(self) -> list[dict[str, Any]]:
        out = []
        for s in self._slots:
            inbox = s.inbox.stats()
            handled = inbox["dispatched"]
            while s.extra_pending and s.extra_pending[0][0] <= handled:
                s.extra_handled += s.extra_pending.popleft()[1]
            out.append({
                "worker": s.index,
                "pid": s.pid,
                "alive": not self._closing and s.process is not None and s.process.is_alive(),
                "events_in": inbox["published"] + s.extra_in,
                "handled": handled + s.extra_handled,
                "errors": s.errors,
                "restarts": s.restarts,
                "redelivered": inbox["redelivered"] + s.extra_redelivered,
                "poisoned": s.poisoned,
                "lag": inbox["pending"] + s.extra_in - s.extra_handled,
                "published_back": s.outbox.stats()["published"] + s.extra_back,
            })
        return out

    def stats(self) -> dict[str, Any]:
        """Per worker (``stats()["workers"]``, by index): events_in (routed to it), handled,
        errors (handler exceptions), restarts, redelivered, poisoned, lag (routed, not yet
        handled), published_back; and their sums. After stop: the last counts."""
        per = self._snapshot() if self._slots else list(getattr(self, "_kept", []))
        total: dict[str, Any] = {k: sum(w[k] for w in per)
                                 for k in ("events_in", "handled", "errors", "restarts",
                                           "redelivered", "poisoned", "lag",
                                           "published_back")}
        total["workers"] = per
        return total

    def __repr__(self) -> str:
        return (f"<ringbus.Workers {self.setup!r} processes={self.processes} "
                f"{self._state}>")
