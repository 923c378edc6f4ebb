"""The cabin microphone's processing (issue 14), piece by piece: the measures, the processor on frames of any shape,
the simulated room, and the self-test's sound check through it. The whole path, in a call with a real browser, is
tests/test_echo_browser.py; the figures are bench/audio.py's."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from av import AudioFrame

from gateway.media.spec import SourceSpec
from gateway.media.synthetic import ToneAudioTrack
from gateway.selftest.loudspeaker import AlsaPath, LoudspeakerError
from gateway.selftest.plan import SelftestPlan, Timeouts
from gateway.selftest.report import CheckStatus
from gateway.selftest.run import run_selftest
from gateway.selftest.sound import RoomPath, probe_sound
from gateway.sound import signals
from gateway.sound.processor import VoiceProcessor
from gateway.sound.room import FRAME, RoomSettings, SimulatedRoom
from gateway.sound.settings import SoundSettings
from gateway.sound.track import ProcessedMicrophone
from tests.conftest import need_tool

RATE = signals.RATE


def frame(samples: np.ndarray, *, rate: int = RATE, layout: str = "mono") -> AudioFrame:
    data = signals.to_int16(samples)
    if layout == "stereo":
        data = np.repeat(data, 2)
    out = AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout=layout)
    out.sample_rate = rate
    return out


def test_levels_delays_and_correlations_are_measured() -> None:
    voice = signals.speech_like(3.0, 1)
    assert signals.level_db(voice) == pytest.approx(-20.0, abs=0.01)
    assert signals.level_db(np.zeros(10)) == signals.FLOOR_DB
    delayed = np.concatenate([np.zeros(4321), voice])[: voice.size]
    found, clarity = signals.delay_samples(voice, delayed, max_delay=RATE // 2)
    assert found == 4321 and clarity > 10
    assert signals.correlation(voice, voice) == pytest.approx(1.0)
    assert abs(signals.correlation(voice, signals.speech_like(3.0, 2))) < 0.1
    sweep = signals.sweep(1.0)
    assert signals.level_db(sweep) == pytest.approx(-12.0, abs=0.01)


def test_frames_of_any_shape_come_back_as_long_mono_and_48_khz() -> None:
    processor = VoiceProcessor(SoundSettings())
    voice = signals.speech_like(1.0, 3)
    # aiortc's Opus decoder gives 20 ms stereo frames: the far end.
    for at in range(0, voice.size, 960):
        processor.far_end(frame(voice[at : at + 960], layout="stereo"))
    assert processor.far_pieces == 100
    # A sound card's 1024-sample frames at 44.1 kHz: each comes back with its 48 kHz length (resampled), no more.
    lengths = []
    for _ in range(20):
        out = processor.near_end(frame(np.zeros(1024) + 0.01, rate=44_100))
        assert out.sample_rate == RATE and out.layout.name == "mono"
        lengths.append(out.samples)
    assert sum(lengths) == pytest.approx(20 * 1024 * RATE / 44_100, abs=48)


async def test_the_test_tone_passes_the_processing_whole() -> None:
    """A steady tone is not taken for noise: the demo's microphone is heard as before."""
    tone = ToneAudioTrack()
    processed = ProcessedMicrophone(tone, VoiceProcessor(SoundSettings()))
    heard = np.concatenate([(await processed.recv()).to_ndarray().reshape(-1) for _ in range(150)])
    assert signals.level_db(signals.from_int16(heard[RATE:])) == pytest.approx(-20.0, abs=1.5)
    processed.stop()
    assert tone.readyState == "live", "the source is its owner's to stop"


def test_the_room_returns_the_loudspeaker_after_its_delay_with_noise_and_voice() -> None:
    room = SimulatedRoom(RoomSettings(playout_delay=0.08, talk=0.0), record=3.0)
    played = signals.speech_like(2.0, 4)
    for at in range(0, played.size, FRAME):
        room.play(frame(played[at : at + FRAME]))
        room.capture(FRAME)
    echo = room.recorded("echo")
    delay, clarity = signals.delay_samples(played, echo, max_delay=RATE // 4)
    assert delay == int(0.08 * RATE) and clarity > 10
    assert room.underruns == 0
    assert signals.level_db(room.recorded("voice")) == signals.FLOOR_DB
    noise = room.recorded("mic") - echo
    assert signals.level_db(noise) == pytest.approx(-50.0, abs=1.0)
    with pytest.raises(ValueError, match="records nothing"):
        SimulatedRoom().recorded("mic")


def test_a_room_that_ran_dry_waits_its_playout_delay_again() -> None:
    room = SimulatedRoom(RoomSettings(playout_delay=0.04, talk=0.0, noise_dbfs=-120.0), record=2.0)
    for _ in range(10):
        room.capture(FRAME)  # nothing played: dry
    click = np.zeros(FRAME)
    click[0] = 0.5
    room.play(frame(click))
    heard = np.concatenate([room.capture(FRAME) for _ in range(6)])
    assert int(np.argmax(np.abs(heard))) == int(0.04 * RATE)


async def test_the_sound_check_measures_the_echo_path() -> None:
    for delay in (0.04, 0.2):
        check = await probe_sound(RoomPath(RoomSettings(talk=0.0, playout_delay=delay)), SoundSettings())
        assert check.status is CheckStatus.OK and not check.required
        assert check.detail.startswith(f"echo path {delay * 1000:.0f} ms, echo return loss ")
        cancelled = int(check.detail.split(" dB with cancellation")[0].rsplit(" ", 1)[1])
        assert cancelled >= 30 and "noise floor -5" in check.detail
    off = await probe_sound(RoomPath(RoomSettings(talk=0.0)), SoundSettings(echo_cancellation=False))
    assert off.status is CheckStatus.OK and "cancellation off" in off.detail


async def test_the_sound_check_warns_of_a_deaf_loudspeaker_or_a_noisy_cabin() -> None:
    deaf = await probe_sound(RoomPath(RoomSettings(talk=0.0, direct_gain=1e-5)), SoundSettings())
    assert deaf.status is CheckStatus.WARNING and "not heard" in deaf.detail
    noisy = await probe_sound(RoomPath(RoomSettings(talk=0.0, noise_dbfs=-30.0)), SoundSettings())
    assert noisy.status is CheckStatus.WARNING and noisy.detail.startswith("a noisy cabin: ")
    skipped = await probe_sound(None, SoundSettings())
    assert skipped.status is CheckStatus.SKIPPED and "Sound in the cabin" in skipped.detail


async def test_the_sound_check_plays_and_records_through_alsa() -> None:
    """ALSA's own programs on its null device (this machine has no sound card): they run, play, record silence,
    and the check says the loudspeaker was not heard; a device that does not exist is named."""
    need_tool("arecord", "alsa-utils")
    silent = await probe_sound(AlsaPath("null", "null"), SoundSettings())
    assert silent.status is CheckStatus.WARNING and "not heard" in silent.detail
    with pytest.raises(LoudspeakerError, match=r"aplay, the loudspeaker 'nosuch': .*Unknown PCM nosuch"):
        await AlsaPath("nosuch", "null").play_and_record(np.zeros(4800), 0.1)


@contextlib.asynccontextmanager
async def nowhere() -> AsyncIterator[None]:
    raise ConnectionError("no signaling in this test")
    yield


async def test_the_self_test_tries_the_configured_loudspeaker(tmp_path: Path) -> None:
    need_tool("arecord", "alsa-utils")
    plan = SelftestPlan(
        camera=SourceSpec("none"),
        microphone=SourceSpec("alsa", "null"),
        connect_signaling=lambda: nowhere(),
        loudspeaker="nosuch",
        timeouts=Timeouts(signaling=0.5, ice=0.5),
    )
    report = await run_selftest(plan)
    (check,) = [c for c in report.checks if c.name == "sound"]
    assert check.status is CheckStatus.WARNING and check.detail.startswith(
        "the sound path cannot be tried: aplay, the loudspeaker 'nosuch'"
    )
