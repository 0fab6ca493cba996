"""Priority lanes of a bus: what a lane is, and the checks behind ``Bus.add_lane``.

Orders, fills and request/response must not queue behind a burst of market data. A bus with
lanes has one ring per lane, each with its own capacity, overflow policy and producers, and
one consumer for them all (``ringbus._lanes``) that takes the highest lane with events
first, a batch at a time, without starving the lower ones (the rule is in
``ringbus._lanes``). The bus's own ring is the lane named ``"default"``, priority 0.

An event goes to the lane given to the publish call (``lane=``), else to its type's lane
(``Bus.set_lane`` or ``add_lane(..., types=)``), else to ``"default"``. Within a lane
events are dispatched in that ring's order, so FIFO holds per producer per lane; between
lanes, the priority rule decides.
"""
from __future__ import annotations

import weakref
from typing import Any, Dict, List, NoReturn, Optional

from ringbus._ring import RingBuffer
from ringbus._lanes import MAX_LANES

__all__ = ["Lane", "DEFAULT_LANE", "MAX_LANES"]

#: The name of the lane every bus has: its own ring.
DEFAULT_LANE = "default"

#: A lane's defaults: at most this many events of one lane per turn of the consumer (an
#: event of a higher lane waits at most for one such batch), and how many turns a lane with
#: events waiting may be passed over by higher lanes before it takes one.
DEFAULT_BATCH = 256
DEFAULT_PATIENCE = 8


class Lane:
    """One lane of a bus (made by :meth:`ringbus.Bus.add_lane`; the bus's own ring is the
    lane ``"default"``): its ``name``, ``priority`` (higher first), ``ring`` (a
    :class:`ringbus.RingBuffer`: capacity, overflow policy, counters), ``batch`` (at most
    this many of its events per turn of the consumer) and ``patience`` (after this many
    turns passed over while it has events, it takes the next one).

    ``batch`` and ``patience`` may be changed while nothing consumes the bus."""

    __slots__ = ("name", "priority", "ring", "_batch", "_patience", "_bus", "__weakref__")

    def __init__(self, bus: Any, name: str, priority: int, ring: RingBuffer, batch: int,
                 patience: int) -> None:
        self.name = name
        self.priority = priority
        self.ring = ring
        self._batch = batch
        self._patience = patience
        self._bus = weakref.ref(bus)

    @property
    def batch(self) -> int:
        return self._batch

    @batch.setter
    def batch(self, value: int) -> None:
        value = _positive("batch", value)
        self._changed(lambda: setattr(self, "_batch", value))

    @property
    def patience(self) -> int:
        return self._patience

    @patience.setter
    def patience(self, value: int) -> None:
        value = _positive("patience", value)
        self._changed(lambda: setattr(self, "_patience", value))

    def _changed(self, change: Any) -> None:
        bus = self._bus()
        if bus is None:
            change()
            return
        bus._check_lanes_idle("changing a lane's batch or patience")
        change()
        bus._lanes_changed()

    @property
    def pending(self) -> int:
        """Events published into this lane and not yet dispatched."""
        return self.ring.pending

    def stats(self) -> Dict[str, Any]:
        """The lane's ring counters (published, dispatched, dropped, pending, backlog) with
        its name, priority, capacity and overflow policy."""
        out = {"name": self.name, "priority": self.priority, "capacity": self.ring.capacity,
               "overflow": self.ring.overflow, "batch": self._batch,
               "patience": self._patience}
        out.update(self.ring.stats())
        out.pop("stages", None)
        return out

    def __repr__(self) -> str:
        return (f"<ringbus.Lane {self.name!r} priority={self.priority} "
                f"capacity={self.ring.capacity} overflow={self.ring.overflow!r} "
                f"pending={self.ring.pending}>")


def _positive(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value!r}")
    return value


def default_lane(bus: Any, ring: RingBuffer) -> Lane:
    return Lane(bus, DEFAULT_LANE, 0, ring, DEFAULT_BATCH, DEFAULT_PATIENCE)


def new_lane(bus: Any, lanes: List[Lane], name: Any, priority: Any, capacity: Any,
             overflow: Any, producers: Any, batch: Any, patience: Any,
             backlog: Any, wait: Any) -> Lane:
    """Check ``Bus.add_lane``'s arguments against the bus's lanes so far and make the lane
    (its ring waits as the bus's own ring does)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {type(name).__name__} {name!r}")
    for lane in lanes:
        if lane.name == name:
            raise ValueError(f"name: the bus already has a lane named {name!r}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int (higher first), got "
                        f"{type(priority).__name__} {priority!r}")
    for lane in lanes:
        if lane.priority == priority:
            raise ValueError(f"priority: lane {lane.name!r} already has priority {priority}; "
                             f"each lane has its own (higher first)")
    if len(lanes) >= MAX_LANES:
        raise ValueError(f"a bus has at most {MAX_LANES} lanes (its own ring included)")
    batch = _positive("batch", batch)
    patience = _positive("patience", patience)
    ring = RingBuffer(capacity, producers=producers, overflow=overflow, wait=wait,
                      backlog=backlog)
    return Lane(bus, name, priority, ring, batch, patience)


def refuse_lane(lanes: Optional[List[Lane]], lane: Any) -> NoReturn:
    """Raise for a ``lane=`` that names no lane of this bus (the bus looked it up first):
    a Lane of another bus, an unknown name, or something that is neither."""
    if isinstance(lane, Lane):
        raise ValueError(f"lane: {lane!r} is not a lane of this bus")
    if isinstance(lane, str):
        names = [x.name for x in lanes] if lanes else [DEFAULT_LANE]
        raise ValueError(f"lane: this bus has no lane named {lane!r} (lanes: {names})")
    raise TypeError(f"lane must be None, a lane name (str) or a ringbus.Lane, got "
                    f"{type(lane).__name__} {lane!r}")
