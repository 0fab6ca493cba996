"""Smoke tests of the process cases of ``python -m ringbus bench`` (issue 10): each runs in
a tiny configuration and its rows carry a number (or "not installed"), a producer that
leaves one message out makes every row FAILED, a missing peer is reported, and nothing is
left in /dev/shm. No timing is asserted."""
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("numpy")

from ringbus.__main__ import main                                   # noqa: E402
from ringbus.benchmarks import Settings, run                        # noqa: E402
from ringbus.benchmarks import xproc_latency, xproc_messages, xproc_records  # noqa: E402

TINY = ["bench", "--xproc-messages", "2000", "--xproc-repeat", "1", "--warmup", "0",
        "--xproc-latency-messages", "200", "--quiet"]
CASES = [xproc_records.NAME, xproc_messages.NAME, xproc_latency.NAME]


def _segments():
    return sorted(p.name for p in Path("/dev/shm").glob("ringbus.bench-*"))


def _settings(**kw):
    return Settings(xproc_messages=2000, xproc_rounds=1, warmup=0, xproc_latency_messages=200,
                    **kw)


def _rows(out, case):
    """The table rows of ``case``: from its first line to the next blank one."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(case + " "))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_every_process_case_prints_its_rows_with_a_number(capsys):
    before = _segments()
    assert main(TINY + ["--only"] + CASES) == 0
    out = capsys.readouterr().out
    assert "== processes: one producer process" in out
    assert "== processes: one-way latency" in out
    assert "FAILED:" not in out
    for case, count in ((xproc_records.NAME, 12), (xproc_messages.NAME, 7),
                        (xproc_latency.NAME, 8)):
        rows = _rows(out, case)
        assert len(rows) == count, rows
        for row in rows:
            # a figure (digits) after the implementation's name, or why there is none
            assert re.search(r"\s\d[\d,.]*\s", row) or row.rstrip().endswith(
                "not installed"), row
    for shown in ("ringbus RecordRing publish((i, x))", "pure-Python shared_memory SPSC ring",
                  "ringbus MessageRing(codec='pickle')", "ringbus RecordRing, wait=block"):
        assert shown in out
    assert _segments() == before


def test_a_lost_message_fails_every_row():
    report = run(_settings(xproc_skip=100), only=[xproc_records.NAME, xproc_messages.NAME])
    rows = [c for case in report.cases for c in case.contenders]
    ran = [c for c in rows if c.status != "not installed"]
    assert len(ran) >= 12
    for c in ran:
        assert c.status.startswith("FAILED") and c.median is None, (c.label, c.status)
        assert "sequence 101, expected 100" in c.status or "lost" in c.status, c.status


def test_a_lost_message_fails_the_latency_rows():
    report = run(_settings(xproc_skip=10), only=[xproc_latency.NAME])
    ran = [c for c in report.cases[0].contenders if c.status != "not installed"]
    assert len(ran) >= 6
    assert all(c.status.startswith("FAILED") and not c.observations for c in ran)


def test_missing_peers_are_reported(monkeypatch, capsys):
    for name in ("faster_fifo", "iceoryx2", "msgspec"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(TINY + ["--only", xproc_records.NAME, xproc_messages.NAME]) == 0
    out = capsys.readouterr().out
    for shown in ("faster-fifo put_many(1,024 tuples)", "iceoryx2 send_copy",
                  "ringbus MessageRing(codec='msgspec')", "faster-fifo put/get(64 bytes)"):
        row = next(line for line in out.splitlines() if shown in line)
        assert row.rstrip().endswith("not installed"), row
    assert "FAILED:" not in out


def test_targets_of_the_process_cases_are_reported():
    report = run(_settings(), only=[xproc_latency.NAME])
    texts = [str(o) for o in report.outcomes]
    assert len(texts) == 3 and all("p50 <=" in t for t in texts), texts
    assert all(o.ratio is not None for o in report.outcomes)
