"""Picture and sound statistics: luma of video frames, RMS level of audio frames. No I/O.

`VideoMeter` and `AudioMeter` are fed frame by frame, by the self-test's own probe or by a running call's camera and
microphone (which then answer the self-test without being opened a second time).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from av import AudioFrame, VideoFrame

# 8-bit luma. Black is 16 in limited range (most cameras' YUV) and 0 in full range (MJPEG's yuvj); sensor noise
# behind a covered lens stays well under 40, while any real scene, even dim, has brighter pixels than that.
BLACK_P99: Final = 40.0
# A picture with a standard deviation this small is one flat colour: a driver that sends a constant frame.
FLAT_STD: Final = 2.0
# Planar formats whose first plane is the luma, 8 bits per sample: read in place, no conversion.
_Y_FIRST: Final = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"})
# Every 4th pixel of every 4th row: 19,200 samples for 640x480, plenty for percentiles.
_STEP: Final = 4


@dataclass(frozen=True, slots=True)
class LumaStats:
    """Brightness of one frame (0..255): mean, spread and 99th percentile."""

    mean: float
    std: float
    p99: float

    @property
    def black(self) -> bool:
        return self.p99 <= BLACK_P99

    @property
    def flat(self) -> bool:
        return self.std < FLAT_STD


def luma_stats(luma: npt.NDArray[np.uint8]) -> LumaStats:
    """Statistics of a 2-D array of 8-bit luma (subsampled).

    Raises:
        ValueError: not a non-empty 2-D array.
    """
    if luma.ndim != 2 or luma.size == 0:
        raise ValueError(f"luma must be a non-empty 2-D array, got shape {luma.shape}")
    sample = luma[::_STEP, ::_STEP].astype(np.float64)
    return LumaStats(mean=float(sample.mean()), std=float(sample.std()), p99=float(np.percentile(sample, 99)))


def luma_plane(frame: VideoFrame) -> npt.NDArray[np.uint8]:
    """The frame's luma as a 2-D uint8 array (the Y plane in place when the format has one, else converted)."""
    if frame.format.name in _Y_FIRST:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class VideoStats:
    """What a camera delivered over a short window: size, frame count and rate, brightness of a few frames."""

    width: int
    height: int
    frames: int
    fps: float | None  # None with fewer than two frames
    samples: tuple[LumaStats, ...]

    @property
    def black(self) -> bool:
        """Every sampled frame is black (no samples: not known to be black)."""
        return bool(self.samples) and all(s.black for s in self.samples)

    @property
    def flat(self) -> bool:
        return bool(self.samples) and all(s.flat for s in self.samples)


class VideoMeter:
    """Counts frames over the last `window` seconds and samples the brightness of one every `sample_every` s."""

    def __init__(
        self,
        *,
        window: float = 2.0,
        sample_every: float = 0.5,
        max_samples: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Raises: ValueError: a window or interval <= 0, or max_samples < 1."""
        if window <= 0 or sample_every <= 0 or max_samples < 1:
            raise ValueError("window and sample_every must be > 0 seconds and max_samples >= 1")
        self._window, self._every, self._clock = window, sample_every, clock
        self._times: deque[float] = deque()
        self._samples: deque[tuple[float, LumaStats]] = deque(maxlen=max_samples)
        self._size: tuple[int, int] | None = None

    def observe(self, frame: VideoFrame) -> None:
        """Note one frame (cheap: its luma is read only when a sample is due)."""
        now = self._clock()
        self._times.append(now)
        self._size = (frame.width, frame.height)
        if not self._samples or now - self._samples[-1][0] >= self._every:
            self._samples.append((now, luma_stats(luma_plane(frame))))
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()
        while self._samples and now - self._samples[0][0] > self._window:
            self._samples.popleft()

    def stats(self) -> VideoStats | None:
        """The last window's statistics; None if no frame was ever observed."""
        if self._size is None:
            return None
        self._forget(self._clock())
        times = self._times
        span = times[-1] - times[0] if len(times) >= 2 else 0.0
        fps = (len(times) - 1) / span if span > 0 else None
        return VideoStats(
            width=self._size[0],
            height=self._size[1],
            frames=len(times),
            fps=fps,
            samples=tuple(s for _, s in self._samples),
        )


def audio_samples(frame: AudioFrame) -> npt.NDArray[np.float64]:
    """The frame's samples, every channel, scaled to full scale = 1.0.

    Raises:
        ValueError: a sample format other than 8/16/32-bit integers or floats.
    """
    data = np.asarray(frame.to_ndarray())
    kind, size = data.dtype.kind, data.dtype.itemsize
    if kind == "u" and size == 1:  # unsigned 8-bit centres on 128
        return (data.astype(np.float64) - 128.0) / 128.0
    if kind == "i":
        return data.astype(np.float64) / float(2 ** (8 * size - 1))
    if kind == "f":
        return data.astype(np.float64)
    raise ValueError(f"unsupported audio sample format {frame.format.name!r}")


def rms_dbfs(samples: npt.NDArray[np.float64]) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS); -inf for digital silence.

    Raises:
        ValueError: no samples.
    """
    if samples.size == 0:
        raise ValueError("no samples to measure")
    power = float(np.mean(np.square(samples)))
    return 10.0 * math.log10(power) if power > 0 else -math.inf


@dataclass(frozen=True, slots=True)
class AudioLevel:
    """A microphone's RMS level over `seconds` of sound."""

    dbfs: float
    seconds: float


class AudioMeter:
    """The RMS level of the sound observed over the last `window` seconds (by sample count, not wall time)."""

    def __init__(self, *, window: float = 1.0) -> None:
        """Raises: ValueError: a window <= 0."""
        if window <= 0:
            raise ValueError("window must be > 0 seconds")
        self._window = window
        # (sum of squares, sample values, duration in seconds) per frame
        self._frames: deque[tuple[float, int, float]] = deque()
        self._seconds = 0.0

    def observe(self, frame: AudioFrame) -> None:
        samples = audio_samples(frame)
        duration = frame.samples / frame.sample_rate if frame.sample_rate else 0.0
        self._frames.append((float(np.sum(np.square(samples))), int(samples.size), duration))
        self._seconds += duration
        while len(self._frames) > 1 and self._seconds - self._frames[0][2] >= self._window:
            self._seconds -= self._frames.popleft()[2]

    @property
    def seconds(self) -> float:
        """How much sound the level is computed over."""
        return self._seconds

    def level(self) -> AudioLevel | None:
        """The level over the window; None if nothing was observed."""
        count = sum(n for _, n, _ in self._frames)
        if not count:
            return None
        power = sum(s for s, _, _ in self._frames) / count
        dbfs = 10.0 * math.log10(power) if power > 0 else -math.inf
        return AudioLevel(dbfs=dbfs, seconds=self._seconds)
