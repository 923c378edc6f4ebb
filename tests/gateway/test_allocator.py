"""glibc's allocator tuned for a long-running gateway: two arenas, free memory handed back every minute."""

from __future__ import annotations

import asyncio
import ctypes

import pytest

from gateway.allocator import limit_arenas, trim, trim_periodically


def test_glibc_takes_the_arena_limit_and_trims() -> None:
    # Debian's C library is glibc: both calls are real here (on another libc they return False and change nothing).
    assert limit_arenas(2) is True
    block = ctypes.create_string_buffer(64 * 1024 * 1024)  # 64 MiB, then freed: something to hand back
    del block
    assert isinstance(trim(), bool)


async def test_the_trim_loop_runs_until_cancelled() -> None:
    task = asyncio.ensure_future(trim_periodically(0.01))
    await asyncio.sleep(0.05)
    assert not task.done(), "it keeps going"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
