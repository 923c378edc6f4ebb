"""What the camera and microphone checks share: open the device with a timeout, measure it, always let it go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

from gateway.media.player import release
from gateway.media.sources import MediaSourceError
from gateway.media.spec import SourceSpec
from gateway.selftest.report import failed
from signaling.protocol import SelftestCheck

T = TypeVar("T")
F = TypeVar("F", VideoFrame, AudioFrame)


async def open_and_measure(
    name: str,
    spec: SourceSpec,
    open_track: Callable[[], Awaitable[MediaStreamTrack]],
    measure: Callable[[MediaStreamTrack], Awaitable[T | SelftestCheck]],
    *,
    open_timeout: float,
) -> T | SelftestCheck:
    """Open the device within `open_timeout` seconds and measure it; a failed check says why when it cannot."""
    try:
        async with asyncio.timeout(open_timeout):
            track = await open_track()
    except TimeoutError:
        return failed(name, f"{spec} did not open within {open_timeout:g} s")
    except MediaSourceError as exc:  # the message names the device and av's reason
        return failed(name, str(exc))
    try:
        return await measure(track)
    finally:
        release(track)  # never blocks the event loop, even on a device that hangs


async def next_frame(track: MediaStreamTrack, kind: type[F]) -> F:
    """The next decoded frame.

    Raises:
        MediaStreamError: the source ended.
        TypeError: the source gave something else than decoded frames of that kind.
    """
    frame = await track.recv()
    if not isinstance(frame, kind):
        raise TypeError(f"expected a decoded {kind.__name__}, got {type(frame).__name__}")
    return frame
