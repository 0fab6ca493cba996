"""Every ```python block of README.md runs as written, each in a fresh interpreter, with
warnings as errors and nothing on stderr: the front door teaches only code that works. The
stand-ins a block needs (an order book, an exchange, a journal) are in the block itself,
named as stand-ins. Blocks in other languages are run elsewhere: the ```bash commands by
.ci/run, the ```cython snippet by tests/test_records_capi.py (examples/nogil_producer)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


# A block whose first line is "# file: NAME.py" is a module the other blocks import (worker
# processes import their setup by name): it is written next to each block as it runs.
FILE = re.compile(r"\A# file: (\w+\.py)\n")

# Blocks that use a DataFrame library (optional) skip without it, and carry the `pipelines`
# marker that .ci/sanitize deselects (the libraries' code, not ours, would run sanitized).
PIPELINE_LIBS = re.compile(r"^(?:import|from) (pandas|polars|pyarrow)\b", re.M)


def _blocks():
    text = README.read_text(encoding="utf-8")
    out, files = [], {}
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        named = FILE.match(m.group(1))
        if named:
            files[named.group(1)] = m.group(1)
        libs = PIPELINE_LIBS.findall(m.group(1))
        marks = [pytest.mark.pipelines] if libs else []
        out.append(pytest.param(m.group(1), id=f"README.md:{line}", marks=marks))
    return out, files


BLOCKS, FILES = _blocks()


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 3


# The bridges' block talks to the servers it names: the test starts them (tests/brokers.py)
# on free ports and points the block's URLs there (skipped, and deselected by .ci/sanitize
# as the other server tests, when they are not installed).
SERVER_URL = re.compile(r"(nats|redis)://127\.0\.0\.1:(\d+)")


@pytest.fixture
def servers_for(request):
    started = []

    def start(code):
        import brokers
        pytest.importorskip("msgspec", reason="the bridges' codec")
        ports = {}
        for engine, port in sorted(set(SERVER_URL.findall(code))):
            pytest.importorskip(engine if engine == "nats" else "redis")
            server = brokers.nats_server() if engine == "nats" else brokers.redis_server()
            started.append(server)
            ports[(engine, port)] = server.port
        return SERVER_URL.sub(lambda m: f"{m[1]}://127.0.0.1:{ports[(m[1], m[2])]}", code)
    yield start
    for server in started:
        server.stop()


def _marks(code):
    return [pytest.mark.servers] if "ringbus.bridge" in code else []


@pytest.mark.parametrize("code", [pytest.param(*p.values, id=p.id,
                                               marks=[*p.marks, *_marks(p.values[0])])
                                  for p in BLOCKS])
def test_readme_block_runs_as_written(code, tmp_path, servers_for):
    if re.search(r"^import numpy", code, re.M):
        # Record rings need numpy, which .ci/sanitize's leak check hides on purpose.
        pytest.importorskip("numpy", reason="the block uses numpy")
    for lib in sorted(set(PIPELINE_LIBS.findall(code))):
        pytest.importorskip(lib, reason=f"the block uses {lib}")
    if "ringbus.bridge" in code:
        code = servers_for(code)
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stderr == "", proc.stderr
    # A print whose line ends in "# -> output" must print exactly that.
    for stmt, said in re.findall(r"^\s*print\((.*)\)\s+# -> (.+)$", code, re.M):
        assert said.strip() in proc.stdout, (stmt, said, proc.stdout)
