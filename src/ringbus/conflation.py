"""Conflation: for market data, when the consumer lags only the latest payload per key matters.

``bus.publish_conflated(T, key, payload)``: while an event of type ``T`` and ``key`` is queued
and not yet dispatched, a new one replaces its payload instead of queuing another; keys are
dispatched in the order they first arrived (the ring's order). Each key's first publish
puts one small carrier event, ``(T, key)``, into the bus's ring; the latest payload waits
here. The consumer's carrier handler takes the payload out (the key is then no longer
pending: the next publish of it queues again) and dispatches it to ``T``'s handlers.
Events that are not conflated are delivered exactly as before.

The pending table is guarded by a lock, taken by a conflating publish and by the consumer
once per conflated event; a plain publish never touches it. The table and its lock are
compiled (``ringbus._conflation``): a publish that replaces a queued payload runs no Python
frame.
"""
from ringbus._conflation import Conflator

__all__ = ["CONFLATED_EVENT_TYPE", "Conflator"]

#: The name of the internal event type whose events carry a conflated key.
CONFLATED_EVENT_TYPE = "ringbus.conflated"
