"""The self-test's pure parts: verdicts, aggregation, rendering, statistics, clock offset. No I/O."""

from __future__ import annotations

import asyncio
import math
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from av import AudioFrame, VideoFrame

from gateway.devices.manager import DeviceState
from gateway.errors import ConfigError
from gateway.media.meters import (
    AudioLevel,
    AudioMeter,
    LumaStats,
    VideoMeter,
    VideoStats,
    audio_samples,
    luma_plane,
    luma_stats,
    rms_dbfs,
)
from gateway.media.spec import SourceSpec, VideoFormat
from gateway.selftest.adapter import ManagedObjects, adapter_check
from gateway.selftest.camera import camera_check
from gateway.selftest.clock import clock_check, clock_offset
from gateway.selftest.devices import check_name, device_check, find_device
from gateway.selftest.ice import IceResult, ice_check
from gateway.selftest.microphone import microphone_check
from gateway.selftest.plan import SelftestPlan, Timeouts
from gateway.selftest.report import (
    MAX_DETAIL,
    check,
    failed,
    make_report,
    ok,
    render_json,
    render_text,
    skipped,
    warning,
)
from gateway.selftest.run import guarded
from gateway.selftest.signaling_link import HasWelcome, SignalingContact, signaling_check
from signaling.protocol import MAX_CHECKS, CheckStatus, Role, SelftestCheck, SelftestReport, Welcome, parse

FINISHED = datetime(2026, 12, 1, 9, 0, 0, 123000, tzinfo=UTC)
PATTERN = SourceSpec("test")
FMT = VideoFormat(640, 480, 30)


# --- report -------------------------------------------------------------------------------------------------


def test_report_is_ok_unless_a_required_check_failed() -> None:
    fine = [ok("camera", "fine"), warning("clock", "a bit off"), skipped("bluetooth-adapter", "none")]
    assert make_report(fine, finished_at=FINISHED).ok
    optional = [*fine, failed("device:thermometer", "not seen", required=False)]
    assert make_report(optional, finished_at=FINISHED).ok
    blocked = [*optional, failed("signaling", "refused")]
    report = make_report(blocked, finished_at=FINISHED, request_id="req-1")
    assert not report.ok
    assert report.request_id == "req-1"
    assert report.finished_at == "2026-12-01T09:00:00.123+00:00"


def test_a_skipped_check_is_never_required_and_details_fit_the_wire() -> None:
    assert not check("camera", CheckStatus.SKIPPED, "none", required=True).required
    long = failed("camera", "x" * 2000 + "\nsecond line")
    assert len(long.detail) == MAX_DETAIL
    assert long.detail.endswith("…")
    assert failed("camera", "a\n  b").detail == "a b"


def test_more_checks_than_the_wire_takes_are_folded_into_one_keeping_the_verdict() -> None:
    checks = [ok(f"device:{i}", "fine") for i in range(MAX_CHECKS + 5)]
    checks[-1] = failed("device:last", "not seen")
    report = make_report(checks, finished_at=FINISHED)
    assert len(report.checks) == MAX_CHECKS
    last = report.checks[-1]
    assert (last.name, last.status, last.required) == ("more-checks", CheckStatus.FAILED, True)
    assert "6 more checks" in last.detail and "device:last" in last.detail
    assert not report.ok
    assert parse(render_json(report)) == report


def test_render_text_gives_one_line_per_check_and_the_verdict() -> None:
    report = make_report(
        [
            ok("camera", "640x480 at 30.0 fps, image not black"),
            failed("microphone", "silent"),
            warning("device:A4:C1:38:00:00:01", "battery low: 12 %"),
            skipped("ice-servers", "none configured: host candidates only"),
            failed("device:thermometer", "not seen within 10 s", required=False),
        ],
        finished_at=FINISHED,
    )
    assert render_text(report).splitlines() == [
        "[ ok ] camera                    640x480 at 30.0 fps, image not black",
        "[FAIL] microphone                silent",
        "[warn] device:A4:C1:38:00:00:01  battery low: 12 %",
        "[skip] ice-servers               none configured: host candidates only",
        "[FAIL] device:thermometer        not seen within 10 s (optional)",
        "NOT ready for calls: microphone failed.",
    ]


def test_render_text_verdicts_when_ready() -> None:
    clean = make_report([ok("camera", "fine"), ok("signaling", "fine")], finished_at=FINISHED)
    assert render_text(clean).splitlines()[-1] == "Ready for calls: everything a call needs works."
    noted = make_report(
        [warning("clock", "off"), warning("camera", "slow"), failed("x", "no", required=False)], finished_at=FINISHED
    )
    assert render_text(noted).splitlines()[-1] == "Ready for calls (2 warnings, 1 optional check failed)."


def test_render_json_is_the_wire_message_and_parses_back() -> None:
    report = make_report(
        [ok("camera", "fine"), failed("signaling", "refused"), skipped("clock", "no server")],
        finished_at=FINISHED,
        request_id="r1",
    )
    text = render_json(report)
    assert '"type":"selftest-report"' in text
    assert parse(text) == report


# --- guard --------------------------------------------------------------------------------------------------


async def test_guarded_turns_an_exception_into_failed_checks_with_its_type_and_message() -> None:
    async def broken() -> list[SelftestCheck]:
        raise RuntimeError("driver exploded")

    checks = await guarded(["camera"], broken, timeout=1.0)
    assert checks == [failed("camera", "unexpected RuntimeError: driver exploded")]


async def test_guarded_cuts_a_probe_that_overruns() -> None:
    never = asyncio.Event()

    async def stuck() -> list[SelftestCheck]:
        await never.wait()
        return []

    checks = await guarded(["device:a", "device:b"], stuck, timeout=0.05, required=False)
    assert [(c.name, c.status, c.required) for c in checks] == [
        ("device:a", CheckStatus.FAILED, False),
        ("device:b", CheckStatus.FAILED, False),
    ]
    assert checks[0].detail == "did not finish within 0.05 s"


# --- plan ---------------------------------------------------------------------------------------------------


def test_plan_needs_one_way_to_signaling_and_positive_timeouts() -> None:
    with pytest.raises(ConfigError, match=r"connect_signaling \(standalone\) or live_signaling"):
        SelftestPlan(camera=PATTERN, microphone=PATTERN)
    with pytest.raises(ConfigError, match="not both"):
        SelftestPlan(camera=PATTERN, microphone=PATTERN, live_signaling=lambda: None, connect_signaling=_no_connect)
    with pytest.raises(ConfigError, match="timeout device must be > 0 seconds, got 0"):
        Timeouts(device=0)
    with pytest.raises(ConfigError, match="signaling must be > 0 seconds, got nan"):
        Timeouts(signaling=math.nan)


def _no_connect() -> AbstractAsyncContextManager[HasWelcome]:
    raise AssertionError("never called")


# --- luma and camera verdicts -------------------------------------------------------------------------------


def test_luma_stats_tell_black_flat_and_a_picture_apart() -> None:
    rng = np.random.default_rng(1)
    covered = (16 + rng.integers(0, 6, size=(480, 640))).astype(np.uint8)  # limited-range black with noise
    assert luma_stats(covered).black
    assert luma_stats(np.zeros((48, 64), np.uint8)).black  # full-range black
    grey = np.full((48, 64), 128, np.uint8)
    assert luma_stats(grey).flat and not luma_stats(grey).black
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1))
    stats = luma_stats(ramp)
    assert not stats.black and not stats.flat
    assert stats.mean == pytest.approx(ramp[::4, ::4].mean())
    dim_room = (covered // 2 + 10).astype(np.uint8)
    dim_room[100:200, 100:300] = 90  # a lamp or a face in a dark cabin: not black
    assert not luma_stats(dim_room).black
    with pytest.raises(ValueError, match="2-D"):
        luma_stats(np.zeros(10, np.uint8))


def test_luma_plane_reads_the_y_plane_in_place_and_converts_other_formats() -> None:
    y = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    yuv = np.concatenate([y, np.full((24, 64), 128, np.uint8)])  # yuv420p as one array: Y then U, V rows
    frame = VideoFrame.from_ndarray(yuv, format="yuv420p")
    assert np.array_equal(luma_plane(frame), y)
    rgb = VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
    assert luma_plane(rgb).shape == (48, 64)
    assert luma_stats(luma_plane(rgb)).black


def test_video_meter_measures_rate_size_and_samples_on_its_own_clock() -> None:
    now = [0.0]
    meter = VideoMeter(window=2.0, sample_every=0.5, clock=lambda: now[0])
    assert meter.stats() is None
    picture = VideoFrame.from_ndarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1)), format="gray")
    for index in range(90):  # 3 s at 30 fps
        now[0] = index / 30
        meter.observe(picture)
    stats = meter.stats()
    assert stats is not None
    assert (stats.width, stats.height) == (64, 48)
    assert stats.fps == pytest.approx(30.0)
    assert stats.frames == 61  # the last two seconds, both ends included
    assert 4 <= len(stats.samples) <= 5
    now[0] = 10.0  # the camera went quiet
    quiet = meter.stats()
    assert quiet is not None and quiet.frames == 0 and quiet.fps is None


def _stats(**changes: object) -> VideoStats:
    base: dict[str, object] = {
        "width": 640,
        "height": 480,
        "frames": 30,
        "fps": 29.7,
        "samples": (LumaStats(mean=100, std=40, p99=230),),
    }
    base.update(changes)
    return VideoStats(**base)  # type: ignore[arg-type]


def test_camera_verdicts() -> None:
    assert camera_check(_stats(), PATTERN, FMT) == ok("camera", "640x480 at 29.7 fps, image not black")
    black = camera_check(_stats(samples=(LumaStats(16.5, 1.0, 19.0),) * 3), PATTERN, FMT)
    assert black.status is CheckStatus.FAILED and "image is black" in black.detail
    flat = camera_check(_stats(samples=(LumaStats(128, 0.5, 129),)), PATTERN, FMT)
    assert flat.status is CheckStatus.WARNING and "one flat colour" in flat.detail
    small = camera_check(_stats(width=320, height=240), SourceSpec("v4l2", "/dev/video0"), FMT)
    assert small == warning("camera", "320x240 at 29.7 fps (configured 640x480), image not black")
    slow = camera_check(_stats(fps=14.9), SourceSpec("v4l2", "/dev/video0"), FMT)
    assert slow == warning("camera", "640x480 at 14.9 fps (slower than the configured 30 fps), image not black")
    a_file = camera_check(_stats(fps=10.0, width=320, height=240), SourceSpec("file", "/x.y4m"), FMT)
    assert a_file.status is CheckStatus.OK  # a recording plays at its own size and rate
    live = camera_check(_stats(), PATTERN, FMT, live=True)
    assert live.detail == "in a call: 640x480 at 29.7 fps, image not black"
    stalled = camera_check(_stats(frames=0, fps=None, samples=()), PATTERN, FMT, live=True)
    assert stalled.status is CheckStatus.FAILED and "no frame" in stalled.detail
    still = camera_check(_stats(frames=1, fps=None), SourceSpec("file", "/x.y4m"), FMT)
    assert still == ok("camera", "640x480, 1 frame, image not black")


# --- sound and microphone verdicts --------------------------------------------------------------------------


def _audio(data: np.ndarray, fmt: str, layout: str = "mono") -> AudioFrame:
    frame = AudioFrame.from_ndarray(data, format=fmt, layout=layout)
    frame.sample_rate = 48_000
    return frame


def test_rms_dbfs_of_known_signals() -> None:
    assert rms_dbfs(np.ones(100)) == pytest.approx(0.0)
    sine = np.sin(2 * np.pi * 440 * np.arange(48_000) / 48_000)
    assert rms_dbfs(sine) == pytest.approx(-3.01, abs=0.01)
    assert rms_dbfs(0.1 * sine) == pytest.approx(-23.01, abs=0.01)
    assert rms_dbfs(np.zeros(480)) == -math.inf
    with pytest.raises(ValueError, match="no samples"):
        rms_dbfs(np.zeros(0))


def test_audio_samples_scale_every_sample_format_to_full_scale() -> None:
    half = _audio(np.full((1, 960), 16384, np.int16), "s16")
    assert audio_samples(half) == pytest.approx(np.full((1, 960), 0.5))
    planar_float = _audio(np.full((2, 960), -0.25, np.float32), "fltp", "stereo")
    assert audio_samples(planar_float) == pytest.approx(np.full((2, 960), -0.25))
    s32 = _audio(np.full((1, 960), -(2**31), np.int32), "s32")
    assert audio_samples(s32) == pytest.approx(np.full((1, 960), -1.0))
    u8 = _audio(np.full((1, 960), 192, np.uint8), "u8")
    assert audio_samples(u8) == pytest.approx(np.full((1, 960), 0.5))


def test_audio_meter_keeps_the_last_window() -> None:
    meter = AudioMeter(window=0.5)
    assert meter.level() is None
    loud = _audio(np.full((1, 960), 16384, np.int16), "s16")  # 20 ms at -6 dBFS
    quiet = _audio(np.zeros((1, 960), np.int16), "s16")
    for _ in range(50):  # a second of sound
        meter.observe(loud)
    level = meter.level()
    assert level is not None
    assert level.dbfs == pytest.approx(-6.02, abs=0.01)
    assert level.seconds == pytest.approx(0.5, abs=0.021)
    for _ in range(50):  # then a second of silence pushes the sound out of the window
        meter.observe(quiet)
    assert meter.level() == AudioLevel(dbfs=-math.inf, seconds=meter.seconds)


def test_microphone_verdicts() -> None:
    assert microphone_check(AudioLevel(-23.4, 0.5)) == ok("microphone", "level -23 dBFS over 0.5 s, above silence")
    silent = microphone_check(AudioLevel(-math.inf, 0.5))
    assert silent == failed(
        "microphone", "silent: level -inf dBFS over 0.5 s, needs above -70 dBFS (muted or unplugged?)"
    )
    assert microphone_check(AudioLevel(-80.0, 0.5)).status is CheckStatus.FAILED
    assert microphone_check(AudioLevel(-80.0, 0.5), threshold=-90).status is CheckStatus.OK
    assert microphone_check(AudioLevel(-30, 1.0), live=True).detail.startswith("in a call: ")


# --- Bluetooth adapter --------------------------------------------------------------------------------------


def _adapter(powered: bool, address: str, roles: list[str] | None = None) -> dict[str, dict[str, object]]:
    properties: dict[str, object] = {"Powered": powered, "Address": address}
    if roles is not None:
        properties["Roles"] = roles
    return {"org.bluez.Adapter1": properties, "org.freedesktop.DBus.Properties": {}}


def test_adapter_verdicts() -> None:
    objects: ManagedObjects = {
        "/org/bluez": {"org.bluez.AgentManager1": {}},
        "/org/bluez/hci0": _adapter(True, "00:00:5E:00:53:01", ["central", "peripheral"]),
        "/org/bluez/hci1": _adapter(False, "00:00:5E:00:53:02"),
        "/org/bluez/hci0/dev_A4_C1_38_00_00_01": {"org.bluez.Device1": {}},
    }
    assert adapter_check(objects, "hci0") == ok("bluetooth-adapter", "hci0 (00:00:5E:00:53:01) is powered")
    assert adapter_check(objects, None) == ok("bluetooth-adapter", "hci0 (00:00:5E:00:53:01) is powered")
    off = adapter_check(objects, "hci1")
    assert off == failed("bluetooth-adapter", "hci1 is off (turn it on: bluetoothctl power on)")
    missing = adapter_check(objects, "hci7", required=False)
    assert missing == failed("bluetooth-adapter", "no adapter hci7 (BlueZ has hci0, hci1)", required=False)
    none = adapter_check({"/org/bluez": {}}, None)
    assert none.status is CheckStatus.FAILED and "no Bluetooth adapter" in none.detail
    only_off: ManagedObjects = {"/org/bluez/hci1": _adapter(False, "00:00:5E:00:53:02")}
    assert adapter_check(only_off, None).detail == "hci1 off (turn it on: bluetoothctl power on)"
    peripheral_only: ManagedObjects = {"/org/bluez/hci0": _adapter(True, "00:00:5E:00:53:01", ["peripheral"])}
    assert "no adapter can scan" in adapter_check(peripheral_only, None).detail


# --- devices ------------------------------------------------------------------------------------------------

ADDRESS = "A4:C1:38:00:00:01"


@dataclass(frozen=True)
class _ServiceState(DeviceState):
    """A device state that names its services, as the manager's will for devices allowed by service."""

    services: frozenset[str] = field(default_factory=frozenset)


def test_device_verdicts() -> None:
    seen = DeviceState(ADDRESS, name="Thermo", seen=True)
    connected = DeviceState(ADDRESS, name="Thermo", seen=True, connected=True, battery_percent=85)
    assert device_check(ADDRESS.lower(), None, timeout=10) == failed(
        f"device:{ADDRESS}", "not seen within 10 s (switched off, out of range, or battery flat?)"
    )
    assert device_check(ADDRESS, DeviceState(ADDRESS), timeout=10).detail.startswith("not seen within 10 s")
    assert device_check(ADDRESS, seen, timeout=5).detail == "Thermo seen but not connected within 5 s"
    assert device_check(ADDRESS, connected, timeout=10) == ok(f"device:{ADDRESS}", "Thermo connected, battery 85 %")
    low = DeviceState(ADDRESS, seen=True, connected=True, battery_percent=19)
    assert device_check(ADDRESS, low, timeout=10, required=False) == warning(
        f"device:{ADDRESS}", "the device connected, battery low: 19 %", required=False
    )
    unknown = DeviceState(ADDRESS, name="Thermo", seen=True, connected=True)
    assert device_check(ADDRESS, unknown, timeout=10).detail == "Thermo connected, battery level unknown"
    by_service = _ServiceState(ADDRESS, "Thermo", True, True, 20, services=frozenset({"thermometer"}))
    assert device_check("thermometer", by_service, timeout=10) == ok(
        "device:thermometer", f"Thermo ({ADDRESS}) connected, battery 20 %"
    )


def test_find_device_by_address_or_by_the_best_device_offering_the_service() -> None:
    asleep = _ServiceState("A4:C1:38:00:00:02", seen=True, services=frozenset({"thermometer"}))
    awake = _ServiceState("A4:C1:38:00:00:03", seen=True, connected=True, services=frozenset({"thermometer"}))
    other = DeviceState(ADDRESS, seen=True)
    states = {s.address: s for s in (asleep, awake, other)}
    assert find_device(ADDRESS.lower(), states) is other
    assert find_device("thermometer", states) is awake
    assert find_device("blood-pressure", states) is None
    assert find_device("A4:C1:38:99:99:99", states) is None
    assert check_name("a4:c1:38:00:00:01") == f"device:{ADDRESS}"
    assert check_name("blood-pressure") == "device:blood-pressure"


# --- ICE servers --------------------------------------------------------------------------------------------


def test_ice_verdicts() -> None:
    assert ice_check([]) == skipped("ice-servers", "none configured: host candidates only")
    up = IceResult("stun:127.0.0.1:3478", True, "answered in 1 ms")
    down = IceResult("turn:127.0.0.1:3479?transport=tcp", False, "connection refused (nothing listens there)")
    assert ice_check([up]) == ok("ice-servers", "1 of 1 reachable: stun:127.0.0.1:3478 answered in 1 ms")
    some = ice_check([up, down])
    assert some.status is CheckStatus.WARNING
    assert some.detail == (
        "1 of 2 reachable: stun:127.0.0.1:3478 answered in 1 ms; "
        "turn:127.0.0.1:3479?transport=tcp connection refused (nothing listens there)"
    )
    assert ice_check([down]).status is CheckStatus.FAILED


# --- signaling and clock ------------------------------------------------------------------------------------

RECEIVED = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


def _contact(server_offset: float | None, round_trip: float = 0.1, text: str | None = None) -> SignalingContact:
    if text is None and server_offset is not None:
        # What the server wrote: its clock when it sent the welcome, half a round trip before it arrived.
        sent = RECEIVED - timedelta(seconds=round_trip / 2) + timedelta(seconds=server_offset)
        text = sent.isoformat(timespec="milliseconds")
    welcome = Welcome(role=Role.CABIN, ice_servers=(), cabin_id="cabin-1", server_time=text)
    return SignalingContact(welcome=welcome, round_trip=round_trip, received_at=RECEIVED)


def test_clock_offset_corrects_half_the_round_trip() -> None:
    assert clock_offset(_contact(0.0, round_trip=0.8)) == pytest.approx(0.0, abs=0.001)
    assert clock_offset(_contact(2.5)) == pytest.approx(2.5, abs=0.001)
    assert clock_offset(_contact(-7.25, round_trip=0.02)) == pytest.approx(-7.25, abs=0.001)
    assert clock_offset(_contact(None, text="2026-12-01T09:00:00Z")) == pytest.approx(0.05)
    assert clock_offset(_contact(None)) is None
    assert clock_offset(_contact(None, text="yesterday")) is None
    assert clock_offset(_contact(None, text="2026-12-01T09:00:00")) is None  # no timezone: not comparable


@pytest.mark.parametrize(
    ("offset", "status", "words"),
    [
        (0.3, CheckStatus.OK, "cabin clock 0.30 s behind the server's (± 0.05 s)"),
        (-0.9, CheckStatus.OK, "cabin clock 0.90 s ahead of the server's"),
        (3.0, CheckStatus.WARNING, "check the time synchronisation"),
        (-4.9, CheckStatus.WARNING, "ahead of"),
        (8.0, CheckStatus.FAILED, "appointments open late"),
        (-6.0, CheckStatus.FAILED, "signaling refuses the key of a cabin more than 5 s ahead"),
    ],
)
def test_clock_verdicts(offset: float, status: CheckStatus, words: str) -> None:
    result = clock_check(_contact(offset))
    assert result.status is status
    assert result.required
    assert words in result.detail


def test_clock_without_a_server_time() -> None:
    assert clock_check(None) == skipped("clock", "no welcome from signaling to compare with")
    assert clock_check(_contact(None)) == skipped("clock", "the server does not send its time")
    unreadable = clock_check(_contact(None, text="yesterday"))
    assert unreadable.status is CheckStatus.WARNING and not unreadable.required


def test_signaling_verdicts() -> None:
    assert signaling_check(_contact(0.0, round_trip=0.0123)) == ok("signaling", "key accepted, round trip 12 ms")
    assert "connected, key accepted" in signaling_check(_contact(0.0), live=True).detail


def test_report_types_match_the_protocol() -> None:
    report = make_report([ok("camera", "fine")], finished_at=FINISHED)
    assert isinstance(report, SelftestReport)
