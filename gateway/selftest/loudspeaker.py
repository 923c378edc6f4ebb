"""The cabin's loudspeaker and microphone for the sound check, through ALSA's own programs: `aplay` plays the probe
while `arecord` records, both raw 16-bit 48 kHz mono on their standard streams (nothing written to disk).

The cabin screen plays the calls' sound; the check borrows the same loudspeaker between calls. The recording starts
first and lasts the probe plus its echo's tail and the silence after it; both programs are killed on a timeout and
die with the gateway.
"""

from __future__ import annotations

import asyncio
import math
from typing import Final

import numpy as np

from gateway.errors import GatewayError
from gateway.program import ProgramMissing, ProgramTimeout, run_program
from gateway.sound import signals

RATE: Final = signals.RATE
_FORMAT: Final = ("-q", "-t", "raw", "-f", "S16_LE", "-r", str(RATE), "-c", "1")
# arecord and aplay take a moment to open their devices: the recording starts this much earlier.
LEAD: Final = 0.3
MARGIN: Final = 5.0


class LoudspeakerError(GatewayError, RuntimeError):
    """The loudspeaker or the microphone could not be used (busy, absent, or ALSA's programs missing)."""


class AlsaPath:
    """`loudspeaker` and `microphone`: ALSA device names (`default`, `plughw:CARD=Speakerphone,DEV=0`)."""

    def __init__(self, loudspeaker: str, microphone: str) -> None:
        self.loudspeaker, self.microphone = loudspeaker, microphone

    async def play_and_record(self, played: signals.Samples, extra: float) -> signals.Samples:
        """Raises: LoudspeakerError: either device or program failed (its message says which)."""
        seconds = math.ceil(LEAD + played.size / RATE + extra)
        record = ["arecord", "-D", self.microphone, *_FORMAT, "-d", str(seconds)]
        play = ["aplay", "-D", self.loudspeaker, *_FORMAT]
        try:
            recording = asyncio.ensure_future(
                run_program(record, timeout=seconds + MARGIN, max_stdout=(seconds + 1) * RATE * 2)
            )
            await asyncio.sleep(LEAD)
            playing = await run_program(play, stdin=signals.to_int16(played).tobytes(), timeout=seconds + MARGIN)
            recorded = await recording
        except ProgramMissing as exc:
            raise LoudspeakerError(f"{exc} (Debian package alsa-utils)") from None
        except ProgramTimeout as exc:
            raise LoudspeakerError(str(exc)) from None
        finally:
            if not recording.done():
                recording.cancel()
        parts = (
            ("aplay", "loudspeaker", self.loudspeaker, playing),
            ("arecord", "microphone", self.microphone, recorded),
        )
        for program, what, device, done in parts:
            if done.returncode != 0:
                said = "; ".join(done.stderr.decode(errors="replace").split("\n")).strip("; ")[:300]
                raise LoudspeakerError(f"{program}, the {what} {device!r}: {said or f'exit {done.returncode}'}")
        samples = np.frombuffer(recorded.stdout[: len(recorded.stdout) // 2 * 2], dtype=np.int16)
        # From when the probe was started: the delay found is then the playback's own.
        return signals.from_int16(samples[int(LEAD * RATE) :])
