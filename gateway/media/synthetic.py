"""Synthetic camera and microphone: the moving test pattern and a tone, paced in real time."""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from gateway.media.meters import AudioMeter, VideoMeter
from gateway.media.pattern import PatternPainter

VIDEO_CLOCK_RATE = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.020


class RealTime:
    """Paces a synthetic source: `wait(seconds)` returns once that much time has passed since the first call."""

    def __init__(self) -> None:
        self._start: float | None = None

    async def wait(self, seconds: float) -> None:
        if self._start is None:
            self._start = time.monotonic()
            return
        delay = self._start + seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class PatternVideoTrack(MediaStreamTrack):
    """A moving test pattern at a fixed size and frame rate (optionally stamped with capture time)."""

    kind = "video"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        *,
        stamp: bool = False,
        meter: VideoMeter | None = None,
    ) -> None:
        super().__init__()
        self._meter = meter
        if not 1 <= fps <= 60:
            raise ValueError(f"frame rate must be 1..60, got {fps}")
        self._pattern = PatternPainter(width, height, stamp=stamp)
        self._fps = fps
        self._index = 0
        self._start: float | None = None
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._index / self._fps
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        capture_ms = int(time.time() * 1000)
        data = self._pattern.draw(self._index, capture_ms)
        frame = VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts = int(self._index * VIDEO_CLOCK_RATE / self._fps)
        frame.time_base = self._time_base
        self._index += 1
        if self._meter is not None:
            self._meter.observe(frame)
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A soft 440 Hz tone, beeping half a second each second, as 20 ms mono frames at 48 kHz."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, level: float = 0.2, *, meter: AudioMeter | None = None) -> None:
        super().__init__()
        self._meter = meter
        self._samples = int(AUDIO_RATE * AUDIO_PTIME)
        period = np.arange(AUDIO_RATE, dtype=np.float64)
        tone = np.sin(2 * math.pi * frequency * period / AUDIO_RATE) * level * 32767
        tone[AUDIO_RATE // 2 :] = 0
        self._second = tone.astype(np.int16)
        self._sent = 0
        self._pace = RealTime()
        self._time_base = fractions.Fraction(1, AUDIO_RATE)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pace.wait(self._sent / AUDIO_RATE)
        offset = self._sent % AUDIO_RATE
        chunk = self._second[offset : offset + self._samples]
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._sent
        frame.time_base = self._time_base
        self._sent += self._samples
        if self._meter is not None:
            self._meter.observe(frame)
        return frame
