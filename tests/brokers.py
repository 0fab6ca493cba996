"""Real servers for the bridge tests (``ringbus.bridge.testing``): a test that needs one
skips, saying why, when it is not installed (``apt-get install nats-server redis-server``;
``.ci/run`` installs both)."""
from __future__ import annotations

from typing import Any

import pytest

from ringbus.bridge import testing
from ringbus.bridge.testing import Server

__all__ = ["Server", "nats_server", "redis_server"]


def nats_server(**kw: Any) -> Server:
    try:
        return testing.nats_server(**kw)
    except testing.ServerMissing as exc:
        pytest.skip(str(exc))


def redis_server(**kw: Any) -> Server:
    try:
        return testing.redis_server(**kw)
    except testing.ServerMissing as exc:
        pytest.skip(str(exc))
