"""What the gateway does to the cabin's microphone: pure settings, from the configuration's [microphone] section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SoundSettings:
    """Each can be off: a hardware speakerphone, or PipeWire's echo-cancel module, does it already."""

    echo_cancellation: bool = True
    noise_suppression: bool = True
    # Off by default: on the simulated cabin it lifts a soft voice by up to 16 dB, and the fan's hiss as much in the
    # pauses (docs/sound.md).
    gain_control: bool = False

    @property
    def any(self) -> bool:
        return self.echo_cancellation or self.noise_suppression or self.gain_control
