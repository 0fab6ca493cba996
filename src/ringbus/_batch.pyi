from typing import Any

from ringbus._dispatch import DispatchTable

# Not API: the bus's batch routing (Bus.emit_batch / publish_batch).
def prepare(table: DispatchTable, types: Any, rows: Any, copy: bool = False,
            registry: Any = None) -> Any: ...
def route(table: DispatchTable, ids_array: Any, rows: Any) -> int: ...
