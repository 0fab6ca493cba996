"""ringbus: an in-process event bus whose hot path is compiled.

>>> import ringbus
>>> bus = ringbus.Bus()
>>> TICK = bus.event_type("md.tick")
>>> @bus.on(TICK)
... def on_tick(price):
...     print("tick", price)
>>> bus.emit(TICK, 101.5)
tick 101.5
1
"""
try:
    from ringbus._dispatch import STOP, EmitDepthError, EventInfo, current_event
except ImportError as _exc:  # pragma: no cover - only without a build
    raise ImportError(
        "ringbus's compiled core is missing: install the package with `pip install .` "
        "(or `pip install --no-build-isolation -e .` for development) rather than "
        "importing it from the source tree") from _exc

from ringbus._bus import Bus
from ringbus._histogram import Histogram
from ringbus._ring import ConsumerGone, RingBuffer, RingFull, Stage
from ringbus._records import RecordRing, get_include
from ringbus._messages import MessageRing, MsgspecCodec, PickleCodec
from ringbus.lanes import Lane
from ringbus.aio import NoHandlerError, NoReplyError, Request, current_request
from ringbus.ordering import OrderCycleError
from ringbus.patterns import PatternSubscription
from ringbus.subscription import Subscription
from ringbus.workers import PoisonEvent, Workers

__version__ = "0.1.0"

# Errors show their public names in tracebacks and reprs (ringbus.RingFull, not the private
# module each is defined in). Plain Python classes only: the compiled types keep theirs.
for _cls in (RingFull, ConsumerGone, EmitDepthError, OrderCycleError, NoHandlerError,
             NoReplyError, Request, Subscription, PatternSubscription, PickleCodec, MsgspecCodec, Workers,
             PoisonEvent, Lane):
    _cls.__module__ = "ringbus"
del _cls

__all__ = [
    "Bus", "Subscription", "RingBuffer", "Stage", "RingFull", "ConsumerGone", "EmitDepthError",
    "OrderCycleError", "NoHandlerError", "NoReplyError", "Request", "current_request",
    "current_event", "EventInfo", "STOP", "PatternSubscription", "Lane",
    "RecordRing", "MessageRing", "PickleCodec", "MsgspecCodec", "Workers", "PoisonEvent",
    "Histogram", "get_include", "__version__",
]
