"""The slow-handler watchdog (``bus.enable_watchdog``): a thread that looks at the bus's
consumer threads every quarter of the threshold and warns, on the ``ringbus`` logger, about
a handler call that has been running longer than the threshold, naming its subscription and
showing the consumer thread's stack. It never interrupts the handler.

How it sees a call: the dispatch is compiled, so on a consumer thread the outermost Python
frame above the thread's own bootstrap is the handler's (``sys._current_frames``). The same
frame object on two looks is the same call (the watchdog holds it between looks, so a later
call of the same function cannot reuse it). A call is reported once.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import weakref
from typing import Any, Optional

from ringbus.registry import log_fields

__all__ = ["Watchdog"]

_log = logging.getLogger("ringbus")
_THREADING = threading.__file__


class Watchdog:
    """Watches one bus's consumer threads; ``stop()`` ends it (so does closing the bus)."""

    def __init__(self, bus: Any, threshold: float):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not threshold > 0:
            raise ValueError(f"threshold must be a number of seconds > 0, got {threshold!r}")
        self.threshold = float(threshold)
        self.reported = 0
        self._bus = weakref.ref(bus)
        self._stop = threading.Event()
        self._seen: dict[int, tuple[Any, float, bool]] = {}   # thread id -> frame, since, told
        self._thread = threading.Thread(target=self._run, name="ringbus-watchdog",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._seen.clear()

    def _run(self) -> None:
        every = self.threshold / 4
        while not self._stop.wait(every):
            bus = self._bus()
            if bus is None or bus.closed:
                return
            self._look(bus)
            del bus

    def _look(self, bus: Any) -> None:
        threads = {t.ident: t for t in bus.ring._consumer_threads() if t.ident is not None}
        frames = sys._current_frames()
        now = time.monotonic()
        seen: dict[int, tuple[Any, float, bool]] = {}
        for ident, thread in threads.items():
            frame = _handler_frame(frames.get(ident))
            if frame is None:
                continue
            before = self._seen.get(ident)
            if before is None or before[0] is not frame:
                seen[ident] = (frame, now, False)
                continue
            since, told = before[1], before[2]
            if not told and now - since >= self.threshold:
                self._report(bus, thread, frame, now - since)
                told = True
            seen[ident] = (frame, since, told)
        self._seen = seen

    def _report(self, bus: Any, thread: threading.Thread, frame: Any, running: float) -> None:
        self.reported += 1
        sub, event_type, name = _subscription_of(bus, frame.f_code)
        stack = "".join(traceback.format_stack(frame))
        _log.warning("ringbus: slow handler: %s on event %s has been running %.1f ms on "
                     "consumer thread %s (threshold %.1f ms); its stack:\n%s",
                     sub if sub is not None else frame.f_code.co_name,
                     name if name is not None else event_type, running * 1e3, thread.name,
                     self.threshold * 1e3, stack,
                     extra=log_fields(event_type, name, sub))


def _handler_frame(top: Any) -> Optional[Any]:
    """The outermost frame above the thread's bootstrap (threading's own frames)."""
    frame, handler = top, None
    while frame is not None:
        if frame.f_code.co_filename == _THREADING:
            break
        handler = frame
        frame = frame.f_back
    return handler


def _subscription_of(bus: Any, code: Any) -> tuple[Any, Optional[int], Optional[str]]:
    """The subscription whose handler runs ``code`` (None if none matches), its event type
    and that type's name."""
    registry = bus._registry
    for t, subs in enumerate(registry._subs):
        for sub in subs:
            handler = sub.handler
            target = getattr(handler, "__func__", handler)
            if getattr(target, "__code__", None) is code or \
                    getattr(getattr(handler, "__call__", None), "__code__", None) is code:
                return sub, t, registry.event_name(t)
    return None, None, None
