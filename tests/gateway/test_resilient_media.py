"""A camera or microphone that goes away mid-call: real av on real files standing in for the device.

The lowest honest layer for a device that disappears on a machine without one: `file:PATH` sources read by av
through aiortc's MediaPlayer, exactly as a V4L2 camera or an ALSA microphone is read. Deleting the file is the
unplug (the reader reaches its end and cannot open it again); writing it back is the replug.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from gateway.media.resilient import ResilientAudioTrack, ResilientVideoTrack
from gateway.media.sources import MediaSources, open_device
from gateway.media.spec import SourceSpec, VideoFormat

WIDTH, HEIGHT = 320, 240
BRIGHT = 200  # the "camera"'s picture: uniform light grey; the card is dark (#1f2933, luma about 40)


def write_y4m(path: Path, frames: int = 9, luma: int = BRIGHT) -> None:
    """A short Y4M recording: `frames` frames of a light grey gradient (mean `luma`, not one flat colour) at 30 fps."""
    gradient = np.linspace(luma - 40, luma + 40, WIDTH).astype(np.uint8)
    picture = np.repeat(np.tile(gradient, (HEIGHT, 1))[:, :, None], 3, axis=2)
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_wav(path: Path, seconds: float = 0.3) -> None:
    """A short 440 Hz tone, mono 48 kHz."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=48000, layout="mono")
        samples = np.arange(int(48000 * seconds))
        tone = (np.sin(2 * np.pi * 440 * samples / 48000) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def mean_luma(frame: av.VideoFrame) -> float:
    return float(frame.to_ndarray(format="gray").mean())


class Health:
    """What the track told its owner: (available, reason) in order, with an event per change."""

    def __init__(self) -> None:
        self.changes: list[tuple[bool, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, available: bool, reason: str) -> None:
        self.changes.append((available, reason))
        self.changed.set()


async def frames_until(track: ResilientVideoTrack, predicate: object, *, timeout: float, what: str) -> av.VideoFrame:
    async with asyncio.timeout(timeout):
        while True:
            frame = await track.recv()
            if predicate(frame):  # type: ignore[operator]
                return frame
    pytest.fail(f"no frame {what}")  # pragma: no cover


async def test_an_unplugged_camera_becomes_the_card_then_comes_back(tmp_path: Path) -> None:
    camera = tmp_path / "camera.y4m"
    write_y4m(camera)
    health = Health()

    async def open_camera() -> object:
        return await open_device(str(camera), None, {}, "video")

    track = ResilientVideoTrack(open_camera, WIDTH, HEIGHT, on_health=health)  # type: ignore[arg-type]
    try:
        first = await frames_until(track, lambda f: mean_luma(f) > 150, timeout=10, what="from the camera")
        assert (first.width, first.height) == (WIDTH, HEIGHT)
        # The recording ends and is read again, with no card and no alert: a blip is not an incident.
        for _ in range(20):
            assert mean_luma(await track.recv()) > 150
        assert health.changes == []

        camera.unlink()  # unplugged
        card = await frames_until(track, lambda f: mean_luma(f) < 80, timeout=10, what="showing the card")
        assert (card.width, card.height) == (WIDTH, HEIGHT)
        assert health.changes and health.changes[0][0] is False
        assert "camera.y4m" in health.changes[0][1] or "No such file" in health.changes[0][1]
        assert track.readyState == "live"

        write_y4m(camera)  # plugged back
        await frames_until(track, lambda f: mean_luma(f) > 150, timeout=15, what="from the camera again")
        assert [available for available, _ in health.changes] == [False, True]
        assert track.reopened == 1
    finally:
        track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_a_camera_missing_at_the_start_shows_the_card_at_once(tmp_path: Path) -> None:
    health = Health()
    sources = MediaSources(
        SourceSpec.parse(f"file:{tmp_path / 'absent.y4m'}", audio=False),
        SourceSpec("none"),
        VideoFormat(WIDTH, HEIGHT, 30),
        on_health=lambda kind, available, reason: health(available, f"{kind}: {reason}"),
    )
    async with sources:
        assert isinstance(sources.video, ResilientVideoTrack)
        frame = await asyncio.wait_for(sources.video.recv(), timeout=10)
        assert mean_luma(frame) < 80
        assert health.changes[0][0] is False and health.changes[0][1].startswith("video: ")
        # Timestamps keep moving on the track's own clock.
        later = await asyncio.wait_for(sources.video.recv(), timeout=10)
        assert later.pts is not None and frame.pts is not None and later.pts > frame.pts


async def test_a_silent_microphone_sends_silence_until_it_is_back(tmp_path: Path) -> None:
    microphone = tmp_path / "microphone.wav"
    write_wav(microphone)
    health = Health()

    async def open_microphone() -> object:
        return await open_device(str(microphone), None, {}, "audio")

    track = ResilientAudioTrack(open_microphone, on_health=health)  # type: ignore[arg-type]

    def loud(frame: av.AudioFrame) -> bool:
        return float(np.abs(frame.to_ndarray().astype(np.float64)).max()) > 1000

    try:
        async with asyncio.timeout(10):
            while not loud(await track.recv()):
                pass
        microphone.unlink()
        async with asyncio.timeout(10):
            while not health.changes:
                frame = await track.recv()
        assert health.changes[0][0] is False
        silent = await track.recv()
        assert not loud(silent) and silent.sample_rate == 48000
        write_wav(microphone)
        async with asyncio.timeout(15):
            while not loud(await track.recv()):
                pass
        assert [available for available, _ in health.changes] == [False, True]
        # One clock across the device and the silence: timestamps only go forward.
        stamps = [(await track.recv()).pts for _ in range(5)]
        assert stamps == sorted(stamps) and len(set(stamps)) == 5
        del frame
    finally:
        track.stop()
