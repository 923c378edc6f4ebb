"""The camera and microphone checks on real sources: the test pattern and tone, and Y4M and WAV files read by av."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from gateway.media.meters import AudioLevel, LumaStats, VideoStats
from gateway.media.spec import SourceSpec, VideoFormat
from gateway.selftest.camera import probe_camera
from gateway.selftest.microphone import probe_microphone
from signaling.protocol import CheckStatus, SelftestCheck

FMT = VideoFormat(640, 480, 30)


def write_y4m(path: Path, luma: np.ndarray, frames: int, fps: int = 30) -> Path:
    """A YUV4MPEG2 file of `frames` identical 4:2:0 frames with this luma (limited range) and neutral chroma."""
    height, width = luma.shape
    chroma = np.full((height // 2, width // 2), 128, np.uint8).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420mpeg2\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma.astype(np.uint8).tobytes() + chroma + chroma)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 48_000) -> Path:
    """A mono 16-bit WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


# --- camera -------------------------------------------------------------------------------------------------


async def test_the_test_pattern_passes_with_its_size_and_rate() -> None:
    check = await probe_camera(SourceSpec("test"), FMT, duration=1.0)
    assert check.status is CheckStatus.OK, check
    assert check.detail.startswith("640x480 at ")
    assert check.detail.endswith(" fps, image not black")
    fps = float(check.detail.split(" at ")[1].split(" fps")[0])
    assert 20 <= fps <= 31


async def test_an_all_black_camera_fails(tmp_path: Path) -> None:
    black = write_y4m(tmp_path / "black.y4m", np.full((480, 640), 16, np.uint8), frames=45)
    check = await probe_camera(SourceSpec("file", str(black)), FMT, duration=1.0)
    assert check.status is CheckStatus.FAILED
    assert check.required
    assert check.detail.startswith("640x480 at ")
    assert check.detail.endswith("but the image is black (lens covered, or no light?)")


async def test_a_dim_but_real_picture_passes(tmp_path: Path) -> None:
    dim = np.full((240, 320), 20, np.uint8)
    dim[60:180, 100:220] = np.linspace(30, 120, 120, dtype=np.uint8)  # a face under a weak lamp
    path = write_y4m(tmp_path / "dim.y4m", dim, frames=30, fps=15)
    check = await probe_camera(SourceSpec("file", str(path)), FMT, duration=1.0)
    assert check.status is CheckStatus.OK, check
    assert check.detail.startswith("320x240 at ")  # a recording keeps its own size: no "configured" note


async def test_a_camera_that_cannot_be_opened_fails_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "unplugged.y4m"
    check = await probe_camera(SourceSpec("file", str(missing)), FMT)
    assert check.status is CheckStatus.FAILED
    assert "cannot open file" in check.detail and str(missing) in check.detail
    v4l2 = await probe_camera(SourceSpec("v4l2", str(tmp_path / "video9")), FMT)
    assert v4l2.status is CheckStatus.FAILED and "cannot open v4l2" in v4l2.detail


async def test_a_source_that_ends_before_its_first_frame_fails(tmp_path: Path) -> None:
    empty = write_y4m(tmp_path / "empty.y4m", np.zeros((48, 64), np.uint8), frames=0)
    check = await probe_camera(SourceSpec("file", str(empty)), FMT)
    assert check.status is CheckStatus.FAILED
    assert check.detail == f"file:{empty} ended before its first frame"


async def test_no_camera_is_skipped_and_not_required() -> None:
    check = await probe_camera(SourceSpec("none"), FMT)
    assert (check.status, check.required, check.detail) == (CheckStatus.SKIPPED, False, "no camera configured")


async def test_a_camera_in_a_call_is_reported_from_the_call_and_not_opened_again(tmp_path: Path) -> None:
    asked = []
    stats = VideoStats(640, 480, frames=60, fps=29.97, samples=(LumaStats(110, 50, 240),))

    def live() -> VideoStats | None:
        asked.append(True)
        return stats

    # A device that does not exist: opening it would fail, so an ok proves it was not opened.
    check = await probe_camera(SourceSpec("v4l2", str(tmp_path / "video0")), FMT, live=live)
    assert asked == [True]
    assert check.status is CheckStatus.OK
    assert check.detail == "in a call: 640x480 at 30.0 fps, image not black"


async def test_without_a_call_the_live_view_is_empty_and_the_camera_is_opened() -> None:
    check = await probe_camera(SourceSpec("test"), FMT, live=lambda: None, duration=0.3)
    assert check.status is CheckStatus.OK
    assert not check.detail.startswith("in a call")


# --- microphone ---------------------------------------------------------------------------------------------


async def test_the_test_tone_passes() -> None:
    check = await probe_microphone(SourceSpec("test"))
    assert check.status is CheckStatus.OK, check
    assert check.detail.endswith("above silence")
    level = float(check.detail.split("level ")[1].split(" dBFS")[0])
    assert -30 < level < -10  # a 0.2 full-scale sine


async def test_a_silent_microphone_fails(tmp_path: Path) -> None:
    silent = write_wav(tmp_path / "silence.wav", np.zeros(48_000))
    check = await probe_microphone(SourceSpec("file", str(silent)))
    assert check.status is CheckStatus.FAILED
    assert check.detail.startswith("silent: level -inf dBFS over 0.5 s")


async def test_a_microphone_hearing_a_voice_passes(tmp_path: Path) -> None:
    t = np.arange(48_000) / 48_000
    voice = 0.05 * 32767 * np.sin(2 * math.pi * 220 * t) * (1 + np.sin(2 * math.pi * 3 * t)) / 2
    path = write_wav(tmp_path / "voice.wav", voice)
    check = await probe_microphone(SourceSpec("file", str(path)))
    assert check.status is CheckStatus.OK, check


async def test_a_microphone_that_cannot_be_opened_fails_with_the_reason(tmp_path: Path) -> None:
    check = await probe_microphone(SourceSpec("file", str(tmp_path / "none.wav")))
    assert check.status is CheckStatus.FAILED
    assert "cannot open file" in check.detail


async def test_no_microphone_is_skipped_and_a_microphone_in_a_call_is_reported_from_the_call(
    tmp_path: Path,
) -> None:
    skipped = await probe_microphone(SourceSpec("none"))
    assert (skipped.status, skipped.required) == (CheckStatus.SKIPPED, False)
    in_call = await probe_microphone(
        SourceSpec("file", str(tmp_path / "absent.wav")), live=lambda: AudioLevel(-42.0, 1.0)
    )
    assert in_call.status is CheckStatus.OK
    assert in_call.detail == "in a call: level -42 dBFS over 1.0 s, above silence"


async def test_the_silence_threshold_is_the_callers() -> None:
    check = await probe_microphone(SourceSpec("test"), threshold=-5.0)  # the tone is about -17 dBFS
    assert check.status is CheckStatus.FAILED
    assert "needs above -5 dBFS" in check.detail


async def test_a_camera_and_microphone_held_by_a_call_without_meters_are_skipped_not_opened(tmp_path: Path) -> None:
    busy = "in a call: not measured now"
    camera = await probe_camera(SourceSpec("v4l2", str(tmp_path / "video0")), FMT, live=lambda: busy)
    microphone = await probe_microphone(SourceSpec("alsa", "hw:9"), live=lambda: busy)
    assert camera == SelftestCheck("camera", CheckStatus.SKIPPED, busy, required=False)
    assert microphone == SelftestCheck("microphone", CheckStatus.SKIPPED, busy, required=False)
