"""The worker-process benchmark (ringbus.benchmarks.workers) runs end to end in a tiny
configuration: every contender produces a number and every target an outcome. Speed is not
asserted here."""
import pytest

from ringbus.benchmarks import workers as bench

# Its record-batch contender needs numpy (at module level: .ci/sanitize's leak check hides
# numpy and runs only the files that do not need it).
np = pytest.importorskip("numpy")


def test_the_worker_benchmark_measures_every_contender():
    result = bench.measure(cpu_items=200, tiny_items=2000, rounds=1, latency_events=50)
    for case in ("cpu", "tiny"):
        rows = result[case]
        assert "ringbus Workers(2)" in rows and "ringbus in-process consumer" in rows
        assert any(label.startswith("Pool(2).imap best") for label in rows)
        assert all(s["median"] > 0 for s in rows.values())
    assert 0 < result["latency"]["p50"] <= result["latency"]["p99"]
    assert len(result["targets"]) == 5
    text = bench.render(result)
    assert "target >= 1.7x in-process on CPU-bound" in text


def test_a_lost_result_fails_the_round():
    def lossy_map(fn, items, chunksize):
        return [fn(x) for x in items][:-1]
    with pytest.raises(RuntimeError, match="results for"):
        bench._pool_round(lossy_map, bench.work.tiny, 100, 1)
