"""What the tests that start processes and shared-memory segments share: a fresh segment
name removed afterwards whatever the test left, and child processes that are always reaped."""
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

SHM = Path("/dev/shm")


@pytest.fixture
def name():
    """A fresh segment name, removed after the test whatever it left."""
    n = f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield n
    try:
        (SHM / f"ringbus.{n}").unlink()
    except FileNotFoundError:
        pass


def run(code, *args, **kw):
    """A child Python running ``code`` (dedented) with ``args``, its output piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def reap(child):
    """However the test went: the child is gone and its pipes closed."""
    if child.poll() is None:
        child.kill()
        child.wait()
    for pipe in (child.stdin, child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()


def left_behind():
    """Segments this test process made and did not remove."""
    return sorted(p.name for p in SHM.glob(f"ringbus.test-{os.getpid()}-*"))
