"""The worker-process cases of ``python -m ringbus bench`` (workers_cpu, workers_tiny,
workers_latency) run end to end in a tiny configuration: every contender produces a
number, every target an outcome, and a lost result fails its row. Speed is not asserted."""
import pytest

from ringbus import benchmarks
from ringbus.benchmarks import workers as bench
from ringbus.benchmarks.measure import Failed

# The record-batch contender needs numpy (at module level: .ci/sanitize's leak check hides
# numpy and runs only the files that do not need it).
np = pytest.importorskip("numpy")


def test_the_worker_cases_measure_every_contender_and_judge_every_target():
    settings = benchmarks.Settings(rounds=1, warmup=0, worker_cpu_items=200,
                                   worker_tiny_items=2000, worker_rounds=1,
                                   worker_latency_events=30)
    report = benchmarks.run(settings, only=list(bench.NAMES))
    for case in report.cases:
        for c in case.contenders:
            assert not c.status, (case.name, c.label, c.status)
            assert c.samples and c.median > 0, (case.name, c.label)
    latency = next(c for c in report.cases if c.name == bench.LATENCY)
    assert all(len(c.observations) == 30 for c in latency.contenders)
    judged = [o for o in report.outcomes if o.target.case in bench.NAMES]
    assert len(judged) == 5 and all(o.ratio is not None and o.ratio > 0 for o in judged)
    text = benchmarks.render(report)
    assert ">= 1.7x in-process" in text and "Pool.apply round trip" not in text
    assert "multiprocessing.Pool(2).apply" in text


def test_a_pool_that_loses_a_result_fails_its_run():
    run = bench._PoolRun(None, "pool", bench.work.tiny, 100, 1)
    run.out = [bench.work.tiny(x) for x in range(99)]
    with pytest.raises(Failed, match="99 results for 100 items"):
        run.check()


def test_a_best_chunksize_target_divides_by_the_fastest_pool_row():
    from ringbus.benchmarks.targets import TARGETS, evaluate
    medians = {(bench.TINY, bench.WORKERS): 100.0,
               (bench.TINY, bench.chunk_label(bench.POOL, 16)): 400.0,
               (bench.TINY, bench.chunk_label(bench.POOL, 256)): 50.0}
    (outcome,) = [o for o in evaluate(medians, TARGETS)
                  if o.target.text == ">= 1x Pool.imap (best)"]
    assert outcome.ratio == 0.5 and outcome.met is False
