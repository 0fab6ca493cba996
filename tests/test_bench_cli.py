"""Smoke tests of ``python -m ringbus bench``: it runs end to end on tiny inputs, prints the
table, and reports missing peers instead of failing. No timing is asserted."""
import subprocess
import sys

import pytest

from ringbus.__main__ import main
from ringbus.benchmarks.peers import PEERS, Unavailable
from ringbus.benchmarks.targets import TARGETS, evaluate

TINY = ["bench", "--events", "200", "--fan-out-events", "20", "--repeat", "2", "--warmup", "0",
        "--types", "10", "50", "--quiet"]
PEER_MODULES = ["blinker", "pyee", "psygnal", "pubsub", "pubsub.core"]


def test_bench_prints_every_case_and_reference_row(capsys):
    assert main(TINY) == 0
    out = capsys.readouterr().out
    for case in ("one_to_one", "fan_out_10", "types_10", "types_50", "no_subscriber"):
        assert f"\n{case} " in out
    for row in ("direct call h(x)", "10 direct calls", "ringbus Bus.emit",
                "dict-of-lists publish"):
        assert row in out
    assert "targets:" in out and "UTC" in out and "python" in out


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
