"""What the laboratory's parts share: `async with` starts them and closes them."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Started:
    """Base for a part with `start()` (returning itself) and a `close()` safe to call twice."""

    async def start(self) -> Self:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
