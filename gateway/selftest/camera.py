"""The camera check: it opens, delivers frames of the configured size at about the configured rate, not black."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Final

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from gateway.media.meters import VideoMeter, VideoStats
from gateway.media.sources import open_camera
from gateway.media.spec import SourceSpec, VideoFormat
from gateway.selftest.device import next_frame, open_and_measure
from gateway.selftest.report import failed, ok, skipped, warning
from signaling.protocol import SelftestCheck

NAME: Final = "camera"
# Below this share of the configured rate the picture stutters (webcams halve their rate in poor light).
SLOW_RATIO: Final = 0.75
# Sources whose size and rate come from the configuration; a file plays at its own.
_CONFIGURED: Final = frozenset({"v4l2", "test"})

LiveVideo = Callable[[], VideoStats | str | None]
"""The running cabin's view of the camera: the call's statistics; or a sentence saying why the camera is busy and
not measured (the check is then skipped with it); or None when nothing uses it (the probe then opens it)."""


def camera_check(stats: VideoStats, spec: SourceSpec, fmt: VideoFormat, *, live: bool = False) -> SelftestCheck:
    """The verdict on what the camera delivered."""
    prefix = "in a call: " if live else ""
    if stats.frames == 0:
        return failed(NAME, f"{prefix}no frame in the last seconds (camera stalled or unplugged?)")
    size = f"{stats.width}x{stats.height}"
    notes = []
    if spec.kind in _CONFIGURED and (stats.width, stats.height) != (fmt.width, fmt.height):
        notes.append(f"configured {fmt.width}x{fmt.height}")
    if stats.fps is None:
        rate = "1 frame"
    else:
        rate = f"{stats.fps:.1f} fps"
        if spec.kind in _CONFIGURED and stats.fps < SLOW_RATIO * fmt.fps:
            notes.append(f"slower than the configured {fmt.fps} fps")
    what = f"{prefix}{size} at {rate}" if stats.fps is not None else f"{prefix}{size}, {rate}"
    if notes:
        what += f" ({', '.join(notes)})"
    if stats.black:
        return failed(NAME, f"{what}, but the image is black (lens covered, or no light?)")
    if stats.flat:
        return warning(NAME, f"{what}, but the image is one flat colour (covered, or a faulty camera?)")
    if notes:
        return warning(NAME, f"{what}, image not black")
    return ok(NAME, f"{what}, image not black")


async def measure_camera(
    spec: SourceSpec, fmt: VideoFormat, *, first_frame_timeout: float, duration: float
) -> VideoStats | SelftestCheck:
    """Open the camera itself (no stand-in card, no rescaling), wait for its first frame, then measure for
    `duration` seconds. Returns the statistics, or a failed check saying why there are none."""
    return await open_and_measure(
        NAME,
        spec,
        functools.partial(open_camera, spec, fmt),
        functools.partial(_measure, spec=spec, first_frame_timeout=first_frame_timeout, duration=duration),
        open_timeout=first_frame_timeout,
    )


async def _measure(
    track: MediaStreamTrack, spec: SourceSpec, *, first_frame_timeout: float, duration: float
) -> VideoStats | SelftestCheck:
    """Read the first frame, then frames for `duration` seconds (or until a file source runs out)."""
    meter = VideoMeter(window=duration + 1.0, sample_every=duration / 5)
    try:
        async with asyncio.timeout(first_frame_timeout):
            frame = await next_frame(track, VideoFrame)
    except TimeoutError:
        return failed(NAME, f"opened {spec}, but no frame within {first_frame_timeout:g} s")
    except MediaStreamError:
        return failed(NAME, f"{spec} ended before its first frame")
    meter.observe(frame)
    with contextlib.suppress(TimeoutError, MediaStreamError):
        async with asyncio.timeout(duration):
            while True:
                meter.observe(await next_frame(track, VideoFrame))
    stats = meter.stats()
    if stats is None:  # pragma: no cover - the first frame was observed
        return failed(NAME, f"{spec} gave no frame")
    return stats


async def probe_camera(
    spec: SourceSpec,
    fmt: VideoFormat,
    *,
    live: LiveVideo | None = None,
    first_frame_timeout: float = 5.0,
    duration: float = 1.0,
) -> SelftestCheck:
    """The camera check: skipped without a camera, from the running call's view if any, else measured."""
    if spec.kind == "none":
        return skipped(NAME, "no camera configured")
    stats = live() if live is not None else None
    if isinstance(stats, str):
        return skipped(NAME, stats)
    if stats is not None:
        return camera_check(stats, spec, fmt, live=True)
    measured = await measure_camera(spec, fmt, first_frame_timeout=first_frame_timeout, duration=duration)
    if isinstance(measured, VideoStats):
        return camera_check(measured, spec, fmt)
    return measured
