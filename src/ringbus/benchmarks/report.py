"""The printed result: a header saying where and how it was measured, and the tables.

One table per kind of case (:attr:`Case.table`): ``emit`` (inline dispatch against the
floor and the peers, ns/event), ``ring`` (queued publish and thread handoff against
``queue.SimpleQueue``, ns/event and events/s), ``latency`` (publish-to-handler percentiles
in µs), ``batch`` (numpy batches, ns/row), ``processes`` (one producer process -> this
process, ns/message, [min–max] and M messages/s) and ``processes_latency`` (one-way
percentiles in µs). A run prints the tables of the cases it ran.
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Optional

from ringbus.benchmarks import event_types, one_to_one
from ringbus.benchmarks.handoff import queue_versions
from ringbus.benchmarks.measure import Case, Contender
from ringbus.benchmarks.peers import FLOOR, PEERS, RINGBUS, Unavailable, version_of
from ringbus.benchmarks.targets import Outcome
from ringbus.benchmarks.topology import Settings

__all__ = ["Report", "environment", "render", "TABLES", "percentile"]

#: The emit table's columns (the other tables': ``_Table.columns``).
COLUMNS = ("case", "implementation", "ns/event", "±", "vs ringbus", "vs floor", "vs 1 type",
           "target / note")
_NUMERIC = {2, 3, 4, 5, 6}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Processor", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _load_average() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


def environment() -> dict[str, str]:
    """Where the run happened: date (UTC), CPU, cores, Python, and every version compared."""
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    versions = []
    for peer in PEERS:
        if peer.dist is None:
            continue
        try:
            peer.load()
        except Unavailable as exc:
            versions.append(f"{peer.dist} {exc}")
            continue
        versions.append(f"{peer.dist} {peer.version() or '?'}")
    versions += queue_versions()
    numpy = version_of("numpy")
    versions.append(f"numpy {numpy}" if numpy else "numpy not installed")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": _cpu_model(),
        "cores": f"{cores} cores" + (f" ({usable} usable by this process)" if usable != cores
                                     else ""),
        # Other work on the machine is the main source of noise: say how busy it was.
        "load": _load_average(),
        "python": f"{platform.python_implementation()} {platform.python_version()} "
                  f"({sys.platform}, {platform.machine()})",
        "versions": ", ".join(versions),
    }


@dataclass
class Report:
    """One run: its settings, cases with samples, target outcomes and environment."""

    settings: Settings
    cases: list[Case]
    outcomes: list[Outcome]
    env: dict[str, str]
    seconds: float = 0.0
    loop_overhead: Optional[float] = None
    extra_notes: list[str] = field(default_factory=list)

    def medians(self) -> dict[tuple[str, str], Optional[float]]:
        """(case, row label) -> median ns/event, for every contender in the run."""
        return {(case.name, c.label): c.median for case in self.cases for c in case.contenders}

    def values(self) -> dict[tuple[str, str], Optional[float]]:
        """:meth:`medians`, plus ``(case, row + " p50")`` and ``" p99"`` -> the p50 and p99
        in µs of every row of a latency table (what the latency targets read)."""
        out = self.medians()
        for case in self.cases:
            if case.table in _LATENCY_TABLES:
                for c in case.contenders:
                    v = sorted(c.observations)
                    for q, tag in ((0.5, " p50"), (0.99, " p99")):
                        out[(case.name, c.label + tag)] = (percentile(v, q) / 1e3 if v
                                                           else None)
        return out

    def failures(self) -> list[tuple[Case, Contender]]:
        """The contenders whose runs went wrong (lost events, timeouts)."""
        return [(case, c) for case in self.cases for c in case.contenders
                if c.status.startswith("FAILED")]


def _ns(v: float) -> str:
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def _us(ns: float) -> str:
    us = ns / 1e3
    return f"{us:,.1f}" if us < 1000 else f"{us:,.0f}"


def _ratio(v: Optional[float]) -> str:
    if v is None:
        return ""
    return f"{v:.2f}x" if v < 10 else f"{v:.1f}x"


def _spread(c: Contender) -> str:
    spread = c.spread
    return "" if spread is None else f"{spread * 100:.0f}%"


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of the sorted, non-empty ``ordered``."""
    rank = math.ceil(q * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def _cases(report: Report, table: str) -> list[Case]:
    return [c for c in report.cases if c.shown_in_table and c.table == table]


def _emit_rows(report: Report) -> list[list[str]]:
    targets = {(o.target.case, o.target.row): o for o in report.outcomes}
    singles = next((c for c in report.cases if c.name == one_to_one.NAME), None)
    rows = []
    for case in _cases(report, "emit"):
        ringbus, floor = case.median(RINGBUS), case.median(FLOOR)
        first = True
        for c in case.contenders:
            m = c.median
            cells = [case.name if first else "", c.shown]
            first = False
            notes = []
            outcome = targets.get((case.name, c.label))
            if outcome is not None:
                notes.append(str(outcome))
            if m is None:
                cells += ["-", "", "", "", ""]
                notes.append(c.status or "no samples")
            else:
                one = singles.median(c.label) if singles is not None else None
                cells += [
                    _ns(m),
                    _spread(c),
                    _ratio(m / ringbus) if ringbus else "",
                    _ratio(m / floor) if floor else "",
                    _ratio(m / one) if one and case.name.startswith(event_types.PREFIX) else "",
                ]
            cells.append("; ".join(notes))
            rows.append(cells)
    return rows


def _throughput_rows(report: Report, table: str, faster: bool) -> list[list[str]]:
    """Rows of the ring (``faster``: ratio = reference / row, > 1 = more events/s) and
    batch (ratio = row / reference, > 1 = slower) tables."""
    targets = {(o.target.case, o.target.row): o for o in report.outcomes}
    rows = []
    for case in _cases(report, table):
        ref = case.median(case.reference) if case.reference else None
        for i, c in enumerate(case.contenders):
            m = c.median
            cells = [case.name if i == 0 else "", c.shown]
            notes = []
            outcome = targets.get((case.name, c.label))
            if outcome is not None:
                notes.append(str(outcome))
            if m is None:
                cells += ["-", "", "", ""]
                notes.append(c.status or "no samples")
            else:
                ratio = None if not ref else (ref / m if faster else m / ref)
                cells += [_ns(m), _spread(c), f"{1e3 / m:,.1f}", _ratio(ratio)]
            cells.append("; ".join(notes))
            rows.append(cells)
    return rows


def _outcomes_by_row(report: Report) -> dict[tuple[str, str], list[Outcome]]:
    out: dict[tuple[str, str], list[Outcome]] = {}
    for o in report.outcomes:
        out.setdefault((o.target.case, o.target.row), []).append(o)
    return out


def _latency_rows(report: Report, table: str = "latency") -> list[list[str]]:
    targets = _outcomes_by_row(report)
    rows = []
    for case in _cases(report, table):
        for i, c in enumerate(case.contenders):
            cells = [case.name if i == 0 else "", c.shown]
            notes = [str(o) for o in targets.get((case.name, c.label), [])]
            if not c.observations:
                cells += ["-", "", "", "", ""]
                notes.append(c.status or "no samples")
            else:
                v = sorted(c.observations)
                cells += [_us(percentile(v, q)) for q in (0.5, 0.99, 0.999)]
                cells += [_us(v[-1]), f"{len(v):,}"]
                if c.status:
                    notes.append(c.status)
            cells.append("; ".join(notes))
            rows.append(cells)
    return rows


def _process_rows(report: Report, table: str = "processes",
                  per_second: float = 1e3) -> list[list[str]]:
    """The processes (and workers) table: ns/message, its range, messages/s (in millions,
    or per ``per_second`` ns: 1e6 = thousands), speed-up over the case's reference row (its
    ns/message over the row's: > 1 = faster), targets."""
    targets = _outcomes_by_row(report)
    rows = []
    for case in _cases(report, table):
        ref = case.median(case.reference) if case.reference else None
        for i, c in enumerate(case.contenders):
            m = c.median
            cells = [case.name if i == 0 else "", c.shown]
            notes = [str(o) for o in targets.get((case.name, c.label), [])]
            if c.label == case.reference:
                notes.insert(0, "reference")
            if m is None:
                cells += ["-", "", "", ""]
                notes.append(c.status or "no samples")
            else:
                cells += [_ns(m), f"{_ns(min(c.samples))}–{_ns(max(c.samples))}",
                          f"{per_second / m:,.2f}", _ratio(ref / m) if ref else ""]
            cells.append("; ".join(notes))
            rows.append(cells)
    return rows


@dataclass(frozen=True)
class _Table:
    kind: str
    title: str
    columns: tuple[str, ...]
    numeric: frozenset


TABLES: tuple[_Table, ...] = (
    _Table("emit", "emit: inline dispatch, ringbus vs direct calls and peers", COLUMNS,
           frozenset(_NUMERIC)),
    _Table("ring", "ring: queued publish and thread handoff, ringbus vs queue.SimpleQueue",
           ("case", "implementation", "ns/event", "±", "M events/s", "vs SimpleQueue",
            "target / note"), frozenset({2, 3, 4, 5})),
    _Table("latency", "latency: publish on one thread -> handler on the consumer thread",
           ("case", "implementation", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "events",
            "note"), frozenset({2, 3, 4, 5, 6})),
    _Table("batch", "batch: numpy rows routed by event type to batch handlers",
           ("case", "implementation", "ns/row", "±", "M rows/s", "vs ringbus",
            "target / note"), frozenset({2, 3, 4, 5})),
    _Table("pipelines", "pipelines: DataFrame / Arrow rows routed by a name column, one "
                        "handler call per group (names_1m: names to ids)",
           ("case", "implementation", "ns/row", "±", "M rows/s", "vs ringbus",
            "target / note"), frozenset({2, 3, 4, 5})),
    _Table("processes", "processes: one producer process -> this process, every message "
                        "checked",
           ("case", "implementation", "ns/msg", "min–max", "M msg/s", "vs ref",
            "target / note"), frozenset({2, 3, 4, 5})),
    _Table("processes_latency", "processes: one-way latency, producer process -> this "
                                "process",
           ("case", "implementation", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "messages",
            "target / note"), frozenset({2, 3, 4, 5, 6})),
    _Table("workers", "workers: handlers in worker processes vs multiprocessing's pools, "
                      "same work",
           ("case", "implementation", "ns/item", "min–max", "k items/s", "vs in-process",
            "target / note"), frozenset({2, 3, 4, 5})),
    _Table("workers_latency", "workers: round trip, parent -> worker -> parent",
           ("case", "implementation", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "events",
            "target / note"), frozenset({2, 3, 4, 5, 6})),
    _Table("bridges", "bridges: NATS JetStream and Redis Streams, ringbus vs the engines' "
                      "Python clients",
           ("case", "implementation", "ns/msg", "min–max", "k msg/s", "vs ref",
            "target / note"), frozenset({2, 3, 4, 5})),
    _Table("bridges_latency", "bridges: bus -> engine -> another bus",
           ("case", "implementation", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "events",
            "target / note"), frozenset({2, 3, 4, 5, 6})),
)
_LATENCY_TABLES = ("latency", "processes_latency", "workers_latency", "bridges_latency")


def _table_rows(report: Report, kind: str) -> list[list[str]]:
    if kind == "emit":
        return _emit_rows(report)
    if kind == "ring":
        return _throughput_rows(report, "ring", faster=True)
    if kind in _LATENCY_TABLES:
        return _latency_rows(report, kind)
    if kind == "processes":
        return _process_rows(report)
    if kind == "workers":
        return _process_rows(report, "workers", per_second=1e6)
    if kind == "bridges":
        return _process_rows(report, "bridges", per_second=1e6)
    if kind == "pipelines":
        return _throughput_rows(report, "pipelines", faster=False)
    return _throughput_rows(report, "batch", faster=False)


def _rounds(report: Report, kind: str) -> str:
    """"5 rounds", or "5 rounds (one_thread_publish_drain: 15)" when cases differ."""
    s = report.settings
    cases = _cases(report, kind)
    counts = [c.rounds or s.rounds for c in cases]
    main = max(set(counts), key=counts.count)
    others = [f"{c.name}: {n}" for c, n in zip(cases, counts) if n != main]
    return f"{main} rounds" + (f" ({', '.join(others)})" if others else "")


def _method(report: Report) -> list[str]:
    s = report.settings
    fan = [c.contenders[0].events for c in report.cases if c.name.startswith("fan_out")]
    lines = [
        f"median over {s.rounds} rounds (after {s.warmup} warm-up) of ns per event; in each "
        f"round every case's implementations run once, in an order rotated per round",
        f"{s.events:,} events per timed loop" + (f" ({fan[0]:,} in fan_out)" if fan else "")
        + "; loop `for x in xs: f(k, x)` (types_K: `for k in ks: f(k, x)`) compiled per "
        "implementation; time.perf_counter_ns; gc off while timing",
        "vs ringbus / vs floor / vs 1 type: ratios of medians (> 1 = slower); "
        "± = half the interquartile range over the rounds; floor = the same calls without a bus",
    ]
    if any(c.contender(one_to_one.C_CALL) for c in report.cases):
        lines.append("operator.call(h, x) = the floor's call made from C, as a compiled bus "
                     "must make it")
    if report.loop_overhead is not None:
        lines.append(f"the empty loop itself costs {report.loop_overhead:.1f} ns per event, "
                     "included in every figure")
    return lines


def _table_method(report: Report, kind: str) -> list[str]:
    """How the table of ``kind`` was measured (the emit table: :func:`_method`)."""
    s = report.settings
    if kind == "emit":
        return _method(report)
    rounds = (f"over {_rounds(report, kind)} after {s.warmup} warm-up "
              f"round{'' if s.warmup == 1 else 's'}")
    if kind == "ring":
        return [
            f"ns per event: median {rounds}, implementations interleaved per round; "
            f"M events/s = 1000 / (ns/event); vs SimpleQueue = SimpleQueue's ns/event over "
            f"the row's: its events/s in SimpleQueues (> 1 = faster)",
            "handler `h(x)` appends x to a list; every run checks that all events arrived "
            "once, in order per producer, or the row says FAILED and shows no figure",
            "thread cases: the clock runs from the producers' start signal until the consumer "
            "has handled the last event (bus.stop(drain=True) returned / consumer joined); "
            f"ring capacity {s.capacity:,}, publish_many chunks of {s.chunk:,}",
            "queue consumers get an item and call h without looking its type up (which "
            "favours them); deque: set() the Event only if not set; janus: sync side at both "
            "ends",
        ]
    if kind == "latency":
        return [
            f"percentiles of all events {rounds}, in µs, from the producer's "
            f"perf_counter_ns() stamp to the handler; the producer thread publishes one event "
            f"every {s.latency_period_us:g} µs and busy-waits in between",
            "with the GIL the consumer runs its handler only once the producer lets go of the "
            f"GIL, which a busy thread does every switch interval (here "
            f"{sys.getswitchinterval() * 1e3:g} ms); the 'sys.setswitchinterval' rows shorten it",
        ]
    if kind == "processes":
        refs = ", ".join(f"{c.name}: {c.reference}" for c in _cases(report, kind)
                         if c.reference)
        return [
            f"ns per message: median {rounds}, implementations interleaved per round; "
            f"min–max over the rounds; M msg/s = 1000 / (ns/msg); vs ref = the reference "
            f"row's ns/msg over the row's (> 1 = faster; {refs})",
            "one producer process (spawned once per case, start-up not timed) is told over a "
            "control pipe to send messages 0..n-1; the clock runs from that order until "
            "this process has handled the last one (a ringbus ring: stop(drain=True) "
            "returned); every message is checked, count and order, or the row says FAILED",
            "ringbus rings: producers='single', wait='block', a consumer thread here calling "
            "a handler per batch view (records) or per message; the peers' consumers "
            "receive on this thread; 'a thread here': the producer is a thread of this "
            "process (a heap ring), for the ratios",
        ]
    if kind == "processes_latency":
        return [
            f"percentiles of all messages {rounds}, in µs, from the producer process's "
            f"perf_counter_ns() stamp in the message to perf_counter_ns() on receipt here "
            f"(CLOCK_MONOTONIC: one clock for all processes); one message every "
            f"{s.xproc_period_us:g} µs, the producer busy-waiting in between",
            "spin/yield/busy-poll consumers and the busy producer need a core each: on a "
            "shared 2-core machine, other work shows in the upper percentiles",
        ]
    if kind == "workers":
        return [
            f"ns per item: median {rounds}, contenders interleaved per round, this group of "
            f"cases on its own; min–max over the rounds; k items/s = 1e6 / (ns/item); vs "
            f"in-process = the in-process row's ns/item over the row's (> 1 = faster)",
            "the clock runs from the first item sent until the last result is back (ringbus: "
            "a result event handled by the parent's bus; the pools: list(map) returned); "
            "every run checks the count (the pools: the last value), or the row says FAILED",
            "a target 'x Pool.imap (best)' divides by the fastest chunksize of the run; "
            "chunksize-1 and -16 rows run fewer items (at least 1,000), all rows of a case "
            "the same work per item; processes start before the first clock",
        ]
    if kind == "bridges":
        return [
            f"ns per message: median {rounds}, rows interleaved per round, this group of "
            f"cases on its own; min–max over the rounds; k msg/s = 1e6 / (ns/msg); vs ref "
            f"= the reference row's ns/msg over the row's (> 1 = faster)",
            "servers started for the run on loopback (nats-server -js, file store; "
            "redis-server, appendonly + appendfsync everysec), 100-byte payloads; out: timed until the "
            "last ack; in: the messages are put in first, untimed, and the clock runs until "
            "the last one was handled and acked (ringbus: from the bridge's start, connected)",
        ]
    if kind == "bridges_latency":
        return [
            f"percentiles of all events {rounds}, in µs, from perf_counter_ns() before the "
            f"publish on one bus to the handler on the other (same process), one event a "
            f"millisecond",
        ]
    if kind == "workers_latency":
        return [
            f"percentiles of all round trips {rounds}, in µs, from perf_counter_ns() before "
            f"the publish (or Pool.apply) to the reply's handler on the parent (apply "
            f"returned); one every ~250 µs (a 200 µs sleep between)",
        ]
    if kind == "pipelines":
        return [
            f"ns per row: median {rounds}, contenders interleaved per round; M rows/s = "
            f"1000 / (ns/row); vs ringbus = the row's ns/row over the first row's (> 1 = "
            f"slower)",
            "every contender calls the same Python handler h(key, rows) once per group of "
            "each chunk, rows in the kind given (DataFrame, RecordBatch, numpy records), "
            "each run checks rows and groups delivered; ringbus maps the name column itself",
            "names_1m: the synthetic rows' event names to ids, each result checked against "
            "Series.map(dict)'s before timing; a target 'x ringbus (best)' divides by the "
            "fastest ringbus row",
        ]
    return [
        f"ns per row: median {rounds}; M rows/s = 1000 / (ns/row); vs ringbus = ratio of "
        "medians (> 1 = slower)",
        "rows: 16-byte records [('px', 'f8'), ('qty', 'i8')], event types uniform at random "
        f"(seeded); the Python emit loop runs on the first {min(s.loop_rows, s.batch_rows):,} "
        "rows; every run checks each handler's row count",
    ]


def _summary(report: Report) -> list[str]:
    judged = [o for o in report.outcomes if o.met is not None]
    lines = [f"targets: {sum(bool(o.met) for o in judged)} of {len(judged)} met"
             + (f" ({len(report.outcomes) - len(judged)} not measured)"
                if len(judged) != len(report.outcomes) else "")]
    missed = [o for o in judged if not o.met]
    if missed:
        lines.append("not met: " + "; ".join(f"{o.target.case} {o.target.row} {o}"
                                             for o in missed))
    for case, c in report.failures():
        lines.append(f"{case.name} / {c.shown}: {c.status}")
    lines += report.extra_notes
    lines.append(f"run took {report.seconds:.0f} s")
    return lines


def _text_table(columns: tuple[str, ...], numeric: frozenset,
                rows: list[list[str]]) -> list[str]:
    table = [list(columns)] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(columns) - 1)]
    out = []
    for n, r in enumerate(table):
        cells = [r[i].rjust(widths[i]) if i in numeric else r[i].ljust(widths[i])
                 for i in range(len(columns) - 1)]
        out.append("  ".join(cells + [r[-1]]).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
        elif r[0] and n > 1:
            out.insert(len(out) - 1, "")
    return out


def _markdown_table(columns: tuple[str, ...], numeric: frozenset,
                    rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if i in numeric else ":---" for i in range(len(columns)))
             + "|"]
    for r in rows:
        r = [f"**{r[0]}**" if r[0] else ""] + [c.replace("|", "\\|") for c in r[1:]]
        lines.append("| " + " | ".join(r) + " |")
    return lines


def render(report: Report, markdown: bool = False) -> str:
    """The report as text for a terminal, or as markdown ready to paste into the README."""
    env = report.env
    tables = [(t, rows) for t in TABLES for rows in [_table_rows(report, t.kind)] if rows]
    if markdown:
        lines = [
            f"`python -m ringbus bench` on {env['cpu']} ({env['cores']}, load average "
            f"{env['load']}), {env['python']}, "
            f"{env['date']}. {env['versions']}.",
        ]
        for t, rows in tables:
            method = _table_method(report, t.kind)
            if t.kind == "emit":
                intro = "Median ns per event; " + "; ".join(method[1:]) + "."
            else:
                intro = "; ".join(method) + "."
            if len(tables) > 1:
                lines += ["", f"**{t.title}**"]
            lines += ["", intro, ""] + _markdown_table(t.columns, t.numeric, rows)
        lines += [""] + [s + "  " for s in _summary(report)]
        return "\n".join(lines).rstrip() + "\n"
    lines = [f"ringbus bench  {env['date']}",
             f"cpu       {env['cpu']}, {env['cores']}, load average {env['load']} at start",
             f"python    {env['python']}",
             f"versions  {env['versions']}"]
    for t, rows in tables:
        lines += ["", f"== {t.title}"]
        lines += [("method    " if i == 0 else "          ") + m
                  for i, m in enumerate(_table_method(report, t.kind))]
        lines += [""] + _text_table(t.columns, t.numeric, rows)
    lines += [""] + _summary(report)
    return "\n".join(lines) + "\n"
