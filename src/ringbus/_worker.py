"""The inside of a worker process (ringbus.workers): its own Bus, fed from its inbox ring,
publishing back through its outbox ring, talking to the supervisor over one control pipe.

The process runs :func:`main`, started by multiprocessing (spawn or forkserver). What it
must never do: outlive the parent (the control pipe's end of file means the parent is gone:
the worker removes its rings and exits), take Ctrl-C for itself (the parent stops it), or
release a message it did not finish (a BaseException in a handler ends the process at once,
so the message comes again to the replacement, marked redelivered).
"""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Optional

from ringbus import identity
from ringbus._bus import Bus
from ringbus._dispatch import current_event
from ringbus._messages import MessageRing
from ringbus._route import GATHERED, GatheringBus, emit_each, is_gathered, unpack

_log = logging.getLogger("ringbus")

#: The exit status of a worker whose handler raised a BaseException (SystemExit, say).
EXIT_HANDLER_BASE_EXCEPTION = 70


def event_names(bus: Bus) -> list:
    """The process's event ids in order (ringbus.identity, which ``bus`` draws from): each
    id's name, None for a bare int id, False for an id nothing took."""
    return identity.table()


def resolve(setup: str) -> Callable[[Bus], Any]:
    """``"module:function"`` -> the function (ImportError, AttributeError, TypeError)."""
    module, _, attr = setup.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{setup!r} is {type(obj).__name__}, not a function")
    return obj


class _Control:
    """The worker's end of the control pipe: one reader thread (stop, names, parent gone),
    sends from any thread under a lock."""

    def __init__(self, conn, on_parent_gone: Callable[[], None]):
        self._conn = conn
        self._send_lock = threading.Lock()
        self._on_parent_gone = on_parent_gone
        self.stop = threading.Event()
        # Set before the last message ("stopped", "failed"): the parent then closes its end,
        # and the end of file it causes means done, not orphaned.
        self.finished = False
        self._replies: dict[str, Any] = {}
        self._replied = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="ringbus-worker-control",
                                        daemon=True)

    def start(self) -> None:
        self._reader.start()

    def finish(self, *message: Any) -> None:
        """Send the last message and wait for the parent to close the pipe: the reader
        thread ends before the interpreter does (a daemon thread still blocked in recv at
        exit leaves its frame unfreed, which a leak checker reports)."""
        self.finished = True
        self.send(*message)
        self._reader.join(30.0)

    def send(self, *message: Any) -> None:
        with self._send_lock:
            self._conn.send(message)

    def ask(self, kind: str, *args: Any) -> Any:
        """Send a request and wait for the supervisor's reply of the same kind."""
        with self._replied:
            self._replies.pop(kind, None)
        self.send(kind, *args)
        with self._replied:
            while kind not in self._replies:
                if not self._replied.wait(30.0):
                    raise TimeoutError(f"the supervisor did not answer {kind!r} in 30 s")
            return self._replies.pop(kind)

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                if not self.finished:
                    self._on_parent_gone()
                return
            kind = message[0]
            if kind == "stop":
                self.stop.set()
            else:
                with self._replied:
                    self._replies[kind] = message[1]
                    self._replied.notify_all()


class WorkerBus(GatheringBus):
    """A worker's Bus: ``emit`` runs its handlers here; ``publish`` (and ``publish_many``)
    send the event to the parent's bus, in order; an event-type name it does not know yet is
    allocated by the parent, so an id means the same name in every process of the group."""

    def __init__(self, outbox: MessageRing, control: _Control, names: list, **options: Any):
        super().__init__(**options)
        self._outbox = outbox
        # While the worker handles a gathered inbox message (a list of events), what its
        # handlers publish is gathered too (GatheringBus.publish, compiled) and goes back as
        # one outbox message at its end.
        self._gathered = None
        self._gathered_types = None
        self._control = control
        self._names_lock = threading.Lock()
        self._replicate(names)

    def _replicate(self, names: list) -> None:
        # The parent's table in id order: a name takes the next id, a bare id extends the
        # table to itself, so registering them in order gives every one its parent's id.
        for t in range(len(names)):
            if names[t] is identity.FREE or self._registered(t):
                continue
            got = Bus.event_type(self, names[t] if names[t] is not None else t)
            if got != t:
                raise RuntimeError(f"worker's event type table diverged at id {t} ({got})")

    def _registered(self, t: int) -> bool:
        try:
            self.event_name(t)
            return True
        except ValueError:
            return False

    def event_type(self, name_or_id):
        if not isinstance(name_or_id, str) or name_or_id in self.event_types:
            return Bus.event_type(self, name_or_id)
        with self._names_lock:
            if name_or_id not in self.event_types:
                self._replicate(self._control.ask("names", name_or_id))
        return Bus.event_type(self, name_or_id)

    def _publish_out(self, event_type, payload, timeout):
        # publish() outside a gathered message, or with a type given by name.
        t = self._id(event_type)
        if self._gathered is not None:
            return GatheringBus.publish(self, t, payload)
        return self._outbox.publish((t, payload), timeout)

    def publish_many(self, event_type, payloads, timeout=None):
        t = self._id(event_type)
        if self._gathered is not None:
            count = 0
            for p in payloads:
                GatheringBus.publish(self, t, p)
                count += 1
            return count
        return self._outbox.publish_many([(t, p) for p in payloads], timeout)

    def _send_gathered(self) -> None:
        """What the handlers published during a gathered message: one outbox message (each
        on its own when together they are too long for one, or one does not encode)."""
        payloads, types = self._gathered, self._gathered_types
        self._gathered = self._gathered_types = None
        if not payloads:
            return
        if len(payloads) > 1:
            try:
                self._outbox.publish((types, payloads, GATHERED))
                return
            except (ValueError, TypeError):
                pass
        self._outbox.publish_many(unpack(types, payloads))

    def _id(self, event_type) -> int:
        if isinstance(event_type, str):
            return self.event_type(event_type)
        self.event_name(event_type)             # ValueError for an id the table lacks
        return event_type


def _answering(bus: Bus, outbox: MessageRing) -> Callable[[int, Any, int], None]:
    """answer(t, payload, rid): serve a parent's bus.request() with this worker's handlers,
    as the parent's bus would (in order, the first value other than None answers, async
    handlers awaited), and send the answer back to the parent."""
    import asyncio

    from ringbus.aio import ReplyFuture, Request, _serve

    def send(rid: int, future: Any) -> None:
        error = future.exception()
        value = None if error is not None else future.result()
        try:
            outbox.publish((REPLY, rid, value, error))
        except Exception as exc:            # an answer the codec cannot carry
            outbox.publish((REPLY, rid, None, RuntimeError(
                f"the worker's answer could not be sent: {type(exc).__name__}: {exc}")))

    def answer(t: int, payload: Any, rid: int) -> None:
        req = Request(t, payload, ReplyFuture(), None)
        asyncio.run(_serve(bus, req))       # settles it, unless a handler took it
        # Taken: the handler answers later, through current_request(); sent then.
        req.future.add_done_callback(lambda f: send(rid, f))
    return answer


#: The first field of an outbox message that answers a request (workers.REPLY).
REPLY = -1


def main(spec: dict) -> None:
    """A worker process's life: attach, set up, consume until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to act on
    codec = spec["codec"]
    inbox = MessageRing.attach(spec["inbox"], codec=codec)
    outbox = MessageRing.attach(spec["outbox"], codec=codec)

    def parent_gone() -> None:
        # Nobody will stop, restart or clean up after this process: remove the rings.
        for ring in (inbox, outbox):
            try:
                ring.unlink()
            except OSError:
                pass
        os._exit(0)

    control = _Control(spec["control"], parent_gone)
    control.start()

    def on_error(event_type, payload, subscription, exc) -> None:
        _log.error("ringbus worker %d: handler %r failed on event type %s", spec["index"],
                   subscription, event_type, exc_info=exc)
        control.send("error", 1)

    bus = WorkerBus(outbox, control, spec["names"], on_error=on_error)
    try:
        resolve(spec["setup"])(bus)
    except Exception:
        inbox.close()
        outbox.close()
        control.finish("failed", traceback.format_exc())
        sys.exit(1)
    emit, emit_batch = bus.emit, bus.emit_batch
    answer = _answering(bus, outbox)
    # The items of gathered messages that the supervisor took out as poison: (the message's
    # ring sequence, the item's index).
    skip = set(spec.get("skip", ()))

    def deliver_one(item: Any) -> None:
        if len(item) == 4:                  # a request (workers.REQUEST), its id last
            answer(item[0], item[1], item[3])
        elif len(item) == 3:                # a batch of rows (workers.BATCH)
            import numpy as np
            emit_batch(np.full(len(item[1]), item[0], np.int64), item[1])
        else:
            emit(item[0], item[1])

    def deliver_gathered(types: Any, payloads: list) -> None:
        """The events the router gathered from one dispatch batch: each in order, what
        they publish sent back at the end. Redelivered, it goes carefully: the supervisor
        is told which item is in hand, so that a death is charged to that one event."""
        event = current_event()
        assert event is not None            # inside the inbox's handler
        careful = event.redelivered
        seq = event.sequence
        if careful:
            control.send("redelivered", len(payloads))
        bus._gathered = []
        try:
            if not careful:
                emit_each(bus, types, payloads)
            else:
                for i, item in enumerate(unpack(types, payloads)):
                    if (seq, i) in skip:
                        continue
                    control.send("at", seq, i)
                    emit(item[0], item[1])
        except Exception:
            bus._send_gathered()
            raise
        except BaseException:
            # The message comes again: its events redo these.
            bus._gathered = bus._gathered_types = None
            raise
        bus._send_gathered()

    def deliver(item: Any) -> None:
        try:
            if is_gathered(item):
                deliver_gathered(item[0], item[1])
            else:
                deliver_one(item)
        except Exception:
            raise                      # the ring's on_error: counted, logged, isolated
        except BaseException:
            # Not finished: the message must come again, so it must not be released.
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(EXIT_HANDLER_BASE_EXCEPTION)

    inbox.subscribe(deliver)
    inbox.start()
    control.send("ready", os.getpid())
    while not control.stop.wait(0.2):
        if inbox._is_consumer_gone():
            inbox.stop()               # re-raises what ended the consumer thread
            raise RuntimeError("the worker's consumer thread ended")
    inbox.stop(drain=True)
    inbox.close()
    outbox.close()
    control.finish("stopped", bus.stats())
