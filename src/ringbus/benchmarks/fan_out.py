"""``fan_out_10``: one event type, ten trivial handlers; the floor is ten direct calls."""
from __future__ import annotations

from typing import Any, Callable, Optional

from ringbus.benchmarks.measure import Case, Contender, compile_loop
from ringbus.benchmarks.peers import FLOOR, make_handler
from ringbus.benchmarks.topology import Settings, fixed_key, peer_contenders

FAN_OUT = 10
NAME = f"fan_out_{FAN_OUT}"


def build(settings: Settings, progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``fan_out_10`` case: one event runs ten distinct handlers."""
    hs = [make_handler() for _ in range(FAN_OUT)]
    xs = list(range(settings.fan_out_events))
    # Unrolled, as a program without a bus would write it: no loop over a list of handlers.
    body = "; ".join(f"h{i}(x)" for i in range(FAN_OUT))
    env: dict[str, Any] = {f"h{i}": h for i, h in enumerate(hs)}
    env["xs"] = xs
    floor = Contender(FLOOR, f"{FAN_OUT} direct calls", compile_loop(body, "x", "xs", env, FLOOR),
                      settings.fan_out_events)
    return Case(NAME, f"fan-out: 1 event to {FAN_OUT} handlers", [floor] + peer_contenders(
        [hs], settings, fixed_key(xs), settings.fan_out_events, progress))
