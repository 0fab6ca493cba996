"""``no_subscriber``: emit of a registered event type that has no handler.

What publishing costs when nobody listens: the price of instrumenting code with events.
The floor is still one direct call of a trivial function, for scale.
"""
from __future__ import annotations

from typing import Callable, Optional

from ringbus.benchmarks.measure import Case, Contender, compile_loop
from ringbus.benchmarks.peers import FLOOR, make_handler
from ringbus.benchmarks.topology import Settings, fixed_key, peer_contenders

NAME = "no_subscriber"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``no_subscriber`` case."""
    h = make_handler()
    xs = list(range(settings.events))
    floor = Contender(FLOOR, "direct call h(x)",
                      compile_loop("h(x)", "x", "xs", {"h": h, "xs": xs}, FLOOR),
                      settings.events)
    return Case(NAME, "emit with no subscriber", [floor] + peer_contenders(
        [[]], settings, fixed_key(xs), settings.events, progress))
