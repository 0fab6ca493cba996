"""Conflation: for market data, when the consumer lags only the latest payload per key matters.

``bus.publish_conflated(T, key, payload)``: while an event of type ``T`` and ``key`` is queued
and not yet dispatched, a new one replaces its payload instead of queuing another; keys are
dispatched in the order they first arrived (the ring's order). Each key's first publish
puts one small carrier event, ``(T, key)``, into the bus's ring; the latest payload waits
here. The consumer's carrier handler takes the payload out (the key is then no longer
pending: the next publish of it queues again) and dispatches it to ``T``'s handlers.
Events that are not conflated are delivered exactly as before.

The pending table is guarded by a lock, taken by a conflating publish and by the consumer
once per conflated event; a plain publish never touches it.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Hashable

__all__ = ["CONFLATED_EVENT_TYPE", "Conflator"]

#: The name of the internal event type whose events carry a conflated key.
CONFLATED_EVENT_TYPE = "ringbus.conflated"


class Conflator:
    """The conflation state of one Bus (made on its first conflating publish)."""

    __slots__ = ("_bus", "_lock", "_pending", "carrier", "conflated", "__weakref__")

    def __init__(self, bus: Any, carrier: int):
        self._bus = weakref.ref(bus)
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, Hashable], list[Any]] = {}
        self.carrier = carrier          # the internal event type's id
        #: Publishes that replaced a queued payload instead of queuing.
        self.conflated = 0

    def publish(self, bus: Any, t: int, key: Hashable, payload: Any, timeout: Any) -> bool:
        try:
            k = (t, key)
            hash(k)
        except TypeError:
            raise TypeError(f"key must be hashable (it names what conflates), got "
                            f"{type(key).__name__}: {key!r}") from None
        with self._lock:
            cell = self._pending.get(k)
            if cell is not None:
                cell[0] = payload       # still queued: the consumer will take this one
                self.conflated += 1
                return True
            cell = self._pending[k] = [payload]
        queued = False
        try:
            # In T's lane: a conflated market-data type stays in the market-data lane.
            queued = bus.publish(self.carrier, k, timeout, bus._lane_arg_of(t))
        finally:
            if not queued:              # dropped, or raised: nothing is queued for it
                with self._lock:
                    if self._pending.get(k) is cell:
                        del self._pending[k]
        return queued

    def deliver(self, k: tuple[int, Hashable]) -> None:
        """The carrier's handler: dispatch the latest payload of key ``k``."""
        with self._lock:
            cell = self._pending.pop(k)
        bus = self._bus()
        if bus is not None:
            bus._dispatch_now(k[0], cell[0])

    @property
    def pending(self) -> int:
        """Keys queued and not yet dispatched."""
        return len(self._pending)
