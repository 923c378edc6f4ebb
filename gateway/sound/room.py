"""A simulated cabin for the tests, the benchmark and the demo (this machine has no loudspeaker and no microphone):
what the cabin's loudspeaker plays comes back into its microphone through a small booth, with ventilation noise and,
now and then, the citizen's voice.

The loudspeaker plays the professional's voice as the gateway decodes it, `playout_delay` later (the cabin screen's
jitter buffer and sound card); the acoustic path is a booth's impulse response (gateway.sound.signals). The
microphone is a track paced in real time, 20 ms frames at 48 kHz. With `record`, the room keeps what each part
contributed to the microphone (the echo, the citizen's voice, the noise), for the measures.
"""

from __future__ import annotations

import collections
import fractions
from dataclasses import dataclass
from typing import Final

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame
from numpy.typing import NDArray

from gateway.media.meters import AudioMeter
from gateway.media.synthetic import RealTime
from gateway.sound import signals
from gateway.sound.processor import RATE, _Mono

FRAME: Final = RATE // 50  # 20 ms
# What the loudspeaker may hold beyond its playout delay before the oldest is dropped (as a jitter buffer would).
MAX_BACKLOG: Final = RATE // 5


@dataclass(frozen=True, slots=True)
class RoomSettings:
    playout_delay: float = 0.120
    rt60: float = 0.25
    # The loudspeaker's direct sound at the microphone, relative to what is played (a metre apart, loud).
    direct_gain: float = 0.5
    noise_dbfs: float = -50.0
    # The citizen speaks `talk` seconds out of every `cycle` (0: never).
    talk: float = 3.0
    cycle: float = 8.0
    # Seconds before the citizen first speaks (the canceller converges on the professional's voice alone).
    quiet_start: float = 0.0
    voice_dbfs: float = -24.0
    seed: int = 7


class SimulatedRoom:
    """`play(frame)` what the loudspeaker gets; `microphone()` the track the gateway reads as its microphone."""

    def __init__(self, settings: RoomSettings = RoomSettings(), *, record: float = 0.0) -> None:
        """`record`: seconds of each part kept for the measures (0: none)."""
        self.settings = settings
        self._response = signals.room_response(settings.seed, rt60=settings.rt60, direct_gain=settings.direct_gain)
        size = 1 << int(np.ceil(np.log2(FRAME + self._response.size - 1)))
        self._nfft = size
        self._spectrum = np.fft.rfft(self._response, size)
        self._tail = np.zeros(self._response.size - 1)
        self._mono = _Mono()
        delay = int(settings.playout_delay * RATE)
        # What the loudspeaker has yet to play, oldest first: the playout delay's silence, then the voice.
        self._speaker = np.zeros(delay)
        self._delay = delay
        self._starved = False
        cycle = int(settings.cycle * RATE)
        voice = signals.speech_like(max(settings.cycle, 1.0) * 3, settings.seed + 1, level_dbfs=settings.voice_dbfs)
        talking = int(settings.talk * RATE)
        gate = (np.arange(voice.size) % cycle) < talking if talking else np.zeros(voice.size, bool)
        self._voice = voice * gate
        self._quiet = int(settings.quiet_start * RATE)
        self._noise = signals.fan_noise(10.0, settings.seed + 2, level_dbfs=settings.noise_dbfs)
        self._at = 0  # samples captured so far: the room's clock
        self.underruns = 0
        # Per 20 ms of microphone, always (a minute, a few kB): (room sample, echo RMS, voice RMS), for measures.
        self.levels: collections.deque[tuple[int, float, float]] = collections.deque(maxlen=3000)
        keep = int(record * RATE)
        self._records: dict[str, collections.deque[NDArray[np.float32]]] | None = None
        if keep:
            self._records = {part: collections.deque(maxlen=max(1, keep // FRAME)) for part in ("echo", "voice", "mic")}

    def play(self, frame: AudioFrame) -> None:
        """The loudspeaker gets this frame of the professional's voice (it plays it after the playout delay)."""
        if self._starved:
            # As a jitter buffer does after running dry: wait the playout delay again before playing.
            self._speaker = np.zeros(self._delay)
            self._starved = False
        played = np.concatenate([self._speaker, signals.from_int16(self._mono.samples(frame))])
        self._speaker = played[-(self._delay + MAX_BACKLOG) :]

    def capture(self, n: int = FRAME) -> NDArray[np.float64]:
        """The next `n` samples (at most FRAME) the microphone hears."""
        available = min(n, self._speaker.size)
        played = np.zeros(n)
        played[:available] = self._speaker[:available]
        self._speaker = self._speaker[available:]
        if available < n:
            self.underruns += 1
            self._starved = True
        out = np.fft.irfft(np.fft.rfft(played, self._nfft) * self._spectrum, self._nfft)[: n + self._tail.size]
        out[: self._tail.size] += self._tail
        echo, self._tail = out[:n], out[n:].copy()
        index = self._at + np.arange(n)
        voice = self.voice(self._at, n)
        noise = self._noise[index % self._noise.size]
        mic = echo + voice + noise
        self.levels.append((self._at, float(np.sqrt(np.mean(echo * echo))), float(np.sqrt(np.mean(voice * voice)))))
        self._at += n
        if self._records is not None:
            for part, values in (("echo", echo), ("voice", voice), ("mic", mic)):
                self._records[part].append(values.astype(np.float32))
        return mic

    def voice(self, start: int, n: int) -> NDArray[np.float64]:
        """The citizen's clean voice from room sample `start` (what the microphone got of it)."""
        index = start + np.arange(n)
        return np.where(index >= self._quiet, self._voice[(index - self._quiet) % self._voice.size], 0.0)

    def recorded(self, part: str) -> NDArray[np.float64]:
        """What `part` ("echo", "voice", "mic") put into the microphone, over the recorded span, oldest first."""
        if self._records is None:
            raise ValueError("this room records nothing (record=0)")
        frames = list(self._records[part])
        return np.concatenate(frames).astype(np.float64) if frames else np.zeros(0)

    @property
    def captured(self) -> int:
        return self._at

    def microphone(self, *, meter: AudioMeter | None = None) -> MediaStreamTrack:
        return RoomMicrophone(self, meter=meter)


class RoomMicrophone(MediaStreamTrack):
    """The simulated room's microphone: 20 ms frames at 48 kHz mono, paced in real time."""

    kind = "audio"

    def __init__(self, room: SimulatedRoom, *, meter: AudioMeter | None = None) -> None:
        super().__init__()
        self.room = room
        self._meter = meter
        self._pace = RealTime()
        self._sent = 0
        self._time_base = fractions.Fraction(1, RATE)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pace.wait(self._sent / RATE)
        samples = signals.to_int16(self.room.capture(FRAME))
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._sent
        frame.time_base = self._time_base
        self._sent += FRAME
        if self._meter is not None:
            self._meter.observe(frame)
        return frame
