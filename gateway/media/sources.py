"""Camera and microphone sources named by a short spec: `test`, `v4l2:/dev/video0`, `alsa:hw:0`, `pulse:default`.

A source is opened for one call and closed after it: the camera is only on while someone is being seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack

from gateway.errors import ConfigError, GatewayError
from gateway.lifecycle import AsyncResource
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack

log = logging.getLogger("cabine.gateway.media")

VIDEO_KINDS = ("test", "v4l2", "none")
AUDIO_KINDS = ("test", "alsa", "pulse", "none")


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
        if kind in ("v4l2", "alsa", "pulse") and not device:
            raise ConfigError(
                f"{kind} source needs a device, e.g. {kind}:{'/dev/video0' if kind == 'v4l2' else 'default'}"
            )
        return cls(kind, device)

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

    def _player(self, device: str, fmt: str, options: dict[str, str]) -> Any:
        from aiortc.contrib.media import MediaPlayer

        try:
            player = MediaPlayer(device, format=fmt, options=options)
        except Exception as exc:  # av raises many OSError/ValueError subclasses per backend
            raise MediaSourceError(f"cannot open {fmt} device {device!r}: {exc}") from exc
        self._players.append(player)
        return player

    def _open_video(self) -> MediaStreamTrack | None:
        spec, fmt = self._video_spec, self._fmt
        if spec.kind == "none":
            return None
        if spec.kind == "test":
            return PatternVideoTrack(fmt.width, fmt.height, fmt.fps, stamp=self._stamp)
        options = {"video_size": f"{fmt.width}x{fmt.height}", "framerate": str(fmt.fps)}
        track: MediaStreamTrack | None = self._player(spec.device, "v4l2", options).video
        return track

    def _open_audio(self) -> MediaStreamTrack | None:
        spec = self._audio_spec
        if spec.kind == "none":
            return None
        if spec.kind == "test":
            return ToneAudioTrack()
        track: MediaStreamTrack | None = self._player(spec.device, spec.kind, {}).audio
        return track
