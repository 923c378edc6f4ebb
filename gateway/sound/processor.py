"""The cabin microphone's processing: echo cancellation with the professional's voice as the far end, noise
suppression, gain control, and a high-pass filter, by WebRTC's audio processing module (AEC3) as LiveKit's Python
SDK ships it (`livekit.rtc.AudioProcessingModule`; see docs/sound.md for the candidates compared).

The module takes 10 ms of mono 16-bit audio at a time. Frames of any size, rate or layout are converted to 48 kHz
mono and cut into 10 ms pieces; a microphone frame comes back with as many samples as it had, delayed by less than
10 ms only when its size is not a multiple of 10 ms (aiortc's 20 ms frames are not delayed at all).
"""

from __future__ import annotations

import collections
from typing import Final

import numpy as np
from av import AudioFrame
from av.audio.resampler import AudioResampler
from numpy.typing import NDArray

from gateway.sound.settings import SoundSettings

RATE: Final = 48_000
PIECE: Final = RATE // 100  # 10 ms


class _Mono:
    """Any audio frame as 48 kHz mono int16 samples (a resampler only when the frame needs one)."""

    def __init__(self) -> None:
        self._resampler: AudioResampler | None = None

    def samples(self, frame: AudioFrame) -> NDArray[np.int16]:
        if frame.format.name == "s16" and frame.sample_rate == RATE and frame.layout.name in ("mono", "stereo"):
            data = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            if frame.layout.name == "stereo":  # packed: L R L R
                data = ((data[0::2].astype(np.int32) + data[1::2]) // 2).astype(np.int16)
            return data
        if self._resampler is None:
            self._resampler = AudioResampler(format="s16", layout="mono", rate=RATE)
        out = [f.to_ndarray().reshape(-1).astype(np.int16, copy=False) for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)


class VoiceProcessor:
    """One call's processing: `far_end(frame)` with each frame of the professional's voice as it is played in the
    cabin, `near_end(frame)` with each microphone frame, which comes back processed."""

    def __init__(self, settings: SoundSettings = SoundSettings()) -> None:
        from livekit import rtc  # its native library loads with the first call that needs it

        self._rtc = rtc
        self.settings = settings
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=settings.echo_cancellation,
            noise_suppression=settings.noise_suppression,
            high_pass_filter=True,
            auto_gain_control=settings.gain_control,
        )
        self._far_mono, self._near_mono = _Mono(), _Mono()
        self._far: NDArray[np.int16] = np.zeros(0, np.int16)
        self._near: NDArray[np.int16] = np.zeros(0, np.int16)
        # Processed samples not yet handed back (only with frames that are not whole 10 ms pieces).
        self._out: collections.deque[NDArray[np.int16]] = collections.deque()
        self._out_samples = 0
        # The delay between the far end given here and its echo in the microphone, as estimated by the self-test
        # (a hint: AEC3 finds the delay itself).
        self.delay_ms = 0
        self.far_pieces = 0
        self.near_pieces = 0

    def far_end(self, frame: AudioFrame) -> None:
        self._far = np.concatenate([self._far, self._far_mono.samples(frame)])
        while self._far.size >= PIECE:
            piece, self._far = self._far[:PIECE], self._far[PIECE:]
            self._apm.process_reverse_stream(self._rtc.AudioFrame(piece.tobytes(), RATE, 1, PIECE))
            self.far_pieces += 1

    def process(self, samples: NDArray[np.int16]) -> NDArray[np.int16]:
        """Whole 10 ms pieces of 48 kHz mono microphone samples, processed."""
        out = np.empty_like(samples)
        for at in range(0, samples.size - PIECE + 1, PIECE):
            piece = self._rtc.AudioFrame(samples[at : at + PIECE].tobytes(), RATE, 1, PIECE)
            if self.settings.echo_cancellation:
                self._apm.set_stream_delay_ms(self.delay_ms)
            self._apm.process_stream(piece)
            out[at : at + PIECE] = np.frombuffer(bytes(piece.data), dtype=np.int16)
            self.near_pieces += 1
        return out

    def near_end(self, frame: AudioFrame) -> AudioFrame:
        """The microphone frame, processed: 48 kHz mono, as many samples as it had."""
        samples = self._near_mono.samples(frame)
        wanted = samples.size
        self._near = np.concatenate([self._near, samples])
        whole = self._near.size // PIECE * PIECE
        if whole:
            self._out.append(self.process(self._near[:whole]))
            self._out_samples += whole
            self._near = self._near[whole:]
        if self._out_samples < wanted:
            # The first frames of a source whose frames are not whole pieces: silence, once, until it catches up.
            self._out.appendleft(np.zeros(wanted - self._out_samples, np.int16))
            self._out_samples = wanted
        taken: list[NDArray[np.int16]] = []
        need = wanted
        while need:
            head = self._out.popleft()
            if head.size > need:
                self._out.appendleft(head[need:])
                head = head[:need]
            taken.append(head)
            need -= head.size
        self._out_samples -= wanted
        out = AudioFrame.from_ndarray(np.concatenate(taken).reshape(1, -1), format="s16", layout="mono")
        out.sample_rate = RATE
        if frame.sample_rate == RATE and frame.time_base is not None:
            out.pts, out.time_base = frame.pts, frame.time_base
        return out
