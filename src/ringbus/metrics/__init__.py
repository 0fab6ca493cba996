"""What ``bus.metrics()`` returns and ``bus.metrics_report()`` prints (issue 14).

The numbers come from the compiled side: each metered subscription's meter (calls, errors,
a log-linear histogram of its call times, ringbus.Histogram) and the ring's counters. This
module only shapes them into plain data and a table; ``ringbus.metrics.prometheus``
exports the same data.
"""
from __future__ import annotations

from typing import Any

__all__ = ["snapshot", "report", "handler_histograms"]


def handler_histograms(bus: Any) -> list[tuple[dict[str, Any], Any]]:
    """Per metered subscription: (its fields: subscription, event_type, event_name, batch,
    calls, errors) and a copy of its call-time Histogram (nanoseconds)."""
    out = []
    for sub, t, name in bus._registry.meters():
        calls, errors, hist = bus._meter_read(sub._meter)
        out.append(({"subscription": str(sub), "event_type": t, "event_name": name,
                     "batch": bool(sub.batch), "calls": calls, "errors": errors}, hist))
    return out


def snapshot(bus: Any) -> dict[str, Any]:
    """Plain data (see Bus.metrics for the shape)."""
    handlers = []
    for fields, hist in handler_histograms(bus):
        fields["time_ns"] = hist.snapshot()
        handlers.append(fields)
    ring = bus.ring.stats()
    capacity = bus.ring.capacity
    flow = bus.ring._flow()
    return {
        "enabled": bus._registry.metered,
        "clock": bus._clock_source(),
        "handlers": handlers,
        "ring": {"capacity": capacity, "fill": ring["pending"],
                 "fill_ratio": ring["pending"] / capacity if capacity else 0.0,
                 "published": ring["published"], "dispatched": ring["dispatched"],
                 "dropped": ring["dropped"], "backlog": ring["backlog"],
                 "high_water": max(flow["high_water"].values(), default=0),
                 "stages_high_water": flow["high_water"],
                 "blocked_waits": flow["blocked_waits"],
                 "blocked_seconds": flow["blocked_seconds"]},
        "counters": bus.stats(),
    }


def _us(ns: Any) -> str:
    if ns is None:
        return "-"
    if ns < 10_000:
        return f"{ns / 1000:.2f}"
    return f"{ns / 1000:,.1f}" if ns < 10_000_000 else f"{ns / 1e6:,.0f}ms"


def report(bus: Any) -> str:
    """A compact table: one row per metered subscription, then the ring."""
    snap = snapshot(bus)
    header = ("subscription", "event", "calls", "errors", "p50 µs", "p99 µs", "p99.9 µs",
              "max µs")
    rows = [header]
    for h in snap["handlers"]:
        t = h["time_ns"]
        event = h["event_name"] if h["event_name"] is not None else f"#{h['event_type']}"
        rows.append((h["subscription"] + (" [batch]" if h["batch"] else ""), event,
                     f"{h['calls']:,}", f"{h['errors']:,}", _us(t["p50"]), _us(t["p99"]),
                     _us(t["p99_9"]), _us(t["max"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    if not snap["enabled"]:
        lines.append("(metrics are off: Bus(metrics=True) or bus.enable_metrics())")
    ring = snap["ring"]
    lines.append(f"ring: {ring['fill']:,} of {ring['capacity']:,} queued (at most "
                 f"{ring['high_water']:,}), producers waited {ring['blocked_waits']:,} times "
                 f"for {ring['blocked_seconds'] * 1000:,.1f} ms; "
                 f"{ring['published']:,} published, {ring['dispatched']:,} dispatched, "
                 f"{ring['dropped']:,} dropped, {ring['backlog']:,} in the backlog")
    return "\n".join(lines)
