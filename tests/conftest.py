"""Shared fixtures: most behaviour tests run against both the compiled bus and the model;
and, for the whole run, the rule that no segment or process outlives the tests."""
import os
import time
from pathlib import Path

import pytest

import ringbus

from reference import Bus as ReferenceBus

IMPLEMENTATIONS = {"ringbus": ringbus.Bus, "reference": ReferenceBus}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def make_bus(request):
    """A Bus factory: ``make_bus(on_error=..., max_depth=...)``.

    Parametrized over ``ringbus.Bus`` and the pure-Python reference model, so that the model
    the parity tests trust is itself held to the contract.
    """
    return IMPLEMENTATIONS[request.param]


@pytest.fixture
def bus(make_bus):
    return make_bus()


@pytest.fixture
def tick(bus):
    return bus.event_type("md.tick")


class Recorder:
    """Handlers that append their label to one shared list."""

    def __init__(self):
        self.calls = []

    def handler(self, label, *, fail=None):
        def handle(payload):
            self.calls.append((label, payload))
            if fail is not None:
                raise fail
        handle.__qualname__ = f"handler_{label}"
        return handle

    @property
    def labels(self):
        return [label for label, _ in self.calls]


@pytest.fixture
def rec():
    return Recorder()


def _live_children():
    """This process's children still running (multiprocessing's forkserver and resource
    tracker aside: they end with this process)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue                        # ended meanwhile
        if int(fields[1]) == me and fields[0] != "Z" \
                and "forkserver" not in cmdline and "resource_tracker" not in cmdline:
            found.append(f"{stat.parent.name}: {cmdline.strip()[:120]}")
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    """When the run ends, no shared-memory segment it made and no process it started is
    left (a few seconds of grace for processes that are already exiting). A new segment
    counts when this process made it or its maker is gone; one whose maker is another live
    process belongs to someone else (a second test run on the machine)."""
    from ringbus import shm

    def ours(seg):
        return seg.creator_pid == os.getpid() or not seg.creator_alive

    before = {s.name for s in shm.segments()}
    yield
    deadline = time.monotonic() + 10
    while True:
        segments = sorted(s.name for s in shm.segments() if s.name not in before and ours(s))
        children = _live_children() if Path("/proc/self/stat").exists() else []
        if (not segments and not children) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not segments, f"segments left behind by the test run: {segments}"
    assert not children, f"processes left behind by the test run: {children}"
