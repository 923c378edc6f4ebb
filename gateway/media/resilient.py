"""A camera or microphone that may go away: the call goes on with a card (or silence) until the device is back.

A USB camera unplugged in the middle of a call, a microphone that stops answering, a recording that ends: the
track that the call sends never ends. It shows a "camera unavailable" card (or sends silence), tells its owner
once (so the operator is alerted), and tries to open the device again, with backoff, for as long as the call
lasts; when the device answers again, its frames go out again and the owner is told it is back.

Frames are restamped on the track's own clock, so the switch between device and card is invisible to the encoder.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from typing import Final

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.video.reformatter import VideoReformatter

from gateway.backoff import Backoff
from gateway.media.meters import AudioMeter, VideoMeter
from gateway.media.player import release

log = logging.getLogger("cabine.gateway.media")

VIDEO_CLOCK_RATE: Final = 90_000
AUDIO_RATE: Final = 48_000
SILENCE_SAMPLES: Final = AUDIO_RATE // 50  # 20 ms
# The card changes nothing from frame to frame: a few frames a second keep the picture alive for little CPU.
CARD_FPS: Final = 5
# A device that sends nothing for this long is taken as gone (a camera delivers a frame every 33 ms).
STALL_SECONDS: Final = 2.0
OPEN_TIMEOUT: Final = 10.0
RETRY: Final = Backoff(initial=1.0, factor=2.0, maximum=10.0, jitter=0.2)

Opener = Callable[[], Awaitable[MediaStreamTrack]]
# Told (available, reason) when the device goes away (False) and when it is back (True).
HealthCallback = Callable[[bool, str], None]


@cache
def _card_pixels(width: int, height: int) -> np.ndarray:
    """The "camera unavailable" card as yuv420p planes for `width`x`height` (the nearest aspect ratio's picture)."""
    name = "camera-unavailable-16x9.png" if width / height > 1.55 else "camera-unavailable-4x3.png"
    card = resources.files("gateway.media") / "cards" / name
    with resources.as_file(card) as path, av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    return frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MediaStreamError):
        return "the device stopped sending"
    if isinstance(exc, TimeoutError):
        return f"nothing received for {STALL_SECONDS:g} s"
    return str(exc) or type(exc).__name__


class _Supervised(MediaStreamTrack):
    """The part both kinds share: read the device, notice it is gone, reopen it with backoff."""

    def __init__(
        self,
        open_device: Opener,
        *,
        label: str,
        on_health: HealthCallback | None,
        meter: VideoMeter | AudioMeter | None = None,
    ) -> None:
        super().__init__()
        self._meter = meter
        self._open_device = open_device
        self._on_health = on_health
        self.label = label
        self._device: MediaStreamTrack | None = None
        self._failures = 0
        self._retry_at = 0.0  # the first attempt is now
        self.available: bool | None = None  # None until the first attempt
        self.reopened = 0

    async def _next_from_device(self) -> VideoFrame | AudioFrame | None:
        """A frame from the device, or None while it is unavailable (the caller fills in)."""
        if self._device is None and time.monotonic() >= self._retry_at:
            await self._try_open()
        device = self._device
        if device is None:
            return None
        try:
            async with asyncio.timeout(STALL_SECONDS):
                frame = await device.recv()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # av and the backends raise many kinds: every one means "no frame from it"
            self._close_device()
            log.info("%s: lost (%s); opening it again", self.label, _describe(exc))
            # A file that ended, or a blip: one immediate attempt before the card and the alert.
            if await self._try_open():
                return await self._next_from_device()
            return None
        if not isinstance(frame, VideoFrame | AudioFrame):
            return None
        self._set_available(True, "")
        if self._meter is not None:
            self._meter.observe(frame)  # type: ignore[arg-type]  # a video meter on the video track, and so on
        return frame

    async def _try_open(self) -> bool:
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                self._device = await self._open_device()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failures += 1
            delay = RETRY.jittered(self._failures - 1)
            self._retry_at = time.monotonic() + delay
            log.debug("%s: cannot open (%s); next attempt in %.1f s", self.label, _describe(exc), delay)
            self._set_available(False, _describe(exc))
            return False
        if self.available is False:
            self.reopened += 1
        self._failures = 0
        return True

    def _set_available(self, available: bool, reason: str) -> None:
        if self.available is available:
            return
        first = self.available is None
        self.available = available
        if available and first:
            return  # opened at the first attempt: nothing to report
        if available:
            log.warning("%s: available again", self.label)
        else:
            log.warning("%s: unavailable (%s)", self.label, reason)
        if self._on_health is not None:
            try:
                self._on_health(available, reason)
            except Exception:
                log.exception("%s: the health callback failed", self.label)

    def _close_device(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            release(device)

    def stop(self) -> None:
        super().stop()
        self._close_device()


class ResilientVideoTrack(_Supervised):
    """The cabin's camera as the call sends it: its frames, or the card while it is unavailable."""

    kind = "video"

    def __init__(
        self,
        open_device: Opener,
        width: int,
        height: int,
        *,
        label: str = "camera",
        on_health: HealthCallback | None = None,
        meter: VideoMeter | None = None,
    ) -> None:
        super().__init__(open_device, label=label, on_health=on_health, meter=meter)
        self._width, self._height = width, height
        # Kept for the track's life: a new scaler per frame (frame.reformat) costs 4.6 ms at 640x480, a kept one 0.8.
        self._reformatter = VideoReformatter()
        self._start: float | None = None
        self._next_card = 0.0
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._next_from_device()
        if not isinstance(frame, VideoFrame):
            frame = await self._card()
        elif (frame.width, frame.height) != (self._width, self._height) or frame.format.name != "yuv420p":
            # One size for the whole call (a file, or a camera that ignored the size asked): no encoder restart. And
            # the encoders' format, converted here with the kept scaler (aiortc's encoder would make one per frame
            # for a camera's YUYV or MJPEG's yuvj422p).
            frame = self._reformatter.reformat(frame, width=self._width, height=self._height, format="yuv420p")
        now = time.monotonic()
        if self._start is None:
            self._start = now
        frame.pts = int((now - self._start) * VIDEO_CLOCK_RATE)
        frame.time_base = self._time_base
        return frame

    async def _card(self) -> VideoFrame:
        delay = self._next_card - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._next_card = max(self._next_card, time.monotonic() - 1.0) + 1 / CARD_FPS
        return VideoFrame.from_ndarray(_card_pixels(self._width, self._height), format="yuv420p")


class ResilientAudioTrack(_Supervised):
    """The cabin's microphone as the call sends it: its sound, or silence while it is unavailable."""

    kind = "audio"

    def __init__(
        self,
        open_device: Opener,
        *,
        label: str = "microphone",
        on_health: HealthCallback | None = None,
        meter: AudioMeter | None = None,
    ) -> None:
        super().__init__(open_device, label=label, on_health=on_health, meter=meter)
        self._pts = 0
        self._start: float | None = None
        self._silence = np.zeros((1, SILENCE_SAMPLES), dtype=np.int16)
        self._time_base = fractions.Fraction(1, AUDIO_RATE)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._next_from_device()
        if not isinstance(frame, AudioFrame):
            frame = await self._silent()
        if self._start is None:
            self._start = time.monotonic()
        # One clock across device and silence, in 1/48000 s whatever the device's own rate.
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += round(frame.samples * AUDIO_RATE / frame.sample_rate)
        return frame

    async def _silent(self) -> AudioFrame:
        if self._start is not None:
            delay = self._start + self._pts / AUDIO_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                # Behind (the device stalled before we noticed): jump ahead rather than send a burst.
                self._pts = int((time.monotonic() - self._start) * AUDIO_RATE)
        frame = AudioFrame.from_ndarray(self._silence, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        return frame
