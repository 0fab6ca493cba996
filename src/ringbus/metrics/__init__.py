"""What ``bus.metrics()`` returns and ``bus.metrics_report()`` prints (issue 14).

The numbers come from the compiled side: each metered subscription's meter (calls, errors,
a log-linear histogram of its call times, ringbus.Histogram) and the ring's counters. This
module only shapes them into plain data and a table; ``ringbus.metrics.prometheus``
exports the same data.
"""
from __future__ import annotations

from typing import Any, Dict

__all__ = ["snapshot", "report", "handler_histograms", "delay_histograms"]


def handler_histograms(bus: Any) -> list[tuple[dict[str, Any], Any]]:
    """Per metered subscription: (its fields: subscription, event_type, event_name, batch,
    calls, errors) and a copy of its call-time Histogram (nanoseconds)."""
    out = []
    for sub, t, name in bus._registry.meters():
        calls, errors, hist = bus._meter_read(sub._meter)
        out.append(({"subscription": str(sub), "event_type": t, "event_name": name,
                     "batch": bool(sub.batch), "is_async": bool(sub.is_async),
                     "calls": calls, "errors": errors, "wall": sub._wall}, hist))
    return out


def delay_histograms(bus: Any) -> list[tuple[dict[str, Any], Any]]:
    """Per event type the ring has dispatched while metrics were on: (event_type,
    event_name, events) and a copy of its publish-to-handle delay Histogram (ns)."""
    out = []
    for t, meter in bus._delays():
        events, _, hist = bus._meter_read(meter)
        out.append(({"event_type": t, "event_name": bus._registry.event_name(t),
                     "events": events}, hist))
    return out


def snapshot(bus: Any) -> dict[str, Any]:
    """Plain data (see Bus.metrics for the shape)."""
    handlers = []
    for fields, hist in handler_histograms(bus):
        fields["time_ns"] = hist.snapshot()
        wall = fields.pop("wall")
        fields["wall_ns"] = wall.snapshot() if wall is not None else None
        handlers.append(fields)
    delays = []
    for fields, hist in delay_histograms(bus):
        fields["delay_ns"] = hist.snapshot()
        delays.append(fields)
    out = {
        "enabled": bus._registry.metered,
        "clock": bus._clock_source(),
        "handlers": handlers,
        "publish_to_handle": delays,
        "ring": ring_snapshot(bus.ring),
        "counters": bus.stats(),
    }
    lanes = bus.lanes
    if len(lanes) > 1:
        out["lanes"] = {lane.name: dict(ring_snapshot(lane.ring), priority=lane.priority)
                        for lane in lanes}
    return out


def ring_snapshot(ring: Any) -> Dict[str, Any]:
    """One ring's (one lane's) part of :func:`snapshot`."""
    counts = ring.stats()
    capacity = ring.capacity
    flow = ring._flow()
    lag = {name: {"events": events, "age_seconds": age}
           for name, (events, age) in ring._lag().items()}
    main = lag.get("dispatch", {"events": 0, "age_seconds": None})
    return {"capacity": capacity, "fill": counts["pending"],
            "fill_ratio": counts["pending"] / capacity if capacity else 0.0,
            "published": counts["published"], "dispatched": counts["dispatched"],
            "dropped": counts["dropped"], "backlog": counts["backlog"],
            "high_water": max(flow["high_water"].values(), default=0),
            "stages_high_water": flow["high_water"],
            "blocked_waits": flow["blocked_waits"],
            "blocked_seconds": flow["blocked_seconds"],
            "lag_events": main["events"], "lag_seconds": main["age_seconds"],
            "stages_lag": lag}


def _us(ns: Any) -> str:
    if ns is None:
        return "-"
    if ns < 10_000:
        return f"{ns / 1000:.2f}"
    return f"{ns / 1000:,.1f}" if ns < 10_000_000 else f"{ns / 1e6:,.0f}ms"


def _table(header: tuple, rows: list) -> list[str]:
    """Lines of a table: the first two columns left-aligned, the numbers right-aligned."""
    rows = [header] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    return lines


def _percentiles(h: dict) -> tuple:
    return _us(h["p50"]), _us(h["p99"]), _us(h["p99_9"]), _us(h["max"])


def _event(fields: dict) -> str:
    name = fields["event_name"]
    return name if name is not None else f"#{fields['event_type']}"


def report(bus: Any) -> str:
    """Compact tables: one row per metered subscription (an async one has a second row,
    its coroutines' wall time), one per event type's publish-to-handle delay, then the
    ring's fill, lag and waits."""
    snap = snapshot(bus)
    rows = []
    for h in snap["handlers"]:
        rows.append((h["subscription"] + (" [batch]" if h["batch"] else ""), _event(h),
                     f"{h['calls']:,}", f"{h['errors']:,}") + _percentiles(h["time_ns"]))
        if h["wall_ns"] is not None and h["wall_ns"]["count"]:
            rows.append(("  async, to completion", "", f"{h['wall_ns']['count']:,}", "")
                        + _percentiles(h["wall_ns"]))
    lines = _table(("subscription", "event", "calls", "errors", "p50 µs", "p99 µs",
                    "p99.9 µs", "max µs"), rows)
    if not snap["enabled"]:
        lines.append("(metrics are off: Bus(metrics=True) or bus.enable_metrics())")
    if snap["publish_to_handle"]:
        lines.append("")
        lines += _table(("publish -> handle", "", "events", "p50 µs", "p99 µs", "p99.9 µs",
                         "max µs"),
                        [(_event(d), "", f"{d['events']:,}") + _percentiles(d["delay_ns"])
                         for d in snap["publish_to_handle"]])
    ring = snap["ring"]
    age = ring["lag_seconds"]
    lines.append("")
    lines.append(f"ring: {ring['fill']:,} of {ring['capacity']:,} queued (at most "
                 f"{ring['high_water']:,}; the oldest for "
                 f"{'-' if age is None else f'{age * 1e6:,.0f} µs'}), producers waited "
                 f"{ring['blocked_waits']:,} times for {ring['blocked_seconds'] * 1000:,.1f} ms; "
                 f"{ring['published']:,} published, {ring['dispatched']:,} dispatched, "
                 f"{ring['dropped']:,} dropped, {ring['backlog']:,} in the backlog")
    return "\n".join(lines)
