"""The printed result: a header saying where and how it was measured, and the table."""
from __future__ import annotations

import datetime
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Optional

from ringbus.benchmarks import event_types, one_to_one
from ringbus.benchmarks.measure import Case
from ringbus.benchmarks.peers import FLOOR, PEERS, RINGBUS, Unavailable
from ringbus.benchmarks.targets import Outcome
from ringbus.benchmarks.topology import Settings

__all__ = ["Report", "environment", "render"]

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


def _ns(v: float) -> str:
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def _ratio(v: Optional[float]) -> str:
    if v is None:
        return ""
    return f"{v:.2f}x" if v < 10 else f"{v:.1f}x"


def _rows(report: Report) -> list[list[str]]:
    targets = {(o.target.case, o.target.row): o for o in report.outcomes}
    singles = next((c for c in report.cases if c.name == one_to_one.NAME), None)
    rows = []
    for case in report.cases:
        if not case.shown_in_table:
            continue
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
                spread = c.spread
                one = singles.median(c.label) if singles is not None else None
                cells += [
                    _ns(m),
                    "" if spread is None else f"{spread * 100:.0f}%",
                    _ratio(m / ringbus) if ringbus else "",
                    _ratio(m / floor) if floor else "",
                    _ratio(m / one) if one and case.name.startswith(event_types.PREFIX) else "",
                ]
            cells.append("; ".join(notes))
            rows.append(cells)
    return rows


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


def _summary(report: Report) -> list[str]:
    judged = [o for o in report.outcomes if o.met is not None]
    lines = [f"targets: {sum(o.met for o in judged)} of {len(judged)} met"
             + (f" ({len(report.outcomes) - len(judged)} not measured)"
                if len(judged) != len(report.outcomes) else "")]
    missed = [o for o in judged if not o.met]
    if missed:
        lines.append("not met: " + "; ".join(f"{o.target.case} {o.target.row} {o}"
                                             for o in missed))
    lines += report.extra_notes
    lines.append(f"run took {report.seconds:.0f} s")
    return lines


def _text_table(rows: list[list[str]]) -> list[str]:
    table = [list(COLUMNS)] + rows
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS) - 1)]
    out = []
    for n, r in enumerate(table):
        cells = [r[i].rjust(widths[i]) if i in _NUMERIC else r[i].ljust(widths[i])
                 for i in range(len(COLUMNS) - 1)]
        out.append("  ".join(cells + [r[-1]]).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
        elif r[0] and n > 1:
            out.insert(len(out) - 1, "")
    return out


def render(report: Report, markdown: bool = False) -> str:
    """The report as text for a terminal, or as markdown ready to paste into the README."""
    env = report.env
    rows = _rows(report)
    if markdown:
        lines = [
            f"`python -m ringbus bench` on {env['cpu']} ({env['cores']}, load average "
            f"{env['load']}), {env['python']}, "
            f"{env['date']}. {env['versions']}.",
            "",
            "Median ns per event; " + "; ".join(_method(report)[1:]) + ".",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "|".join("---:" if i in _NUMERIC else ":---" for i in range(len(COLUMNS))) + "|",
        ]
        for r in rows:
            r = [f"**{r[0]}**" if r[0] else ""] + [c.replace("|", "\\|") for c in r[1:]]
            lines.append("| " + " | ".join(r) + " |")
        lines += [""] + [s + "  " for s in _summary(report)]
        return "\n".join(lines).rstrip() + "\n"
    lines = [f"ringbus bench  {env['date']}",
             f"cpu       {env['cpu']}, {env['cores']}, load average {env['load']} at start",
             f"python    {env['python']}",
             f"versions  {env['versions']}"]
    lines += [("method    " if i == 0 else "          ") + m for i, m in enumerate(_method(report))]
    lines += [""] + _text_table(rows) + [""] + _summary(report)
    return "\n".join(lines) + "\n"
