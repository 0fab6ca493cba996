"""``types_<K>``: K event types, one trivial handler each, a random type per event.

It shows what a large table costs: with 100,000 types a bus's per-type structures (and the
type keys) no longer fit in cache, and each event may miss. Every type gets the same trivial
handler ``h``, so that the handler stays hot and what grows with the number of types is the
bus's own work. The floor calls ``h`` directly while walking the same sequence of type ids,
so it grows only by what touching 100,000 key objects costs. (With a distinct function per
type, calling it would miss too, and the floor would get several times slower still.)

The sequence of types is drawn once (seeded) and given to every peer as its own keys, so all
follow the same path through their tables.
"""
from __future__ import annotations

import random
from typing import Callable, Optional

from ringbus.benchmarks.measure import Case, Contender, compile_loop
from ringbus.benchmarks.peers import FLOOR, make_handler
from ringbus.benchmarks.topology import PAYLOAD, Settings, key_sequence, peer_contenders

PREFIX = "types_"


def name(types: int) -> str:
    """The case name for ``types`` event types."""
    return f"{PREFIX}{types}"


def build(settings: Settings, types: int,
          progress: Optional[Callable[[str], None]] = None) -> Case:
    """The ``types_<types>`` case."""
    if types < 1:
        raise ValueError(f"the number of event types must be >= 1, got {types}")
    h = make_handler()
    handlers = [[h] for _ in range(types)]
    rng = random.Random(settings.seed + types)
    indices = [rng.randrange(types) for _ in range(settings.events)]
    # The floor knows each event's handler already and calls it. It still walks a sequence
    # of per-type key objects (ints, as ids are), because every peer does: binding the loop
    # variable touches each key's refcount, a cache miss per event once there are 100,000.
    type_keys = list(range(types))
    ks = [type_keys[i] for i in indices]
    floor = Contender(FLOOR, "direct call h(x), over type ids",
                      compile_loop("h(x)", "k", "ks", {"h": h, "ks": ks, "x": PAYLOAD}, FLOOR),
                      settings.events, keep=handlers)
    return Case(name(types), f"{types:,} event types, random type per emit",
                [floor] + peer_contenders(handlers, settings, key_sequence(indices),
                                          settings.events, progress))
