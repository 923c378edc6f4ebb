"""What every resource owner in the gateway shares: `async with` that closes, and tasks cancelled and awaited."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self


class AsyncResource:
    """Base for objects that own sockets, tasks, devices or processes: leaving `async with` calls close().

    Subclasses start in `__aenter__` (returning self) when they have something to start, and make close() safe to
    call twice.
    """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        raise NotImplementedError


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task, then wait for each to finish (a task's own CancelledError is expected, not an error)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
