"""What names a camera or microphone, and the video format and codec: pure values, cheap to import.

A source is named by a short spec: `test`, `none`, `v4l2:/dev/video0`, `alsa:hw:0`, `pulse:default`, or `file:PATH`
(any file or pipe that av can open: a Y4M or WAV stream, a recording; a stand-in for a demonstration, and the lowest
honest layer for tests of a device that goes away). The microphone may also be `room`: a simulated cabin where the
professional's voice comes back through the loudspeaker, with ventilation noise and the citizen now and then
(gateway.sound.room: the tests, the benchmark and a demo of the echo cancellation).
"""

from __future__ import annotations

import enum
import stat
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError

VIDEO_KINDS = ("test", "v4l2", "file", "none")
AUDIO_KINDS = ("test", "room", "alsa", "pulse", "file", "none")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: str
    device: str = ""

    @classmethod
    def parse(cls, text: str, *, audio: bool) -> SourceSpec:
        """Parse `kind` or `kind:device`.

        Raises:
            ConfigError: unknown kind, or a device kind without a device.
        """
        kind, _, device = text.partition(":")
        allowed = AUDIO_KINDS if audio else VIDEO_KINDS
        if kind not in allowed:
            what = "audio" if audio else "video"
            raise ConfigError(
                f"unknown {what} source {text!r}: use one of {', '.join(allowed)} (e.g. v4l2:/dev/video0)"
            )
        if kind in ("v4l2", "alsa", "pulse", "file") and not device:
            example = {"v4l2": "/dev/video0", "file": "/path/to/recording.y4m"}.get(kind, "default")
            raise ConfigError(f"{kind} source needs a device, e.g. {kind}:{example}")
        return cls(kind, device)

    def check_available(self) -> None:
        """Check, at start, that a named device or file is there (the rest is known only when it is opened).

        Raises:
            ConfigError: a V4L2 device that is not a character device, or a file source that does not exist.
        """
        path = Path(self.device)
        if self.kind == "v4l2":
            if not path.exists():
                raise ConfigError(f"camera {self.device} does not exist (is it plugged in? see `ls /dev/video*`)")
            if not stat.S_ISCHR(path.stat().st_mode):
                raise ConfigError(f"camera {self.device} is not a video device")
        elif self.kind == "file" and not path.exists():
            raise ConfigError(f"source file {self.device} does not exist")

    def __str__(self) -> str:
        return f"{self.kind}:{self.device}" if self.device else self.kind


@dataclass(frozen=True, slots=True)
class VideoFormat:
    width: int = 640
    height: int = 480
    fps: int = 30


class VideoCodec(enum.StrEnum):
    """A video codec the cabin can be told to prefer."""

    VP8 = "vp8"
    H264 = "h264"

    @property
    def mime_type(self) -> str:
        return "video/VP8" if self is VideoCodec.VP8 else "video/H264"
