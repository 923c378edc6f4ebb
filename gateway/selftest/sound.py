"""The sound check: a sweep, then a few seconds of voice-like sound, through the loudspeaker, recorded by the
microphone; the echo path's delay and the echo return loss (from the sweep), the echo return loss with the gateway's
cancellation (from the voice, once the canceller has learnt the room: a sweep visits each band too briefly for
that), and the noise floor (a last moment of silence).

The cabin screen plays the call's sound, not the gateway: the gateway reaches the loudspeaker through a SoundPath.
On the test machine and in the demo it is the simulated cabin (gateway.sound.room); on a cabin PC, the check is
skipped (see the README, "Sound in the cabin", for the installer's check with a speakerphone or PipeWire).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from av import AudioFrame

from gateway.selftest.report import ok, skipped, warning
from gateway.sound import signals
from gateway.sound.processor import VoiceProcessor
from gateway.sound.room import FRAME, RoomSettings, SimulatedRoom
from gateway.sound.settings import SoundSettings
from signaling.protocol import SelftestCheck

NAME: Final = "sound"
RATE: Final = signals.RATE
SWEEP_SECONDS: Final = 1.5
VOICE_SECONDS: Final = 4.0
# The canceller is measured over the voice's last seconds.
MEASURED_SECONDS: Final = 2.0
QUIET_SECONDS: Final = 0.5
MAX_DELAY: Final = 0.5
# Below this the echo is heard plainly by the professional, even with cancellation.
WEAK_CANCELLATION_DB: Final = 20.0
NOISY_DBFS: Final = -40.0


class SoundPath(Protocol):
    """The loudspeaker and the microphone, played and recorded together."""

    async def play_and_record(self, played: signals.Samples, extra: float) -> signals.Samples:
        """Play `played` and record as long, plus `extra` seconds."""
        ...


class RoomPath:
    """The simulated cabin as the sound path (the citizen silent: the check is run with nobody in it)."""

    def __init__(self, settings: RoomSettings = RoomSettings(talk=0.0)) -> None:
        self.room = SimulatedRoom(settings)

    async def play_and_record(self, played: signals.Samples, extra: float) -> signals.Samples:
        total = played.size + int(extra * RATE)
        padded = np.concatenate([played, np.zeros(total - played.size)])
        out = []
        for at in range(0, total - FRAME + 1, FRAME):
            frame = AudioFrame.from_ndarray(
                signals.to_int16(padded[at : at + FRAME]).reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = RATE
            self.room.play(frame)
            out.append(self.room.capture(FRAME))
            if at % (RATE // 5) == 0:
                await asyncio.sleep(0)  # the event loop goes on
        return np.concatenate(out)


@dataclass(frozen=True, slots=True)
class SoundMeasure:
    delay_ms: float
    clarity: float
    echo_return_loss_db: float  # what is played over its echo at the microphone
    with_cancellation_db: float  # the same, after the gateway's processing
    noise_floor_dbfs: float


def measure(played: signals.Samples, recorded: signals.Samples, settings: SoundSettings) -> SoundMeasure:
    """The figures, from what was played (the sweep, then the voice) and what the microphone heard (then silence)."""
    sweep = slice(0, int(SWEEP_SECONDS * RATE))
    delay, clarity = signals.delay_samples(played[sweep], recorded, max_delay=int(MAX_DELAY * RATE))
    loss = signals.level_db(played[sweep]) - signals.level_db(recorded[sweep.start + delay : sweep.stop + delay])
    processor = VoiceProcessor(settings)
    far, near = signals.to_int16(played), signals.to_int16(recorded[: played.size])
    pieces = []
    for at in range(0, far.size - 479, 480):
        piece = AudioFrame.from_ndarray(far[at : at + 480].reshape(1, -1), format="s16", layout="mono")
        piece.sample_rate = RATE
        processor.far_end(piece)
        pieces.append(processor.process(near[at : at + 480]))
    processed = signals.from_int16(np.concatenate(pieces))
    last = slice(played.size - int(MEASURED_SECONDS * RATE), played.size - delay)
    echo = recorded[last]
    after = loss + signals.level_db(echo) - signals.level_db(processed[last])
    quiet = recorded[-int(QUIET_SECONDS * RATE) :]
    return SoundMeasure(delay * 1000 / RATE, clarity, loss, after, signals.level_db(quiet))


def sound_check(found: SoundMeasure, settings: SoundSettings) -> SelftestCheck:
    """The verdict: a warning when the loudspeaker is not heard, the echo stays loud, or the cabin is noisy (the
    cabin still works: none of these stops a call)."""
    if found.clarity < 10:
        return warning(NAME, "the sweep played through the loudspeaker was not heard by the microphone", required=False)
    cancelled = (
        f"{found.with_cancellation_db:.0f} dB with cancellation" if settings.echo_cancellation else "cancellation off"
    )
    figures = (
        f"echo path {found.delay_ms:.0f} ms, echo return loss {found.echo_return_loss_db:.0f} dB, {cancelled}, "
        f"noise floor {found.noise_floor_dbfs:.0f} dBFS"
    )
    if settings.echo_cancellation and found.with_cancellation_db < WEAK_CANCELLATION_DB:
        return warning(NAME, f"the echo stays loud: {figures}", required=False)
    if found.noise_floor_dbfs > NOISY_DBFS:
        return warning(NAME, f"a noisy cabin: {figures}", required=False)
    return ok(NAME, figures, required=False)


async def probe_sound(path: SoundPath | None, settings: SoundSettings) -> SelftestCheck:
    if path is None:
        return skipped(NAME, "the cabin screen plays the sound: check it as the README says (Sound in the cabin)")
    played = np.concatenate([signals.sweep(SWEEP_SECONDS), signals.speech_like(VOICE_SECONDS, 5, level_dbfs=-16.0)])
    recorded = await path.play_and_record(played, MAX_DELAY + QUIET_SECONDS)
    # The analysis is a few hundred milliseconds of arithmetic: off the event loop.
    found = await asyncio.to_thread(measure, played, recorded, settings)
    return sound_check(found, settings)
