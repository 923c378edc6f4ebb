"""glibc's allocator in a process that runs for months: few arenas, and freed memory handed back to the system.

aiortc encodes in executor threads and frees the frames and packets on the event loop's thread. glibc gives each
thread that allocates its own arena (up to eight per core), and memory freed into an arena that another thread
allocates from stays in that arena: the gateway's RSS crept by about 0.3 MiB a minute for the whole of a call while
the Python heap stayed still (tracemalloc, docs/performance.md). Two arenas (M_ARENA_MAX, as MALLOC_ARENA_MAX=2 does)
and a `malloc_trim` every minute bound that. On another C library both are left alone.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from typing import Final

log = logging.getLogger("cabine.gateway")

_M_ARENA_MAX: Final = -8  # glibc's malloc.h
ARENAS: Final = 2
TRIM_INTERVAL_S: Final = 60.0


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At start, before threads allocate: at most `arenas` malloc arenas; whether glibc took it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Hand free memory at the top of each arena back to the system; whether glibc released any."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)


async def trim_periodically(interval: float = TRIM_INTERVAL_S) -> None:
    """`trim()` every `interval` seconds, until cancelled (a millisecond or so each time)."""
    if _libc() is None:
        return
    while True:
        await asyncio.sleep(interval)
        trim()
