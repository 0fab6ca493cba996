"""Smoke tests of ``python -m ringbus bench``: it runs end to end on tiny inputs, prints the
tables, reports missing peers instead of failing, and reports a run that loses events as
failed instead of timing it. No timing is asserted."""
import re
import subprocess
import sys
import threading

import pytest

from ringbus.__main__ import main
from ringbus.benchmarks import handoff
from ringbus.benchmarks.measure import Failed
from ringbus.benchmarks.peers import PEERS, Unavailable
from ringbus.benchmarks.targets import TARGETS, Target, evaluate

TINY = ["bench", "--events", "200", "--fan-out-events", "20", "--repeat", "2", "--warmup", "0",
        "--types", "10", "50", "--thread-events", "3000", "--thread-repeat", "2",
        "--latency-events", "40", "--batch-rows", "5000", "--xproc-messages", "2000",
        "--xproc-repeat", "1", "--xproc-latency-messages", "100", "--quiet"]
PEER_MODULES = ["blinker", "pyee", "psygnal", "pubsub", "pubsub.core"]
RING_CASES = ["one_thread_publish_drain", "one_to_one_threads", "three_to_one_threads",
              "latency", "emit_batch_1m"]


def test_bench_prints_every_case_and_reference_row(capsys):
    assert main(TINY) == 0
    out = capsys.readouterr().out
    for case in ["one_to_one", "fan_out_10", "types_10", "types_50", "no_subscriber"] + RING_CASES:
        assert f"\n{case} " in out
    for row in ("direct call h(x)", "10 direct calls", "ringbus Bus.emit",
                "dict-of-lists publish", "ringbus publish x N, drain()",
                "queue.SimpleQueue put/get", "ringbus publish, wait=spin",
                "ringbus publish_many(1024), wait=block", "producers=multi",
                "sys.setswitchinterval(0.0005)", "ringbus emit_batch(types, rows)",
                "np.argsort(stable)"):
        assert row in out
    assert "targets:" in out and "UTC" in out and "python" in out
    assert "FAILED:" not in out


def test_missing_peers_are_reported_and_the_rest_runs(monkeypatch, capsys):
    for name in PEER_MODULES:
        monkeypatch.setitem(sys.modules, name, None)    # makes `import name` fail
    assert main(TINY + ["--only", "one_to_one"]) == 0
    lines = capsys.readouterr().out.splitlines()
    peer_rows = [line for line in lines if any(
        shown in line for shown in ("blinker Signal.send", "pyee EventEmitter.emit",
                                    "psygnal SignalInstance.emit", "pypubsub sendMessage"))]
    assert len(peer_rows) == 5
    assert all(row.rstrip().endswith("not installed") for row in peer_rows)
    ringbus_row = next(line for line in lines if "ringbus Bus.emit" in line)
    assert "not installed" not in ringbus_row and "1.00x" in ringbus_row
    assert not any(line.startswith("fan_out_10") for line in lines)


def test_markdown_table(capsys):
    assert main(TINY + ["--markdown", "--only", "no_subscriber", "dict"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| case | implementation | ns/event")
    assert any("ringbus Bus.emit" in line for line in table)
    assert any("dict-of-lists publish" in line for line in table)
    assert not any("blinker" in line for line in table)     # not picked by --only


def test_unknown_only_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--only", "no_such_case"])
    assert exc.value.code == 2
    assert "no_such_case" in capsys.readouterr().err


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "ringbus"] + TINY + ["--only", "one_to_one", "dict"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ringbus Bus.emit" in result.stdout


@pytest.mark.parametrize("peer", PEERS, ids=lambda p: p.name)
def test_peer_wiring_delivers_each_event_to_its_handlers(peer):
    # The timings mean something only if every wiring really calls the handlers.
    try:
        peer.load()
    except Unavailable:
        pytest.skip(f"{peer.name} is not installed")
    peer.verify()


def test_targets_are_ratios_of_medians():
    medians = {("one_to_one", "ringbus"): 30.0, ("one_to_one", "floor"): 25.0,
               ("one_to_one", "blinker"): 200.0}
    outcomes = {(o.target.case, o.target.row): o for o in evaluate(medians, TARGETS)}
    assert outcomes[("one_to_one", "ringbus")].met is True          # 1.2x <= 1.5x
    assert outcomes[("one_to_one", "blinker")].met is False         # 6.7x < 10x
    assert outcomes[("one_to_one", "pyee")].ratio is None           # not measured
    assert ("fan_out_10", "ringbus") not in outcomes                # case not run


def test_ring_and_batch_cases_without_janus_or_numpy(monkeypatch, capsys):
    for name in ("janus", "numpy"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(TINY + ["--only", "one_to_one_threads", "emit_batch_1m", "--waits", "block"]) == 0
    lines = capsys.readouterr().out.splitlines()
    janus = next(line for line in lines if "janus.Queue" in line and "put/get" in line)
    assert janus.rstrip().endswith("not installed")
    batch = [line for line in lines if "emit_batch(types, rows)" in line or "argsort" in line]
    assert len(batch) == 2 and all(r.rstrip().endswith("numpy not installed") for r in batch)
    ring = next(line for line in lines if "ringbus publish, wait=block" in line)
    assert "not installed" not in ring and "x" in ring       # measured, with its ratio
    assert not any("wait=spin" in line for line in lines)    # --waits block


def test_only_picks_queue_peers(capsys):
    assert main(TINY + ["--only", "one_to_one_threads", "janus", "--waits", "block"]) == 0
    out = capsys.readouterr().out
    assert "queue.SimpleQueue put/get" in out           # the reference always runs
    assert "collections.deque" not in out               # not picked
    assert "\nfan_out_10 " not in out


def test_a_run_that_loses_events_is_reported_not_timed(monkeypatch, capsys):
    real = handoff.make_recorder

    def lossy():
        h, got = real()
        seen = [0]

        def drop_some(x):
            seen[0] += 1
            if seen[0] % 1000:
                h(x)
        return drop_some, got
    monkeypatch.setattr(handoff, "make_recorder", lossy)
    assert main(TINY + ["--only", "one_to_one_threads", "--waits", "block"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("case ")) + 2
    end = next(i for i, line in enumerate(lines) if line.startswith("targets:"))
    # The table: every row that ran failed (janus may not be installed: its row says so).
    rows = [line for line in lines[start:end] if line and "not installed" not in line]
    assert len(rows) >= 4 and all("FAILED: lost events" in line for line in rows), rows
    # No figure: the ns/event cell of a failed row is "-", and no ratio follows it.
    assert all(re.search(r"\s-\s+(\S.*: n/a; )?FAILED", line) for line in rows), rows
    assert any(line.startswith("one_to_one_threads / ") and "lost events" in line
               for line in lines)


def test_a_thread_run_that_hangs_times_out():
    release = threading.Event()

    def stuck(x):
        release.wait(30)
    # Let the consumer go once the run has given up, so that the test does not wait for it.
    threading.Timer(0.6, release.set).start()
    try:
        c = handoff.queue_contender(handoff.SIMPLEQUEUE, "q", "q", lists=[[1, 2, 3]])
        run = c.loop
        run.transport = handoff._QueueTransport(handoff.SIMPLEQUEUE, stuck, 3)
        run.producers = [handoff._producer("put", run.transport.producer_env() | {"xs": [1, 2, 3]},
                                           "stuck", False)]
        run.timeout = 0.3
        with pytest.raises(Failed, match="did not finish within"):
            run()
    finally:
        release.set()


@pytest.mark.parametrize("got, problem", [
    ([0, 3, 1, 4, 2, 5], None),
    ([0, 3, 1, 4, 5], "lost events"),
    ([0, 3, 1, 4, 2, 5, 5], "duplicated events"),
    ([0, 3, 2, 4, 1, 5], "out of order"),
])
def test_check_arrivals_per_producer(got, problem):
    found = handoff.check_arrivals(got, handoff.payload_lists(2, 3))
    assert (found is None) if problem is None else (problem in found)


def test_markdown_prints_every_table(capsys):
    assert main(TINY + ["--markdown", "--only", "no_subscriber", "one_thread_publish_drain",
                        "latency", "emit_batch_1m", "dict", "--waits", "block"]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("| case |")]
    assert [h.split(" | ")[2] for h in headers] == ["ns/event", "ns/event", "p50 µs", "ns/row"]
    assert "vs SimpleQueue" in headers[1]
    assert "| **latency** |" in out and "| **emit_batch_1m** |" in out


def test_absolute_targets():
    t = Target("emit_batch_1m", "ringbus", "<= 10 ns/row", ("emit_batch_1m", "ringbus"), None,
               "<=", 10.0, unit="ns/row")
    met, = evaluate({("emit_batch_1m", "ringbus"): 7.5}, (t,))
    missed, = evaluate({("emit_batch_1m", "ringbus"): 12.5}, (t,))
    assert met.met is True and str(met) == "<= 10 ns/row: 7.5 ns/row met"
    assert missed.met is False and "NOT met" in str(missed)


def test_routing_cases_run_and_report_a_missing_peer(monkeypatch, capsys):
    # Issue 13: exact + pattern vs 2 exact, pymitter's wildcard emit; a guard vs 10 handlers.
    monkeypatch.setitem(sys.modules, "nautilus_trader", None)
    assert main(TINY + ["--only", "pattern_emit", "guard_stop"]) == 0
    out = capsys.readouterr().out
    for row in ("ringbus Bus.emit, 2 exact handlers", "ringbus Bus.emit, exact + 'md.*'",
                "pymitter EventEmitter.emit (wildcard)", "ringbus Bus.emit, 10 handlers",
                "ringbus Bus.emit, the 1st of 10 returns STOP"):
        assert row in out
    assert re.search(r"nautilus_trader MessageBus.publish.*not installed", out)
    assert "<= 1.1x 2 exact" in out and ">= 30x ringbus exact + pattern" in out
    assert "FAILED:" not in out
