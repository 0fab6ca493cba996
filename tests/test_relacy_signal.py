"""Model-check the signal protocol of the asyncio consumer with Relacy
(tests/relacy/signal_models.cpp).

The models compile src/ringbus/_signal.h and _ringbuffer.h themselves (their RINGBUS_RELACY
layer): an event loop waiting for events, producers racing to wake it, coroutines waiting for
room. Each model must pass; each mutant (one fence removed from _signal.h) must be caught as
a deadlock. Skipped without g++ or Relacy's headers (Debian: apt-get install relacy-dev).
"""
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ringbus"
HARNESS = ROOT / "tests" / "relacy" / "signal_models.cpp"
HEADERS = ("_atomic.h", "_claimants.h", "_ringbuffer.h", "_signal.h")

pytestmark = [
    pytest.mark.skipif(
        not Path("/usr/include/relacy/relacy.hpp").exists() or shutil.which("g++") is None,
        reason="Relacy (apt-get install relacy-dev) and g++ are needed"),
    # .ci/sanitize preloads a sanitizer runtime: the models test no extension build, and
    # their compiler would run sanitized.
    pytest.mark.skipif("san" in os.environ.get("LD_PRELOAD", ""),
                       reason="a sanitizer runtime is preloaded"),
]

MODELS = [
    ("loop_wake", 100_000, "random"),
    ("loop_wake", 0, "bound"),
    ("loop_wake_mp", 100_000, "random"),
    ("loop_wake_mp", 0, "bound"),
    ("room", 100_000, "random"),
    ("room", 0, "bound"),
]

# name -> (exact text in _signal.h, replacement, model that must catch it)
MUTANTS = {
    "no_fence_in_arm": (
        "    rb_store_relaxed_i32(&s->armed, 1);\n    rb_fence_seq_cst();",
        "    rb_store_relaxed_i32(&s->armed, 1);", "loop_wake"),
    "no_fence_in_take": (
        "{\n    rb_fence_seq_cst();\n    if (rb_load_relaxed_i32(&s->armed) == 0)",
        "{\n    if (rb_load_relaxed_i32(&s->armed) == 0)", "loop_wake"),
}


def _headers(dest, mutation=None):
    dest.mkdir(parents=True)
    for name in HEADERS:
        text = (SRC / name).read_text()
        if mutation is not None and name == "_signal.h":
            old, new = mutation[:2]
            assert text.count(old) == 1, f"mutation anchor not found once: {old!r}"
            text = text.replace(old, new)
        (dest / name).write_text(text)
    return dest


def _compile(include, out, opt):
    cmd = ["g++", opt, "-std=c++11", "-w", f"-I{include}", str(HARNESS), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    base = tmp_path_factory.mktemp("relacy_signal")
    jobs = {"real": (_headers(base / "real"), "-O1")}
    for name, mutation in MUTANTS.items():
        jobs[name] = (_headers(base / name, mutation), "-O0")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(_compile, inc, base / f"{name}.bin", opt)
                   for name, (inc, opt) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _run(binary, model, iterations, scheduler):
    args = [str(binary), model, str(iterations or 100_000_000), scheduler]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("model, iterations, scheduler", MODELS,
                         ids=[f"{m}-{s}" for m, _, s in MODELS])
def test_signal_model_passes(binaries, model, iterations, scheduler):
    proc = _run(binaries["real"], model, iterations, scheduler)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_signal_without_a_fence_is_caught(binaries, mutant):
    model = MUTANTS[mutant][2]
    proc = _run(binaries[mutant], model, 200_000, "random")
    assert proc.returncode != 0, f"the {model} model did not catch {mutant}"
    assert "DEADLOCK" in proc.stdout, proc.stdout[-4000:]
