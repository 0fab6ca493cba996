from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, final

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
        ring: RingBuffer,
        requests: ContextVar[Any],
        on_request: Callable[[Any], tuple[Any, ...]],
        send_gathered: Callable[[int], None],
        not_running: Callable[[], None],
        gather_max: int,
    ) -> None: ...
    def __call__(self, payload: Any) -> None: ...
