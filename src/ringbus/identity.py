"""Event identity, process-wide: one dense small id per name, the same on every bus.

A bus's table is an array indexed by these ids, so they stay dense; each bus still
registers the types it uses (``bus.event_type``), and a bus given an id it never
registered refuses it, naming the event. A bare int id (``bus.event_type(7)``) is
allocated here too, unnamed, and never handed to a name.

Registration only: nothing here runs on the path of an event.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Optional, Union

__all__ = ["MAX_EVENT_TYPES", "FREE", "id_of", "claim", "name_of", "describe", "table"]

#: Ids stay dense and a bus's table is an array indexed by id; this bounds its memory.
MAX_EVENT_TYPES = 1 << 24

#: An id below the highest allocated one that nothing has taken (a bare int id jumped it).
FREE = False

_lock = threading.Lock()
_names: dict[str, int] = {}
# Per id: its name, None for a bare int id, FREE for an id not allocated.
_ids: list[Union[str, None, bool]] = []


def id_of(name: str) -> int:
    """The id of ``name`` (a checked, non-pattern name), allocated the first time."""
    t = _names.get(name)
    if t is not None:
        return t
    with _lock:
        t = _names.get(name)
        if t is None:
            t = len(_ids)
            if t >= MAX_EVENT_TYPES:
                raise ValueError(f"more than {MAX_EVENT_TYPES} event types in this process")
            _ids.append(name)
            _names[name] = t
        return t


def claim(t: int) -> int:
    """Allocate bare int id ``t`` (unnamed) if nothing has it yet; return ``t``."""
    with _lock:
        if t >= len(_ids):
            _ids.extend([FREE] * (t + 1 - len(_ids)))
        if _ids[t] is FREE:
            _ids[t] = None
        return t


def name_of(t: int) -> Union[str, None, bool]:
    """The name of id ``t``; None for a bare int id; FREE if ``t`` is not allocated."""
    return _ids[t] if 0 <= t < len(_ids) else FREE


def describe(t: int) -> str:
    """How an error names event id ``t``: ``3 ('md.tick')``, ``3 (unnamed)`` or ``3``."""
    name = name_of(t)
    if name is FREE:
        return f"{t}"
    return f"{t} ({name!r})" if name is not None else f"{t} (unnamed)"


def table() -> list[Union[str, None, bool]]:
    """The process's ids in order (a copy): name, None (bare int) or FREE. A worker process
    replays it in order to give every name its parent's id (ringbus.workers)."""
    with _lock:
        return list(_ids)


@contextlib.contextmanager
def _isolated():
    """Not API (tests written when each bus numbered its types from 0): an empty id table
    for the block, the process's table back after it. Buses made inside belong to it."""
    global _names, _ids
    saved = _names, _ids
    _names, _ids = {}, []
    try:
        yield
    finally:
        _names, _ids = saved


def _reset_for_fork() -> None:
    # A fork while another thread held the lock would leave the child's copy held.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_for_fork)
