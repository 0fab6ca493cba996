"""``one_to_one``: emit to one trivial handler; the floor is a direct call ``h(x)``.

A second reference row, ``operator.call(h, x)``, makes the same call from C, as any compiled
dispatcher has to: CPython 3.11+ runs a Python-to-Python call inside the same interpreter
loop, but a call from C enters the interpreter afresh, which the direct call never pays.
"""
from __future__ import annotations

import operator
from typing import Callable, Optional

from ringbus.benchmarks.measure import Case, Contender, compile_loop
from ringbus.benchmarks.peers import FLOOR, make_handler
from ringbus.benchmarks.topology import Settings, fixed_key, peer_contenders

NAME = "one_to_one"
C_CALL = "c call"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``one_to_one`` case: every peer emits one event type with one handler."""
    h = make_handler()
    xs = list(range(settings.events))
    floor = Contender(FLOOR, "direct call h(x)",
                      compile_loop("h(x)", "x", "xs", {"h": h, "xs": xs}, FLOOR),
                      settings.events)
    refs = [floor]
    call = getattr(operator, "call", None)      # Python 3.11+
    if call is not None:
        refs.append(Contender(C_CALL, "operator.call(h, x)",
                              compile_loop("call(h, x)", "x", "xs",
                                           {"call": call, "h": h, "xs": xs}, C_CALL),
                              settings.events))
    return Case(NAME, "emit to 1 trivial handler", refs + peer_contenders(
        [[h]], settings, fixed_key(xs), settings.events, progress))
