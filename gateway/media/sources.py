"""Camera and microphone sources named by a short spec: `test`, `v4l2:/dev/video0`, `alsa:hw:0`, `pulse:default`.

`file:PATH` reads any file or pipe that av can open (a Y4M or WAV stream, a recording): a camera or microphone
stand-in for a demonstration, and the lowest honest layer for tests of a device that goes away.

A source is opened for one call and closed after it: the camera is only on while someone is being seen.
"""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack

from gateway.errors import ConfigError, GatewayError
from gateway.lifecycle import AsyncResource
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack

log = logging.getLogger("cabine.gateway.media")

VIDEO_KINDS = ("test", "v4l2", "file", "none")
AUDIO_KINDS = ("test", "alsa", "pulse", "file", "none")


class MediaSourceError(GatewayError, OSError):
    """A camera or microphone could not be opened."""


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


class MediaSources(AsyncResource):
    """The call's camera and microphone tracks; an async context manager that releases the devices."""

    def __init__(self, video: SourceSpec, audio: SourceSpec, fmt: VideoFormat = VideoFormat(), *, stamp: bool = False):
        self._video_spec, self._audio_spec, self._fmt, self._stamp = video, audio, fmt, stamp
        self._players: list[Any] = []
        self.video: MediaStreamTrack | None = None
        self.audio: MediaStreamTrack | None = None

    async def __aenter__(self) -> MediaSources:
        try:
            self.video = self._open_video()
            self.audio = self._open_audio()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()
        for player in self._players:
            for track in (player.video, player.audio):
                if track is not None:
                    track.stop()
        self._players.clear()
        self.video = self.audio = None

    def _player(self, device: str, fmt: str | None, options: dict[str, str]) -> Any:
        from aiortc.contrib.media import MediaPlayer

        try:
            player = MediaPlayer(device, format=fmt, options=options)
        except Exception as exc:  # av raises many OSError/ValueError subclasses per backend
            raise MediaSourceError(f"cannot open {fmt or 'file'} {device!r}: {exc}") from exc
        self._players.append(player)
        return player

    def _open_video(self) -> MediaStreamTrack | None:
        spec, fmt = self._video_spec, self._fmt
        if spec.kind == "none":
            return None
        if spec.kind == "test":
            return PatternVideoTrack(fmt.width, fmt.height, fmt.fps, stamp=self._stamp)
        if spec.kind == "file":
            track: MediaStreamTrack | None = self._player(spec.device, None, {}).video
            return track
        options = {"video_size": f"{fmt.width}x{fmt.height}", "framerate": str(fmt.fps)}
        track = self._player(spec.device, "v4l2", options).video
        return track

    def _open_audio(self) -> MediaStreamTrack | None:
        spec = self._audio_spec
        if spec.kind == "none":
            return None
        if spec.kind == "test":
            return ToneAudioTrack()
        fmt = None if spec.kind == "file" else spec.kind
        track: MediaStreamTrack | None = self._player(spec.device, fmt, {}).audio
        return track
