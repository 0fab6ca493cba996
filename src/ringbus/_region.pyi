# Region providers (not API): where a ring's memory lives. Made by the rings, never by users.
from typing import final

from typing_extensions import disjoint_base

SHM_PREFIX: str

def shm_path(name: str) -> str: ...

@disjoint_base
class Region:
    def __init__(self, *args: object, **kwargs: object) -> None: ...   # refuses: TypeError
    @property
    def private(self) -> bool: ...

@final
class HeapRegion(Region): ...

@final
class SharedRegion(Region):
    @property
    def name(self) -> str: ...
    def unlink(self) -> None: ...
