"""The bridges' benchmark cases (issue 12): every row gets a checked figure against real
servers started for the run and stopped after; without the servers, every row says why."""
import re

import pytest

from ringbus.benchmarks import Settings, bridges, render, run

TINY = Settings(events=200, fan_out_events=50, rounds=1, warmup=0, type_counts=(10,),
                bridge_messages=300, bridge_rounds=1, bridge_latency_messages=10)


@pytest.mark.servers
def test_every_bridge_row_has_a_checked_figure():
    pytest.importorskip("msgspec")
    pytest.importorskip("nats")
    pytest.importorskip("redis")
    from ringbus.bridge import testing
    if testing.NATS is None or testing.REDIS is None:
        pytest.skip("nats-server / redis-server not installed")
    report = run(TINY, only=list(bridges.NAMES))
    out = render(report)
    assert "FAILED" not in out, out
    for case in report.cases:
        for c in case.contenders:
            if c.label == bridges.FASTSTREAM and c.loop is None and "not installed" in c.status:
                continue
            assert c.samples or c.observations, (case.name, c.label, c.status)
    assert re.search(r"bridges_nats_out\s+ringbus NatsBridge export \(acked\)\s+[\d,]+", out)


def test_without_the_servers_every_row_says_why(monkeypatch):
    from ringbus.bridge import testing
    monkeypatch.setattr(testing, "NATS", None)
    monkeypatch.setattr(testing, "REDIS", None)
    try:
        cases = [bridges.build(name, TINY) for name in bridges.NAMES]
        for case in cases:
            for c in case.contenders:
                assert c.loop is None and c.status, (case.name, c.label)
                assert "not installed" in c.status, c.status
    finally:
        bridges._close_servers()
