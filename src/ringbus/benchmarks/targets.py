"""The foundation issue's speed targets, as data. They are reported, never asserted.

Each target is a ratio of two medians from the same run and a bound; the table prints it on
the row it is about.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from ringbus.benchmarks import event_types, fan_out, no_subscriber, one_to_one
from ringbus.benchmarks.peers import (
    BLINKER, DICT, FLOOR, PSYGNAL_EMIT, PSYGNAL_EMIT_FAST, PYEE, RINGBUS,
)

__all__ = ["Target", "Outcome", "TARGETS", "evaluate"]

Key = tuple[str, str]   # (case name, row label)
_OPS: Mapping[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """``median(num) / median(den) <op> bound``, shown on row ``row`` of case ``case``."""

    case: str
    row: str
    text: str
    num: Key
    den: Key
    op: str
    bound: float


@dataclass(frozen=True)
class Outcome:
    """A target's result: the measured ratio and whether it met the bound (None: not run)."""

    target: Target
    ratio: Optional[float]
    met: Optional[bool]

    def __str__(self) -> str:
        if self.ratio is None:
            return f"{self.target.text}: n/a"
        return f"{self.target.text}: {self.ratio:.2f}x {'met' if self.met else 'NOT met'}"


_O, _F, _N = one_to_one.NAME, fan_out.NAME, no_subscriber.NAME
_T100K = event_types.name(100_000)

TARGETS: tuple[Target, ...] = (
    Target(_O, RINGBUS, "<= 1.5x floor", (_O, RINGBUS), (_O, FLOOR), "<=", 1.5),
    Target(_O, DICT, "ringbus <= 0.6x this", (_O, RINGBUS), (_O, DICT), "<=", 0.6),
    Target(_O, BLINKER, ">= 10x ringbus", (_O, BLINKER), (_O, RINGBUS), ">=", 10.0),
    Target(_O, PYEE, ">= 10x ringbus", (_O, PYEE), (_O, RINGBUS), ">=", 10.0),
    Target(_O, PSYGNAL_EMIT, ">= 10x ringbus", (_O, PSYGNAL_EMIT), (_O, RINGBUS), ">=", 10.0),
    Target(_O, PSYGNAL_EMIT_FAST, ">= 2.5x ringbus", (_O, PSYGNAL_EMIT_FAST), (_O, RINGBUS),
           ">=", 2.5),
    Target(_F, RINGBUS, "<= 1.2x floor", (_F, RINGBUS), (_F, FLOOR), "<=", 1.2),
    Target(_T100K, RINGBUS, "<= 1.2x 1 type", (_T100K, RINGBUS), (_O, RINGBUS), "<=", 1.2),
    Target(_N, DICT, "ringbus <= 0.5x this", (_N, RINGBUS), (_N, DICT), "<=", 0.5),
)


def evaluate(medians: Mapping[Key, Optional[float]],
             targets: tuple[Target, ...] = TARGETS) -> list[Outcome]:
    """The outcome of every target whose case was in the run."""
    cases = {case for case, _ in medians}
    out = []
    for t in targets:
        if t.case not in cases:
            continue
        num, den = medians.get(t.num), medians.get(t.den)
        if num is None or den is None or den <= 0:
            out.append(Outcome(t, None, None))
        else:
            ratio = num / den
            out.append(Outcome(t, ratio, _OPS[t.op](ratio, t.bound)))
    return out
