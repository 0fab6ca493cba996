"""Model-check the ring algorithms with Relacy (tests/relacy/ring_models.cpp, and
tests/relacy/record_models.cpp for the record ring: its models are named rec_*).

The models compile src/ringbus/_ringbuffer.h (and _recordring.h) themselves (their
RINGBUS_RELACY layer), so what is checked is the production source. Each model must pass; then each "mutant" (the same header
with one memory order weakened or one fence removed) must be caught, which shows that the
models can see the bugs they are meant to. Skipped without g++ or Relacy's headers
(Debian: apt-get install relacy-dev).
"""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ringbus"
HARNESS = ROOT / "tests" / "relacy" / "ring_models.cpp"
RECORD_HARNESS = ROOT / "tests" / "relacy" / "record_models.cpp"
UNBLOCK_HARNESS = ROOT / "tests" / "relacy" / "unblock_models.cpp"
HEADERS = ("_atomic.h", "_claimants.h", "_ringbuffer.h", "_recordring.h")


def _harness(model):
    if model.startswith("unb_"):
        return UNBLOCK_HARNESS
    return RECORD_HARNESS if model.startswith("rec_") else HARNESS

pytestmark = pytest.mark.skipif(
    not Path("/usr/include/relacy/relacy.hpp").exists() or shutil.which("g++") is None,
    reason="Relacy (apt-get install relacy-dev) and g++ are needed")

# (model, iterations, scheduler): random schedules, and for the small models an exhaustive
# search of all schedules with at most 2 preemptions.
MODELS = [
    ("spsc", 200_000, "random"),
    ("spsc", 0, "bound"),
    ("mpsc", 200_000, "random"),
    ("batch", 100_000, "random"),
    ("diamond", 100_000, "random"),
    ("wake", 200_000, "random"),
    ("wake", 0, "bound"),
    ("stop", 100_000, "random"),
    ("stop", 0, "bound"),
    ("stop_target", 100_000, "random"),
    ("stop_target", 0, "bound"),
    ("lanes", 200_000, "random"),
    ("rec_spsc", 200_000, "random"),
    ("rec_spsc", 0, "bound"),
    ("rec_mpsc", 200_000, "random"),
    ("rec_many", 100_000, "random"),
    ("rec_wake", 200_000, "random"),
    ("rec_wake", 0, "bound"),
    # The unblock protocol (_claimants.h): a producer killed at each step of its publish, or
    # only slow; random schedules (the bounded search of 3 threads runs for hours).
    ("unb_die1", 100_000, "random"),
    ("unb_die2", 100_000, "random"),
    ("unb_die3", 100_000, "random"),
    ("unb_die4", 100_000, "random"),
    ("unb_slow", 200_000, "random"),
]

# name -> (header, exact text, replacement, model that must catch it, what it reports)
MUTANTS = {
    "relaxed_single_producer_publish": (
        "_ringbuffer.h", "rb_sequence_set(q->cursor, hi);",
        "rb_store_relaxed_i64(&q->cursor->value, hi);", "spsc", "DATA RACE"),
    "relaxed_availability_flag": (
        "_ringbuffer.h", "rb_store_release_i32(&q->available[s & q->mask]",
        "rb_store_relaxed_i32(&q->available[s & q->mask]", "mpsc", "DATA RACE"),
    "relaxed_gating_load": (
        "_ringbuffer.h", "        v = rb_sequence_get(q->gating[i]);",
        "        v = rb_load_relaxed_i64(&q->gating[i]->value);", "spsc", "DATA RACE"),
    "relaxed_dependency_load": (
        "_ringbuffer.h", "            int64_t v = rb_sequence_get(deps[i]);",
        "            int64_t v = rb_load_relaxed_i64(&deps[i]->value);", "diamond", "DATA RACE"),
    "no_fence_in_wake": (
        "_ringbuffer.h", "static inline void rb_parker_wake(rb_parker *p)\n{\n    rb_fence_seq_cst();",
        "static inline void rb_parker_wake(rb_parker *p)\n{", "wake", "DEADLOCK"),
    "no_fence_in_park": (
        "_ringbuffer.h",
        "    rb_fetch_add_relaxed_i32(&p->waiters, 1);\n    rb_fence_seq_cst();",
        "    rb_fetch_add_relaxed_i32(&p->waiters, 1);", "wake", "DEADLOCK"),
    # Defect 1 of issue 8: a consumer that reads the alert but not the stop target runs past
    # it for as long as producers keep publishing.
    "stop_limit_ignores_target": (
        "_ringbuffer.h", "        if (avail > t)\n            return t;", "        (void)t;",
        "stop_target", "USER ASSERT FAILED"),
    # Priority lanes: a waiter that does not re-check every lane under the parker sleeps
    # through a publish that came between its look and its park.
    "lanes_no_recheck_under_parker": (
        "_ringbuffer.h",
        "        ready = rb_lanes_ready(qs, next, n);\n"
        "        if (ready < 0 && !rb_lanes_alerted(alerts, n))",
        "        ready = -1;\n        if (ready < 0 && !rb_lanes_alerted(alerts, n))",
        "lanes", "DEADLOCK"),
    # The record ring's own steps (_recordring.h).
    "relaxed_record_release": (
        "_recordring.h", "rb_sequence_set(&rr->header->consumer.sequence, hi);",
        "rb_store_relaxed_i64(&rr->header->consumer.sequence.value, hi);", "rec_spsc",
        "DATA RACE"),
    "no_wake_on_record_release": (
        "_recordring.h",
        "    rb_parker_wake(rr->seq.parker);          /* producers parked for room */\n",
        "", "rec_spsc", "DEADLOCK"),
    "record_wake_before_publish": (
        "_recordring.h",
        "    rb_sequencer_publish(&rr->seq, lo, hi);\n    if (rr->wake_consumer)\n"
        "        rb_parker_wake(rr->seq.parker);",
        "    if (rr->wake_consumer)\n        rb_parker_wake(rr->seq.parker);\n"
        "    rb_sequencer_publish(&rr->seq, lo, hi);", "rec_wake", "DEADLOCK"),
    "record_publish_before_write": (
        "_recordring.h",
        "        rb_record_write(rr, hi - got + 1, hi, src + done * rr->record_size);\n"
        "        rb_record_publish_range(rr, hi - got + 1, hi);",
        "        rb_record_publish_range(rr, hi - got + 1, hi);\n"
        "        rb_record_write(rr, hi - got + 1, hi, src + done * rr->record_size);",
        "rec_many", "DATA RACE"),
    # The unblock protocol: a claim recorded only after its CAS leaves a window where the
    # consumer cannot see a live claim and skips it.
    "claim_recorded_after_cas": (
        "_ringbuffer.h",
        "    rb_claimant_attempt(e, *current, n);\n    RB_MAY_DIE(1);\n"
        "    if (rb_cas_release_i64(&q->cursor->value, current, *current + n)) {\n",
        "    if (rb_cas_release_i64(&q->cursor->value, current, *current + n)) {\n"
        "        rb_claimant_attempt(e, *current - n, n);\n",
        "unb_slow", "USER ASSERT FAILED"),
}


def _headers(dest, mutation=None):
    dest.mkdir(parents=True)
    for name in HEADERS:
        text = (SRC / name).read_text()
        if mutation is not None and mutation[0] == name:
            _, old, new = mutation[:3]
            assert text.count(old) == 1, f"mutation anchor not found once in {name}: {old!r}"
            text = text.replace(old, new)
        (dest / name).write_text(text)
    return dest


def _compile(include, out, opt, harness=HARNESS):
    cmd = ["g++", opt, "-std=c++11", "-w", f"-I{include}", str(harness), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    """Compile the real models (-O1: they run long) and every mutant (-O0: caught at once)."""
    base = tmp_path_factory.mktemp("relacy")
    real = _headers(base / "real")
    jobs = {"real": (real, "-O1", HARNESS), "real_records": (real, "-O1", RECORD_HARNESS),
            "real_unblock": (real, "-O1", UNBLOCK_HARNESS)}
    for name, mutation in MUTANTS.items():
        jobs[name] = (_headers(base / name, mutation), "-O0", _harness(mutation[3]))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(_compile, inc, base / f"{name}.bin", opt, harness)
                   for name, (inc, opt, harness) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _run(binary, model, iterations, scheduler):
    args = [str(binary), model, str(iterations or 100_000_000), scheduler]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("model, iterations, scheduler", MODELS,
                         ids=[f"{m}-{s}" for m, _, s in MODELS])
def test_ring_model_passes(binaries, model, iterations, scheduler):
    binary = {"rec_": "real_records", "unb_": "real_unblock"}.get(model[:4], "real")
    proc = _run(binaries[binary], model, iterations, scheduler)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_weakened_ring_is_caught(binaries, mutant):
    model, expected = MUTANTS[mutant][3:]
    proc = _run(binaries[mutant], model, 200_000, "random")
    assert proc.returncode != 0, f"the {model} model did not catch {mutant}"
    assert expected in proc.stdout, proc.stdout[-4000:]
