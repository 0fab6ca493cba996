"""The handler order of one event type: dependency edges, then priority, then age.

A pure function over subscriptions, run at registration time only. ``order`` is a
topological sort (Kahn) whose ready set is a heap keyed by (-priority, registration seq):
among the handlers whose dependencies have all been placed, the highest priority goes
first, and registration order breaks ties.
"""
from __future__ import annotations

import heapq
from typing import Hashable, Iterable, Mapping, Sequence, TypeVar

Node = TypeVar("Node", bound=Hashable)


class OrderCycleError(ValueError):
    """The ``after=`` / ``before=`` edges of an event type form a cycle."""

    def __init__(self, message: str, cycle: Sequence[object]):
        super().__init__(message)
        self.cycle = tuple(cycle)


def order(nodes: Sequence[Node], preds: Mapping[Node, Iterable[Node]],
          key) -> list[Node]:
    """Nodes sorted so every node follows its predecessors; ``key`` breaks ties (lowest first).

    Raises OrderCycleError naming the nodes of one cycle if there is no such order.
    """
    indegree = {n: 0 for n in nodes}
    succs: dict[Node, list[Node]] = {n: [] for n in nodes}
    for n in nodes:
        for p in preds.get(n, ()):
            if p in indegree:
                indegree[n] += 1
                succs[p].append(n)
    position = {n: i for i, n in enumerate(nodes)}
    ready = [(key(n), i, n) for i, n in enumerate(nodes) if indegree[n] == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        _, _, n = heapq.heappop(ready)
        out.append(n)
        for s in succs[n]:
            indegree[s] -= 1
            if indegree[s] == 0:
                heapq.heappush(ready, (key(s), position[s], s))
    if len(out) != len(nodes):
        stuck = [n for n in nodes if indegree[n] > 0]
        cycle = find_cycle(stuck, preds)
        raise OrderCycleError("dependency cycle: " + " -> ".join(map(str, cycle)), cycle)
    return out


def find_cycle(nodes: Sequence[Node], preds: Mapping[Node, Iterable[Node]]) -> list[Node]:
    """One cycle among ``nodes`` (which must contain one), first node repeated at the end."""
    inside = set(nodes)
    # Every stuck node has a stuck predecessor, so walking predecessors must revisit a node.
    path: list[Node] = []
    seen: dict[Node, int] = {}
    n = nodes[0]
    while n not in seen:
        seen[n] = len(path)
        path.append(n)
        n = next(p for p in preds.get(n, ()) if p in inside)
    cycle = path[seen[n]:]
    cycle.reverse()     # walked against the edges; report in run order
    return cycle + [cycle[0]]
