from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, SupportsIndex, final

from typing_extensions import disjoint_base

from ringbus._bus import Bus
from ringbus._ring import RingBuffer

@final
class Router:
    def __init__(
        self,
        event_type: int,
        processes: int,
        key: Callable[[Any], Any] | None,
        worker_index: Callable[[Any, int], int],
        publish: list[Callable[[Any], Any]],
        gathering: list[list[Any]],
        gathering_types: list[Any],
        ring: RingBuffer,
        requests: ContextVar[Any],
        on_request: Callable[[Any], tuple[Any, ...]],
        send_gathered: Callable[[int], None],
        not_running: Callable[[], None],
        gather_max: int,
    ) -> None: ...
    def __call__(self, payload: Any) -> None: ...

GATHERED: int

def unpack(types: int | list[int] | None, payloads: list[Any]) -> list[tuple[int, Any]]: ...
def is_gathered(message: Any) -> bool: ...
def emit_each(bus: Bus, types: int | list[int], payloads: list[Any]) -> None: ...

@disjoint_base
class GatheringBus(Bus):
    _gathered: list[Any] | None
    _gathered_types: int | list[int] | None
    def publish(self, event_type: SupportsIndex | str, payload: Any = None,
                timeout: float | None = None, lane: Any = None) -> bool: ...

def publish_each(bus: Bus, types: int | list[int], payloads: list[Any]) -> None: ...

def split_rows(rows: Any, offset: int, size: int, signed: bool,
               n: int) -> tuple[Any, list[int]]: ...
