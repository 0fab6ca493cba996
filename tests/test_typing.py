"""The stubs hold: ``mypy.stubtest`` finds them consistent with the compiled runtime, and
the README's examples (``await bus.request(...)`` included) pass ``mypy --strict`` as
written. mypy runs in a subprocess, on the installed package, with its cache in a
temporary folder; skipped without mypy (the ``test`` extra installs it) and under a
sanitizer runtime (mypy is itself compiled; the sanitizer runs test ringbus, not mypy)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is in the test extra")
pytestmark = pytest.mark.skipif("san" in os.environ.get("LD_PRELOAD", ""),
                                reason="a sanitizer runtime is preloaded")

ROOT = Path(__file__).resolve().parent.parent
ALLOWLIST = Path(__file__).resolve().parent / "typing" / "stubtest-allowlist.txt"
CONFIG = Path(__file__).resolve().parent / "typing" / "mypy.ini"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def _mypy(args, tmp_path):
    # From an empty folder: the source tree must not shadow the installed package.
    env = dict(os.environ, MYPY_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_stubtest_finds_the_stubs_consistent_with_the_runtime(tmp_path):
    proc = _mypy(["mypy.stubtest", "ringbus", "--allowlist", str(ALLOWLIST),
                  "--mypy-config-file", str(CONFIG)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_readme_examples_pass_mypy_strict(tmp_path):
    blocks = FENCE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks
    files = []
    for i, code in enumerate(blocks):
        f = tmp_path / f"readme_block_{i}.py"
        f.write_text(code, encoding="utf-8")
        files.append(str(f))
    proc = _mypy(["mypy", "--strict", *files], tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_stub_types_catch_misuse(tmp_path):
    """The stubs are not all Any: a wrong policy string and a sync-only use of an awaited
    reply are type errors."""
    f = tmp_path / "misuse.py"
    f.write_text(
        "import ringbus\n"
        "bus = ringbus.Bus(overflow='dorp')\n"                      # not a policy
        "T = bus.event_type('t')\n"
        "n: str = bus.emit(T, 1)\n"                                 # emit returns int
        "ring: int = bus.ring\n"                                    # a RingBuffer
        "async def main() -> None:\n"
        "    reply: int = await bus.request(T, 1)\n"                # Any: allowed
        "    ok: bool = await bus.publish_async(T, 1)\n",
        encoding="utf-8")
    proc = _mypy(["mypy", "--strict", str(f)], tmp_path)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "misuse.py:2: error" in out and "overflow" in out, out
    assert "misuse.py:4: error" in out, out
    assert "misuse.py:5: error" in out, out
    assert "misuse.py:7" not in out and "misuse.py:8" not in out, out
