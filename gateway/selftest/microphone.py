"""The microphone check: it opens and hears more than silence."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Final

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from gateway.media.meters import AudioLevel, AudioMeter
from gateway.media.player import release
from gateway.media.sources import MediaSourceError, open_device
from gateway.media.spec import SourceSpec
from gateway.media.synthetic import ToneAudioTrack
from gateway.selftest.report import failed, ok, skipped
from signaling.protocol import SelftestCheck

NAME: Final = "microphone"
# A live microphone's own noise in a quiet room sits around -60 to -50 dBFS; a dead or muted input gives digital
# silence (-inf) or little more than its converter's noise, far below this.
SILENCE_DBFS: Final = -70.0

LiveAudio = Callable[[], AudioLevel | str | None]
"""The running cabin's view of the microphone: the call's level; or a sentence saying why it is busy and not
measured (the check is then skipped with it); or None when nothing uses it (the probe then opens it)."""


def _dbfs(value: float) -> str:
    return "-inf dBFS" if math.isinf(value) else f"{value:.0f} dBFS"


def microphone_check(level: AudioLevel, *, threshold: float = SILENCE_DBFS, live: bool = False) -> SelftestCheck:
    """The verdict on the level heard."""
    prefix = "in a call: " if live else ""
    heard = f"level {_dbfs(level.dbfs)} over {level.seconds:.1f} s"
    if level.dbfs <= threshold:
        return failed(NAME, f"{prefix}silent: {heard}, needs above {_dbfs(threshold)} (muted or unplugged?)")
    return ok(NAME, f"{prefix}{heard}, above silence")


async def open_microphone(spec: SourceSpec) -> MediaStreamTrack:
    """The microphone itself, as configured: no silence standing in for it.

    Raises:
        MediaSourceError: it cannot be opened.
    """
    if spec.kind == "test":
        return ToneAudioTrack()
    return await open_device(spec.device, None if spec.kind == "file" else spec.kind, {}, "audio")


async def measure_microphone(
    spec: SourceSpec, *, first_frame_timeout: float, duration: float
) -> AudioLevel | SelftestCheck:
    """Open the microphone and measure its level over `duration` seconds of sound.

    Returns the level, or a failed check saying why there is none.
    """
    try:
        async with asyncio.timeout(first_frame_timeout):
            track = await open_microphone(spec)
    except TimeoutError:
        return failed(NAME, f"{spec} did not open within {first_frame_timeout:g} s")
    except MediaSourceError as exc:  # the message names the device and av's reason
        return failed(NAME, str(exc))
    try:
        return await _measure(track, spec, first_frame_timeout=first_frame_timeout, duration=duration)
    finally:
        release(track)  # never blocks the event loop, even on a device that hangs


async def _next(track: MediaStreamTrack) -> AudioFrame:
    """The next decoded frame.

    Raises:
        MediaStreamError: the source ended.
        TypeError: the source gave something else than decoded audio.
    """
    frame = await track.recv()
    if not isinstance(frame, AudioFrame):
        raise TypeError(f"expected decoded audio, got {type(frame).__name__}")
    return frame


async def _measure(
    track: MediaStreamTrack, spec: SourceSpec, *, first_frame_timeout: float, duration: float
) -> AudioLevel | SelftestCheck:
    """Read the first frame, then until `duration` seconds of sound were heard (or a file source runs out)."""
    meter = AudioMeter(window=duration)
    try:
        async with asyncio.timeout(first_frame_timeout):
            meter.observe(await _next(track))
    except TimeoutError:
        return failed(NAME, f"opened {spec}, but no sound within {first_frame_timeout:g} s")
    except MediaStreamError:
        return failed(NAME, f"{spec} ended before its first sound")
    # Sound comes in real time: allow twice its duration, plus a second for a slow start.
    with contextlib.suppress(TimeoutError, MediaStreamError):
        async with asyncio.timeout(2 * duration + 1.0):
            while meter.seconds < duration:
                meter.observe(await _next(track))
    level = meter.level()
    if level is None:  # pragma: no cover - the first frame was observed
        return failed(NAME, f"{spec} gave no sound")
    return level


async def probe_microphone(
    spec: SourceSpec,
    *,
    live: LiveAudio | None = None,
    threshold: float = SILENCE_DBFS,
    first_frame_timeout: float = 5.0,
    duration: float = 0.5,
) -> SelftestCheck:
    """The microphone check: skipped without one, from the running call's view if any, else measured."""
    if spec.kind == "none":
        return skipped(NAME, "no microphone configured")
    level = live() if live is not None else None
    if isinstance(level, str):
        return skipped(NAME, level)
    if level is not None:
        return microphone_check(level, threshold=threshold, live=True)
    measured = await measure_microphone(spec, first_frame_timeout=first_frame_timeout, duration=duration)
    if isinstance(measured, AudioLevel):
        return microphone_check(measured, threshold=threshold)
    return measured
