"""The shared-memory segments ringbus made on this machine: list them, remove one.

``python -m ringbus shm ls`` and ``python -m ringbus shm rm NAME`` are for what a killed
process left behind: a segment lives until it is unlinked, whoever made it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SHM_DIR = Path("/dev/shm")
PREFIX = "ringbus."


@dataclass(frozen=True)
class Segment:
    """One ringbus segment, as its header says (``problem``: why it could not be read)."""
    name: str
    size: int
    kind: str                       # "records", "messages", or "unknown" (unusable header)
    creator_pid: int = 0
    consumer_pid: int = 0
    capacity: int = 0
    pending: int = 0
    problem: Optional[str] = None

    @property
    def creator_alive(self) -> bool:
        return _alive(self.creator_pid)

    @property
    def consumer_alive(self) -> bool:
        return _alive(self.consumer_pid)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    from ringbus._records import _pid_alive
    return bool(_pid_alive(pid))


def segments() -> list[Segment]:
    """Every ``/dev/shm/ringbus.*`` segment, by name; each header is checked as attach
    checks it, and an unusable one is listed with the reason. Only the header is read (no
    handle, no lease, no numpy)."""
    from ringbus._records import _header_info
    out: list[Segment] = []
    if not SHM_DIR.is_dir():
        return out
    for path in sorted(SHM_DIR.glob(PREFIX + "*")):
        name = path.name[len(PREFIX):]
        size = 0
        try:
            size = path.stat().st_size
            kind, capacity, creator, consumer, pending = _header_info(name)
        except FileNotFoundError:
            continue                  # removed meanwhile
        except (ValueError, OSError) as exc:
            out.append(Segment(name, size, "unknown", problem=str(exc)))
            continue
        out.append(Segment(name, size, kind, creator, consumer, capacity, pending))
    return out


def remove(name: str) -> None:
    """Unlink segment ``name`` (FileNotFoundError if there is none)."""
    from ringbus._region import shm_path
    path = SHM_DIR / shm_path(name)[1:]
    path.unlink()


def render(segs: list[Segment]) -> str:
    if not segs:
        return "no ringbus shared-memory segments\n"
    rows = [("NAME", "KIND", "BYTES", "CAPACITY", "PENDING", "CREATOR", "CONSUMER")]
    for s in segs:
        def who(pid: int, alive: bool) -> str:
            return "-" if pid <= 0 else f"{pid} ({'alive' if alive else 'gone'})"
        rows.append((s.name, s.kind, str(s.size), str(s.capacity or "-"), str(s.pending),
                     who(s.creator_pid, s.creator_alive),
                     who(s.consumer_pid, s.consumer_alive)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"{s.name}: {s.problem}" for s in segs if s.problem]
    return "\n".join(lines) + "\n"


def main(command: str, name: Optional[str] = None) -> int:
    if command == "ls":
        print(render(segments()), end="")
        return 0
    assert name is not None
    try:
        remove(name)
    except FileNotFoundError:
        print(f"no ringbus segment named {name!r}", file=sys.stderr)
        return 1
    print(f"removed {name}")
    return 0
