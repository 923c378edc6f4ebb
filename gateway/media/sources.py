"""The call's camera and microphone tracks, opened from their specs (see gateway.media.spec).

A source is opened for one call and closed after it: the camera is only on while someone is being seen.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from aiortc import MediaStreamTrack
from av import AudioFrame

from gateway.lifecycle import AsyncResource
from gateway.media.meters import AudioMeter, VideoMeter
from gateway.media.player import MediaSourceError, open_device
from gateway.media.resilient import HealthCallback, ResilientAudioTrack, ResilientVideoTrack
from gateway.media.spec import AUDIO_KINDS, VIDEO_KINDS, SourceSpec, VideoFormat
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack
from gateway.sound.room import SimulatedRoom

__all__ = [
    "AUDIO_KINDS",
    "VIDEO_KINDS",
    "MediaSourceError",
    "MediaSources",
    "SourceSpec",
    "VideoFormat",
    "open_camera",
    "open_device",
    "open_microphone",
]

log = logging.getLogger("cabine.gateway.media")


# Told (kind "video" or "audio", available, reason) when a device goes away and when it comes back.
SourceHealth = Callable[[str, bool, str], None]


class MediaSources(AsyncResource):
    """The call's camera and microphone tracks; an async context manager that releases the devices.

    A real device (V4L2, ALSA, PulseAudio, a file) is wrapped so that the call survives it going away: the card or
    silence is sent meanwhile, `on_health` is told, and the device is opened again when it is back.
    """

    def __init__(
        self,
        video: SourceSpec,
        audio: SourceSpec,
        fmt: VideoFormat = VideoFormat(),
        *,
        stamp: bool = False,
        on_health: SourceHealth | None = None,
    ) -> None:
        self._video_spec, self._audio_spec, self._fmt, self._stamp = video, audio, fmt, stamp
        self._on_health = on_health
        # What the camera and microphone deliver during the call, for a self-test asked meanwhile.
        self.video_meter = VideoMeter()
        self.audio_meter = AudioMeter()
        self.video: MediaStreamTrack | None = None
        self.audio: MediaStreamTrack | None = None
        # With the `room` microphone: the simulated cabin, which plays what the loudspeaker gets (see played()).
        self.room: SimulatedRoom | None = None

    @property
    def format(self) -> VideoFormat:
        """The size and frame rate asked of the camera."""
        return self._fmt

    async def __aenter__(self) -> MediaSources:
        self.video = self._open_video()
        self.audio = self._open_audio()
        return self

    async def close(self) -> None:
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()
        self.video = self.audio = None

    def _health(self, kind: str) -> HealthCallback | None:
        on_health = self._on_health
        if on_health is None:
            return None
        return lambda available, reason: on_health(kind, available, reason)

    def _open_video(self) -> MediaStreamTrack | None:
        spec, fmt = self._video_spec, self._fmt
        if spec.kind == "none":
            return None
        if spec.kind == "test":
            return PatternVideoTrack(fmt.width, fmt.height, fmt.fps, stamp=self._stamp, meter=self.video_meter)
        return ResilientVideoTrack(
            functools.partial(open_camera, spec, fmt),
            fmt.width,
            fmt.height,
            label=f"camera {spec}",
            on_health=self._health("video"),
            meter=self.video_meter,
        )

    def played(self, frame: AudioFrame) -> None:
        """A frame of the professional's voice, as the cabin's loudspeaker gets it (the simulated room hears it)."""
        if self.room is not None:
            self.room.play(frame)

    def _open_audio(self) -> MediaStreamTrack | None:
        spec = self._audio_spec
        if spec.kind == "none":
            return None
        if spec.kind == "room":
            self.room = SimulatedRoom()
            return self.room.microphone(meter=self.audio_meter)
        if spec.kind == "test":
            return ToneAudioTrack(meter=self.audio_meter)
        return ResilientAudioTrack(
            functools.partial(open_microphone, spec),
            label=f"microphone {spec}",
            on_health=self._health("audio"),
            meter=self.audio_meter,
        )


async def open_camera(spec: SourceSpec, fmt: VideoFormat) -> MediaStreamTrack:
    """The camera itself, as configured: the test pattern, or the device read by av (no card, no rescaling).

    Raises:
        MediaSourceError: it cannot be opened, or `spec` names no camera.
    """
    if spec.kind == "test":
        return PatternVideoTrack(fmt.width, fmt.height, fmt.fps)
    if spec.kind == "file":
        return await open_device(spec.device, None, {}, "video")
    if spec.kind == "v4l2":
        options = {"video_size": f"{fmt.width}x{fmt.height}", "framerate": str(fmt.fps)}
        return await open_device(spec.device, "v4l2", options, "video")
    raise MediaSourceError(f"{spec} is not a camera")


async def open_microphone(spec: SourceSpec) -> MediaStreamTrack:
    """The microphone itself, as configured: the test tone, or the device read by av (no silence standing in).

    Raises:
        MediaSourceError: it cannot be opened, or `spec` names no microphone.
    """
    if spec.kind == "test":
        return ToneAudioTrack()
    if spec.kind == "room":
        return SimulatedRoom().microphone()
    if spec.kind in ("file", "alsa", "pulse"):
        return await open_device(spec.device, None if spec.kind == "file" else spec.kind, {}, "audio")
    raise MediaSourceError(f"{spec} is not a microphone")
