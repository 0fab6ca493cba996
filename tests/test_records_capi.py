"""The record C API from another extension: build examples/nogil_producer against the
installed ringbus (its .pxd and header from ringbus.get_include()), then publish from its
nogil loop in threads while Python consumes; and build it with the commands its README gives,
in a fresh virtual environment. Skipped without a C compiler, Cython or setuptools."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

try:
    import numpy as np     # at module level: .ci/sanitize leaves such files out of its leak check
except ImportError:        # pragma: no cover
    pytest.skip("numpy is needed for record rings", allow_module_level=True)

import ringbus
from ringbus import RecordRing

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nogil_producer"
SCALE = float(os.environ.get("RINGBUS_STRESS_SCALE", "1"))


def _c_compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(shlex.split(cc)[0])


@pytest.fixture(scope="module")
def nogil_producer(tmp_path_factory):
    pytest.importorskip("Cython", reason="Cython is needed to build the example")
    pytest.importorskip("setuptools", reason="setuptools is needed to build the example")
    if _c_compiler() is None:
        pytest.skip("no C compiler")
    tmp = tmp_path_factory.mktemp("nogil_producer")
    src, lib = tmp / "src", tmp / "lib"
    shutil.copytree(EXAMPLE, src)
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(lib),
         "--build-temp", str(tmp / "build")],
        cwd=src, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    sys.path.insert(0, str(lib))
    try:
        import nogil_producer
        yield nogil_producer
    finally:
        sys.path.remove(str(lib))


def _documented_commands():
    """The shell commands of the example's README: its indented lines that run pip or python."""
    text = (EXAMPLE / "README.md").read_text()
    return [line.strip() for line in re.findall(r"^    ((?:pip|python) .*)$", text, re.M)]


def _fresh_venv(path):
    """A new virtual environment, with what `python -m venv` puts in one (pip; on Python 3.11,
    setuptools 65.5, which has no bdist_wheel), that also sees this environment's packages
    after its own: ringbus and numpy, without building or downloading them again."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    # addsitedir, not a plain path line: it also runs this environment's .pth files (an
    # editable ringbus is found through one).
    here = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    Path(purelib, "zz_parent_env.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in sorted(here)))
    return path / "bin"


def test_the_documented_commands_build_and_run_the_example_in_a_fresh_venv(tmp_path):
    if "san" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("under a sanitizer runtime pip and the compiler would run under LD_PRELOAD "
                    "too; the fixture above builds the example in these runs")
    pytest.importorskip("Cython", reason="Cython is needed to build the example")
    if _c_compiler() is None:
        pytest.skip("no C compiler")
    commands = _documented_commands()
    assert [c.split()[0] for c in commands] == ["pip", "pip", "python"], commands
    # A copy, so that the build leaves nothing in the checkout; the commands run from its
    # root, as written (paths relative to the repository).
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root / "examples" / "nogil_producer",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "*.so"))
    bin_dir = _fresh_venv(tmp_path / "venv")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(bin_dir.parent), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONHOME", None)
    outputs = []
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    assert re.fullmatch(r"2000000 records in \d+ batches, .* in order\n", outputs[-1]), outputs[-1]
    # The extension went into the new environment, not into this one.
    assert list((bin_dir.parent / "lib").glob("python*/site-packages/nogil_producer*.so"))


def check_in_order(producers):
    state = {"next": [0] * producers, "errors": []}

    def handler(view):
        seq = view["seq"]
        pid, idx = seq >> 32, seq & 0xFFFFFFFF
        for p in np.unique(pid).tolist():
            got = idx[pid == p]
            want = np.arange(state["next"][p], state["next"][p] + len(got))
            if not np.array_equal(got, want):
                state["errors"].append((p, int(want[0]), int(got[0])))
            state["next"][p] += len(got)
        np.testing.assert_array_equal(view["price"], idx * 0.25)

    return handler, state


@pytest.mark.parametrize("wait", ["block", "yield"])
def test_every_record_arrives_in_order(nogil_producer, wait):
    count = max(10_000, int(1_000_000 * SCALE))
    ring = RecordRing(nogil_producer.TICK, 1024, wait=wait)
    handler, state = check_in_order(1)
    ring.subscribe(handler)
    published = []
    with ring.running():
        producer = threading.Thread(
            target=lambda: published.append(nogil_producer.produce(ring, count)))
        producer.start()
        producer.join()
    assert published == [count]
    assert state["errors"] == []
    assert state["next"] == [count]
    assert ring.stats()["dispatched"] == count


def test_several_nogil_producers(nogil_producer):
    count = max(10_000, int(300_000 * SCALE))
    ring = RecordRing(nogil_producer.TICK, 256)
    handler, state = check_in_order(3)
    ring.subscribe(handler)
    with ring.running():
        threads = [threading.Thread(target=nogil_producer.produce, args=(ring, count, p))
                   for p in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert state["errors"] == []
    assert state["next"] == [count] * 3


def test_try_publish_and_timeouts_without_a_consumer(nogil_producer):
    ring = RecordRing(nogil_producer.TICK, 8)
    assert nogil_producer.try_produce(ring, 20) == 8        # RINGBUS_FULL at the 9th
    assert nogil_producer.produce(ring, 5, timeout=0.01) == 0   # RINGBUS_TIMEOUT
    assert ring.drain() == 8
    assert nogil_producer.produce(ring, 8, timeout=0.01) == 8


def test_overflow_policies_apply_to_c_producers(nogil_producer):
    dropping = RecordRing(nogil_producer.TICK, 4, overflow="drop")
    assert nogil_producer.produce(dropping, 10) == 4          # RINGBUS_DROPPED at the 5th
    assert dropping.dropped == 1
    raising = RecordRing(nogil_producer.TICK, 4, overflow="raise")
    assert nogil_producer.produce(raising, 10) == 4           # RINGBUS_FULL
    assert raising.dropped == 0


def test_a_timeout_waits_then_the_policy_acts_for_c_producers(nogil_producer):
    # The overflow rule (tests/test_overflow_rule.py): under "drop" a timeout is a grace
    # period, then the record is dropped and counted; "raise" and "block" time out.
    for overflow in ("drop", "raise", "block"):
        ring = RecordRing(nogil_producer.TICK, 4, overflow=overflow)
        assert nogil_producer.produce(ring, 10, timeout=0.01) == 4
        assert ring.dropped == (1 if overflow == "drop" else 0)
        ring.drain()


def test_publishing_from_a_handler_into_the_full_ring_does_not_deadlock(nogil_producer):
    ring = RecordRing(nogil_producer.TICK, 4)
    results = []
    ring.subscribe(lambda view: results.append(nogil_producer.produce(ring, 100)))
    nogil_producer.produce(ring, 2)
    ring.drain(max_records=2)
    assert results == [2]          # room for 2, then RINGBUS_WOULD_DEADLOCK instead of a hang


def test_handle_checks(nogil_producer):
    with pytest.raises(TypeError, match="RecordRing"):
        nogil_producer.produce(object(), 1)
    with pytest.raises(ValueError, match="TICK"):
        nogil_producer.produce(RecordRing(np.dtype("<i8"), 4), 1)


def test_the_capsule_and_headers_ship():
    from ringbus import _records

    assert type(_records._C_API).__name__ == "PyCapsule"
    inc = Path(ringbus.get_include())
    for name in ("ringbus_records.h", "records.pxd"):
        assert (inc / name).is_file(), name
