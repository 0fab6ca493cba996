"""Timed loops, interleaved rounds and medians: how every benchmark case is measured.

Each contender in a case is a loop of N events timed with ``time.perf_counter_ns``. A run
is a number of rounds; in each round every contender of every case runs once, the
contenders of a case in an order rotated by one per round, so that a burst of noise on a
shared VM lands on all of them alike. What is reported is the median over the rounds of
nanoseconds per event, and ratios of medians.

A loop that finds its run wrong (events lost, a thread that did not finish in time) raises
:class:`Failed`: the contender is then reported as failed with the reason, never with a time.
"""
from __future__ import annotations

import abc
import contextlib
import functools
import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

__all__ = ["Contender", "Case", "Failed", "CheckedRun", "compile_function", "compile_loop",
           "rebind", "run_rounds", "gc_paused", "timed_publish"]

_LOOP_SOURCE = """\
def loop({params}, _clock=_clock):
    _t0 = _clock()
    for {var} in {seq}:
        {body}
    return _clock() - _t0
"""


class Failed(Exception):
    """A run of a contender went wrong (events lost, a timeout); the message says how.

    :func:`run_rounds` stops timing that contender and reports it with the message.
    """


class CheckedRun(abc.ABC):
    """A timed loop whose run and check are separate steps.

    ``run()`` does the work and returns the nanoseconds it timed; ``check()`` then raises
    :class:`Failed` if the run went wrong (events lost, out of order) and resets for the
    next run. Calling the object does both, as :func:`run_rounds` wants; pytest-benchmark,
    which times the whole call, times ``run`` alone and checks between rounds.
    """

    @abc.abstractmethod
    def run(self) -> int:
        """Do the timed work once; return the nanoseconds it took."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise Failed if the last run lost or reordered events; reset for the next."""

    def __call__(self) -> int:
        elapsed = self.run()
        self.check()
        return elapsed


def timed_publish(bus: Any, event_type: int, events: int, counted: Callable[[], int],
                  pause: float = 0.0, seconds: float = 60.0) -> tuple[int, int]:
    """Publish ``events`` events (payloads 0, 1, ...) on this thread while ``bus`` runs its
    consumer, then poll ``counted()`` (sleeping ``pause`` between looks) until it grew by
    ``events`` or ``seconds`` passed. Returns (nanoseconds from the first publish to the
    last look, how much ``counted()`` grew): the caller checks the count."""
    base = counted()
    publish = bus.publish
    with bus.running():
        t0 = time.perf_counter_ns()
        for x in range(events):
            publish(event_type, x)
        deadline = time.monotonic() + seconds
        while counted() - base < events and time.monotonic() < deadline:
            time.sleep(pause)
        elapsed = time.perf_counter_ns() - t0
    return elapsed, counted() - base


def compile_function(source: str, name: str, env: dict[str, Any],
                     tag: str) -> Callable[..., Any]:
    """Function ``name`` defined by ``source`` (its parameters: the names in ``env``, which
    it gets bound as fast locals, plus any it declares after them), compiled afresh.

    Each contender gets its own code object, so that CPython's in-place specialization of
    one contender's call sites never has to undo another's (see :func:`compile_loop`).

    >>> f = compile_function("def f(a, b): return a + b", "f", {"a": 1}, "doc")
    >>> f(b=2)
    3
    """
    for key in env:
        if not key.isidentifier() or key.startswith("_"):
            raise ValueError(f"loop variable names must be plain identifiers, got {key!r}")
    namespace: dict[str, Any] = {"_clock": time.perf_counter_ns}
    exec(compile(source, f"<ringbus bench {tag}>", "exec"), namespace)
    return functools.partial(namespace[name], **env)


def compile_loop(body: str, var: str, seq: str, env: dict[str, Any],
                 tag: str) -> Callable[[], int]:
    """A no-argument callable that runs ``for <var> in <seq>: <body>`` once and returns the
    elapsed nanoseconds.

    ``env`` names every object the body uses; they become fast locals of the loop, so a
    look-up costs the same for every contender.

    The loop is compiled afresh for every contender (as ``timeit`` does) because CPython
    3.11+ specializes each call site in place: one shared loop calling ringbus, then
    blinker, then pyee would keep de-specializing and each contender would pay for the one
    before it.

    >>> loop = compile_loop("h(x)", "x", "xs", {"h": abs, "xs": [1, 2]}, "doc")
    >>> loop() >= 0
    True
    """
    source = _LOOP_SOURCE.format(params=", ".join(sorted(env)), var=var, seq=seq, body=body)
    return compile_function(source, "loop", env, f"loop {tag}")


def rebind(loop: Callable[[], int], **env: Any) -> Callable[[], int]:
    """The same compiled loop over other data: ``env`` replaces some of its names.

    It keeps the code object, so the copies share their warmed-up specializations; used to
    walk a long key sequence in slices without compiling a loop per slice.
    """
    if not isinstance(loop, functools.partial):
        raise TypeError("rebind() takes a loop made by compile_loop()")
    unknown = set(env) - set(loop.keywords)
    if unknown:
        raise ValueError(f"the loop has no name(s) {', '.join(sorted(unknown))}")
    return functools.partial(loop.func, **{**loop.keywords, **env})


@dataclass
class Contender:
    """One implementation in one case: a timed loop, or the reason there is none."""

    label: str                      # stable id: "ringbus", "blinker", "psygnal emit", ...
    shown: str                      # what the table prints
    loop: Optional[Callable[[], int]] = None
    events: int = 0                 # events per run of ``loop``
    status: str = ""                # "not installed", "skipped: ..." when loop is None
    samples: list[float] = field(default_factory=list)   # ns per event, one per round
    # Whatever must outlive the loop: blinker and pypubsub hold handlers weakly, and a
    # handler collected mid-run would leave them timing an empty send.
    keep: Any = field(default=None, repr=False)
    # What a run measures besides its time (the latency case: one latency per event),
    # fetched after each timed run and pooled over the rounds in ``observations``.
    observe: Optional[Callable[[], Sequence[float]]] = field(default=None, repr=False)
    observations: list[float] = field(default_factory=list, repr=False)

    @property
    def median(self) -> Optional[float]:
        """The median ns/event over the rounds, or None if it never ran."""
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> Optional[float]:
        """Half the interquartile range, relative to the median (0.05 = +-5 %)."""
        if len(self.samples) < 2:
            return None
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return (q3 - q1) / 2 / statistics.median(self.samples)


@dataclass
class Case:
    """A topology (``one_to_one``, ``fan_out_10``, ...) and its contenders."""

    name: str
    title: str
    contenders: list[Contender] = field(default_factory=list)
    shown_in_table: bool = True
    table: str = "emit"             # which table of the report shows it (report.TABLES)
    rounds: Optional[int] = None    # timed rounds; None: the run's default (Settings.rounds)
    # The reference row the table's ratio column divides by (None: the table's default).
    reference: Optional[str] = None
    notes: list[str] = field(default_factory=list)  # printed under the table
    # Cases with the same rounds and group are interleaved with one another; a group of
    # its own keeps a case's rounds apart from the others' (its processes' idle cost).
    group: str = ""

    def contender(self, label: str) -> Optional[Contender]:
        """The contender with ``label``, or None."""
        for c in self.contenders:
            if c.label == label:
                return c
        return None

    def median(self, label: str) -> Optional[float]:
        """The median ns/event of ``label`` in this case, or None."""
        c = self.contender(label)
        return None if c is None else c.median


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after, if it was on)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _timed(loop: Callable[[], int]) -> int:
    # As timeit does: a collection triggered by one peer's garbage would otherwise be billed
    # to whichever contender happens to allocate next.
    with gc_paused():
        return loop()


def run_rounds(cases: Iterable[Case], rounds: int, warmup: int = 1,
               progress: Optional[Callable[[str], None]] = None) -> None:
    """Run ``warmup`` untimed rounds, then ``rounds`` timed ones, filling ``samples``."""
    cases = list(cases)
    total = warmup + rounds
    for r in range(total):
        if progress is not None:
            kind = "warm-up" if r < warmup else "round"
            n = r + 1 if r < warmup else r - warmup + 1
            progress(f"{kind} {n}/{warmup if r < warmup else rounds}")
        for case in cases:
            runnable = [c for c in case.contenders if c.loop is not None]
            if not runnable:
                continue
            shift = r % len(runnable)
            for c in runnable[shift:] + runnable[:shift]:
                assert c.loop is not None          # runnable: filtered above
                try:
                    elapsed = _timed(c.loop)
                    observed = c.observe() if c.observe is not None else ()
                except Failed as exc:
                    # A wrong run invalidates the contender: no figure at all, the reason.
                    c.loop = None
                    c.status = f"FAILED: {exc}"
                    c.samples.clear()
                    c.observations.clear()
                    if progress is not None:
                        progress(f"  {case.name} / {c.label}: FAILED: {exc}")
                    continue
                if r >= warmup:
                    c.samples.append(elapsed / c.events)
                    c.observations.extend(observed)
