"""Opening a device with av through aiortc's MediaPlayer, and letting it go, without ever blocking the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import MediaStreamTrack

from gateway.errors import GatewayError


class MediaSourceError(GatewayError, OSError):
    """A camera or microphone could not be opened."""


async def open_device(device: str, fmt: str | None, options: dict[str, str], kind: str) -> MediaStreamTrack:
    """Open a camera, microphone or file with av (in a thread: opening a device can block) and return its track.

    If the caller gives up waiting (a timeout), the device opened later is released as soon as the open returns.

    Raises:
        MediaSourceError: it cannot be opened, or has no track of that kind.
    """
    from aiortc.contrib.media import MediaPlayer

    def make() -> Any:
        return MediaPlayer(device, format=fmt, options=options)

    future = asyncio.get_running_loop().run_in_executor(None, make)
    try:
        player = await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_release_abandoned)
        raise
    except Exception as exc:  # av raises many OSError/ValueError subclasses per backend
        raise MediaSourceError(f"cannot open {fmt or 'file'} {device!r}: {exc}") from exc
    track: MediaStreamTrack | None = player.video if kind == "video" else player.audio
    if track is None:
        for other in (player.video, player.audio):
            if other is not None:
                release(other)
        raise MediaSourceError(f"{device!r} has no {kind}")
    other = player.audio if kind == "video" else player.video
    if other is not None:
        release(other)  # a file with both: this source uses one
    return track


def _release_abandoned(future: asyncio.Future[Any]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    player = future.result()
    for track in (player.video, player.audio):
        if track is not None:
            release(track)


def release(track: MediaStreamTrack) -> None:
    """Stop a device's track without ever blocking the event loop.

    aiortc's MediaPlayer joins its reading thread when its last track stops; a device that hangs in a read would
    hold the event loop, and with it the whole cabin. The track ends here at once; the player is let go in a thread.
    """
    player = getattr(track, "_player", None)  # aiortc's PlayerStreamTrack keeps its player there
    if player is None:
        track.stop()
        return
    track._player = None  # type: ignore[attr-defined]
    MediaStreamTrack.stop(track)  # ended now, in the loop's thread (it emits "ended" to its listeners)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        player._stop(track)
        return
    # The executor holds the job until it is done: no reference needs keeping here.
    loop.run_in_executor(None, player._stop, track)
