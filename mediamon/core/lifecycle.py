"""`async with` for anything with `start()` and `stop()`: the runtime, the simulator."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Lifecycle:
    """Started on entering an `async with` block and stopped on leaving it, however."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
