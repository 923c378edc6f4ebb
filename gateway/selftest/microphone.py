"""The microphone check: it opens and hears more than silence."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Callable
from typing import Final

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from gateway.media.meters import AudioLevel, AudioMeter
from gateway.media.sources import open_microphone
from gateway.media.spec import SourceSpec
from gateway.selftest.device import next_frame, open_and_measure
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


async def measure_microphone(
    spec: SourceSpec, *, first_frame_timeout: float, duration: float
) -> AudioLevel | SelftestCheck:
    """Open the microphone itself (no silence standing in) and measure its level over `duration` seconds of sound.
    Returns the level, or a failed check saying why there is none."""
    return await open_and_measure(
        NAME,
        spec,
        functools.partial(open_microphone, spec),
        functools.partial(_measure, spec=spec, first_frame_timeout=first_frame_timeout, duration=duration),
        open_timeout=first_frame_timeout,
    )


async def _measure(
    track: MediaStreamTrack, spec: SourceSpec, *, first_frame_timeout: float, duration: float
) -> AudioLevel | SelftestCheck:
    """Read the first frame, then until `duration` seconds of sound were heard (or a file source runs out)."""
    meter = AudioMeter(window=duration)
    try:
        async with asyncio.timeout(first_frame_timeout):
            meter.observe(await next_frame(track, AudioFrame))
    except TimeoutError:
        return failed(NAME, f"opened {spec}, but no sound within {first_frame_timeout:g} s")
    except MediaStreamError:
        return failed(NAME, f"{spec} ended before its first sound")
    # Sound comes in real time: allow twice its duration, plus a second for a slow start.
    with contextlib.suppress(TimeoutError, MediaStreamError):
        async with asyncio.timeout(2 * duration + 1.0):
            while meter.seconds < duration:
                meter.observe(await next_frame(track, AudioFrame))
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
