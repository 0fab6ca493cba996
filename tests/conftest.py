"""Shared fixtures: most behaviour tests run against both the compiled bus and the model."""
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
