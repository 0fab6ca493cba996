"""What every topology module shares: the run settings and turning peers into contenders.

A topology module (``one_to_one``, ``fan_out``, ``event_types``, ``no_subscriber``; the ring
ones ``one_thread``, ``threads``, ``latency``; the batch one ``emit_batch``; later asyncio
ones) exposes ``build(settings, ...) -> Case``. An emit topology writes its floor (the same
work done with direct calls, no bus) and hands the per-type handlers to
:func:`peer_contenders`, which wires every peer and compiles its loop; the ring topologies
take their peers (queues) from :mod:`.handoff`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from ringbus.benchmarks.measure import Contender, compile_loop, gc_paused
from ringbus.benchmarks.handoff import QUEUE_PEER_NAMES
from ringbus.benchmarks.peers import (
    PEER_NAMES, PEERS, RINGBUS, Handler, SetupBudget, Unavailable, Wiring,
)

__all__ = ["Settings", "peer_contenders", "fixed_key", "key_sequence", "PAYLOAD"]

#: The payload of the cases that vary the event type instead of the payload.
PAYLOAD = 0.5


@dataclass
class Settings:
    """How much to measure. The defaults are the full run (< 5 minutes on 2 cores)."""

    events: int = 100_000           # events per timed loop (one_thread_publish_drain too)
    fan_out_events: int = 20_000    # fan_out_10: each event is 10 handler calls
    rounds: int = 15
    warmup: int = 1
    type_counts: tuple[int, ...] = (1_000, 100_000)
    seed: int = 20240601            # the random type sequence is the same every run
    setup_budget: float = 30.0      # seconds one peer may spend wiring one case
    # Emit peers and queue peers picked by --only (the floor, ringbus and SimpleQueue, the
    # reference of the ring cases, always run).
    peers: tuple[str, ...] = PEER_NAMES + QUEUE_PEER_NAMES
    # -- ring cases: thread handoff and latency
    thread_events: int = 1_000_000  # events per timed run of a thread case (all producers)
    thread_rounds: int = 5          # timed rounds of the thread and latency cases
    waits: tuple[str, ...] = ("block", "yield", "spin", "sleep")  # wait strategies shown
    capacity: int = 65536           # ring capacity of the thread cases (the Bus default)
    chunk: int = 1024               # payloads per publish_many call
    latency_events: int = 5_000     # events per latency run (pooled over the rounds)
    latency_period_us: float = 30.0  # the latency producer publishes one event this often
    lane_orders: int = 300          # orders per lane_latency run, under a market-data burst
    lane_period_us: float = 1000.0  # one order this often
    # -- batch case
    batch_rows: int = 1_000_000     # rows per emit_batch (emit_batch_1m)
    batch_types: int = 16
    loop_rows: int = 100_000        # rows of the per-row Python emit loop (scaled per row)
    # -- process cases (issue 10): one producer process -> this process
    xproc_messages: int = 250_000   # messages per run of a row of ~1 µs/message; faster
                                    # rows send more, slower ones fewer (xproc.scaled)
    xproc_rounds: int = 7           # timed rounds of the process cases
    xproc_latency_messages: int = 4_000   # messages per latency run (pooled over the rounds)
    xproc_period_us: float = 50.0   # the latency producer sends one message this often
    xproc_skip: Optional[int] = None      # tests: the producers leave this sequence out
    # -- worker cases (issue 11): Workers vs multiprocessing's pools
    worker_processes: int = 2
    worker_cpu_items: int = 4_000   # burn() items per run (about 20 µs each)
    worker_tiny_items: int = 100_000  # tiny() items per run (record batches: 25 times that)
    worker_rounds: int = 5
    worker_latency_events: int = 2_000    # round trips per latency run
    # -- bridge cases (issue 12): the bridges vs the engines' Python clients, real servers
    bridge_messages: int = 20_000   # messages per run (awaited-publish peers: a tenth)
    bridge_rounds: int = 5
    bridge_latency_messages: int = 500    # one a millisecond, per latency run
    # Peers that failed to import or to pass the self-check, by name, so each is tried once.
    _unavailable: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _verified: set[str] = field(default_factory=set, init=False, repr=False)

    @classmethod
    def quick(cls) -> "Settings":
        """The ``--quick`` run: the same tables in < 60 s, with wider error bars."""
        return cls(events=20_000, fan_out_events=4_000, rounds=5, warmup=1,
                   setup_budget=10.0, thread_events=100_000, thread_rounds=3,
                   latency_events=1_000, lane_orders=100, loop_rows=20_000, xproc_messages=60_000,
                   xproc_rounds=3, xproc_latency_messages=1_500, worker_cpu_items=1_000,
                   worker_tiny_items=20_000, worker_rounds=3, worker_latency_events=500,
                   bridge_messages=5_000, bridge_rounds=3, bridge_latency_messages=200)


LoopFor = Callable[[Wiring], Callable[[], int]]


def fixed_key(xs: Sequence[object]) -> LoopFor:
    """Loops over the payloads ``xs``, always emitting the first event type."""
    def loop_for(w: Wiring) -> Callable[[], int]:
        return compile_loop(w.call, "x", "xs", {"f": w.f, "k": w.keys[0], "xs": xs}, w.label)
    return loop_for


def key_sequence(indices: Sequence[int], payload: object = PAYLOAD) -> LoopFor:
    """Loops over a pre-drawn sequence of event types (by index), one payload for all.

    Each peer gets the sequence as a list of its own keys, built before timing, so the loop
    does the same work for all: fetch the next key, call.
    """
    def loop_for(w: Wiring) -> Callable[[], int]:
        ks = [w.keys[i] for i in indices]
        return compile_loop(w.call, "k", "ks", {"f": w.f, "ks": ks, "x": payload}, w.label)
    return loop_for


def peer_contenders(handlers: Sequence[Sequence[Handler]], settings: Settings,
                    loop_for: LoopFor, events: int,
                    progress: Optional[Callable[[str], None]] = None) -> list[Contender]:
    """One contender per peer row: event type i wired to ``handlers[i]``, timed by the loop
    ``loop_for`` compiles; a peer that cannot run gets its rows with the reason instead."""
    out: list[Contender] = []
    for peer in PEERS:
        if peer.name != RINGBUS and peer.name not in settings.peers:
            continue
        try:
            reason = settings._unavailable.get(peer.name)
            if reason is not None:
                raise Unavailable(reason)
            try:
                peer.load()
                if peer.name not in settings._verified:
                    peer.verify()
                    settings._verified.add(peer.name)
            except Unavailable as exc:
                settings._unavailable[peer.name] = str(exc)
                raise
            if progress is not None:
                progress(f"  wiring {peer.name} ({len(handlers):,} event types)")
            # A full collection over the millions of objects the other peers' wiring left
            # would stall this one for seconds, and skew its setup budget.
            with gc_paused():
                budget = SetupBudget(settings.setup_budget, "event types", len(handlers))
                wirings = peer.wire(handlers, budget)
        except Unavailable as exc:
            out.extend(Contender(label, shown, status=str(exc)) for label, shown in peer.rows)
            continue
        shown_by_label = dict(peer.rows)
        for w in wirings:
            out.append(Contender(w.label, shown_by_label[w.label], loop_for(w), events,
                                 keep=(w, handlers)))
    return out
