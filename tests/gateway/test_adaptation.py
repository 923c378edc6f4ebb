"""The video follows the link (bitrate, then frame rate, then size, and back), and the voice carries Opus FEC.

The policy is pure and is driven with synthetic estimate sequences; the track wrapper reads a real aiortc track; the
calls are two real aiortc peers on loopback, where the professional's side sends real REMB packets whose value the
test sets (its bitrate estimator is the one thing stood in for).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
import math
from collections.abc import AsyncIterator, Iterator

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.opus import OpusEncoder
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

from gateway.ice import LOOPBACK, host_addresses
from gateway.media.adaptation import (
    BITS_PER_PIXEL,
    DOWN_HOLD_S,
    PROBE_HOLD_S,
    UP_HOLD_S,
    UP_MARGIN,
    AdaptationController,
    AdaptationError,
    AdaptationPolicy,
    AdaptiveVideoTrack,
    LinkSample,
    LossCeiling,
    VideoLadder,
    VideoLevel,
    encoder_target_bitrate,
    lower_bitrate_floor,
)
from gateway.media.audio_fec import VOICE_BITRATE, AudioFecError, enable_opus_fec, opus_fec_encoder, opus_lbrr
from gateway.media.spec import VideoFormat
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack
from gateway.session import rtc_configuration
from tests.conftest import wait_until

HD = VideoFormat(1280, 720, 30)
VGA = VideoFormat(640, 480, 30)


# ---------------------------------------------------------------- the ladder


def test_the_ladder_steps_the_frame_rate_down_first_then_the_size_keeping_the_aspect_ratio() -> None:
    assert [str(level) for level in VideoLadder.for_format(HD).levels] == [
        "1280x720@30",
        "1280x720@20",
        "1280x720@15",
        "1280x720@10",
        "960x540@10",
        "640x360@10",
        "480x270@10",
        "320x180@10",
    ]
    # 4:3 keeps 4:3; sizes under WebRTC's 320x180 pixel floor are left out (240x180, 160x120).
    assert [str(level) for level in VideoLadder.for_format(VGA).levels] == [
        "640x480@30",
        "640x480@20",
        "640x480@15",
        "640x480@10",
        "480x360@10",
        "320x240@10",
    ]


def test_the_ladder_starts_at_the_configured_rate_and_never_exceeds_it() -> None:
    assert [str(level) for level in VideoLadder.for_format(VideoFormat(640, 480, 25)).levels][:4] == [
        "640x480@25",
        "640x480@20",
        "640x480@15",
        "640x480@10",
    ]
    small = VideoLadder.for_format(VideoFormat(320, 240, 15))
    assert [str(level) for level in small.levels] == ["320x240@15", "320x240@10"]
    only = VideoLadder.for_format(VideoFormat(160, 120, 5))
    assert only.top == only.floor == VideoLevel(160, 120, 5)
    for ladder in (VideoLadder.for_format(HD), VideoLadder.for_format(VideoFormat(1920, 1080, 30))):
        for level in ladder.levels:
            assert level.width % 2 == level.height % 2 == 0
            assert abs(level.width / level.height - ladder.top.width / ladder.top.height) < 0.01


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: VideoLevel(641, 480, 30), "even sizes"),
        (lambda: VideoLevel(640, 480, 0), "frame rate must be 1..120"),
        (lambda: VideoLadder(()), "at least one level"),
        (lambda: VideoLadder((VideoLevel(320, 240, 10), VideoLevel(640, 480, 10))), "need less than the one above"),
        (lambda: VideoLadder((VideoLevel(640, 480, 10), VideoLevel(320, 240, 15))), "larger or faster"),
        (lambda: VideoLadder.for_format(VideoFormat(641, 480, 30)), "even sizes"),
        (lambda: LinkSample(-1), "negative"),
        (lambda: LinkSample(1000, loss=1.5), "share 0..1"),
        (lambda: AdaptationPolicy(VideoLadder.for_format(VGA), up_margin=0.9), "oscillate"),
        (lambda: AdaptationPolicy(VideoLadder.for_format(VGA), bits_per_pixel=0), "positive"),
        (lambda: AdaptationPolicy(VideoLadder.for_format(VGA), up_hold=-1), "negative"),
    ],
)
def test_impossible_values_are_refused_with_a_clear_message(build: object, message: str) -> None:
    with pytest.raises(AdaptationError, match=message):
        build()  # type: ignore[operator]


# ---------------------------------------------------------------- the policy, with synthetic estimates


def run(policy: AdaptationPolicy, estimates: list[float], *, start: float = 0.0, step: float = 1.0) -> list[str]:
    """Feed one estimate per `step` seconds (the encoder sending what it is told); the level after each."""
    return [str(policy.observe(start + i * step, LinkSample(bps, sent_bps=bps))) for i, bps in enumerate(estimates)]


def test_a_comfortable_link_only_moves_the_bitrate() -> None:
    policy = AdaptationPolicy(VideoLadder.for_format(VGA))
    need = policy.need_bps(0)  # 369 kbps for 640x480@30
    assert round(need) == round(640 * 480 * 30 * BITS_PER_PIXEL)
    # aiortc's VP8 between its start (500 kbps) and its ceiling (1.5 Mbps): aiortc's encoder follows, we do nothing.
    seen = run(policy, [500_000, 1_500_000, 700_000, need * 1.01, 1_000_000] * 6)
    assert set(seen) == {"640x480@30"}


def test_a_shrinking_link_drops_the_frame_rate_before_the_size_and_stops_at_the_floor() -> None:
    ladder = VideoLadder.for_format(HD)
    policy = AdaptationPolicy(ladder)
    # 1.5 Mbps falling by 5 % a second to 40 kbps, then nothing at all.
    estimates = [1_500_000 * 0.95**i for i in range(70)] + [0.0] * 5
    seen = run(policy, estimates)
    visited = list(dict.fromkeys(seen))
    indexes = [ladder.levels.index(_parse(text)) for text in visited]
    assert indexes == sorted(indexes), "always down, never back up while the link shrinks"
    assert visited[0] == "1280x720@30" and visited[-1] == "320x180@10"
    first_smaller = next(i for i, text in enumerate(visited) if not text.startswith("1280x720"))
    assert visited[first_smaller - 1] == "1280x720@10", "the size goes down only once the frame rate is at 10"
    assert all(text.endswith("@10") for text in visited[first_smaller:])
    # Each level is left only when the estimate no longer covers its need.
    for i, text in enumerate(seen[1:], start=1):
        if text != seen[i - 1]:
            level = _parse(seen[i - 1])
            assert estimates[i] < level.need_bps()


def test_a_sudden_drop_goes_straight_to_the_level_the_link_affords_but_one_late_report_does_not() -> None:
    ladder = VideoLadder.for_format(HD)
    policy = AdaptationPolicy(ladder)
    assert run(policy, [1_500_000, 200_000, 1_500_000, 1_500_000]) == ["1280x720@30"] * 4, "a blip is not a link"
    policy = AdaptationPolicy(ladder)
    seen = run(policy, [1_500_000, 250_000, 250_000, 250_000])
    # Two samples a second apart (DOWN_HOLD_S), then in one move to the best level 250 kbps pays for.
    assert DOWN_HOLD_S == 1.0
    assert seen == ["1280x720@30", "1280x720@30", "960x540@10", "960x540@10"]
    assert _parse(seen[-1]).need_bps() <= 250_000 < VideoLevel(1280, 720, 10).need_bps()


def test_the_video_climbs_back_one_level_at_a_time_after_a_steady_recovery() -> None:
    ladder = VideoLadder.for_format(HD)
    policy = AdaptationPolicy(ladder)
    run(policy, [1_500_000, 40_000, 40_000, 40_000])
    assert policy.level == ladder.floor
    times: list[float] = []
    previous = policy.index
    for i in range(60):
        now = 10.0 + i
        policy.observe(now, LinkSample(1_500_000, sent_bps=1_500_000))
        if policy.index != previous:
            assert policy.index == previous - 1, "one level at a time"
            times.append(now)
            previous = policy.index
    assert policy.level == ladder.top
    assert len(times) == len(ladder) - 1
    gaps = [b - a for a, b in itertools.pairwise([10.0, *times])]
    assert min(gaps) >= UP_HOLD_S, "each level is earned by UP_HOLD_S seconds of room"


def test_an_estimate_hovering_at_a_border_does_not_make_the_video_oscillate() -> None:
    policy = AdaptationPolicy(VideoLadder.for_format(VGA))
    need = policy.need_bps(0)
    # +-10 % around 640x480@30's need for two minutes, dipping two seconds in four: one step down, and no climb
    # back (that needs +30 %).
    seen = run(policy, [need * (1.1, 0.9, 0.9, 1.1)[i % 4] for i in range(120)])
    changes = sum(1 for a, b in itertools.pairwise(seen) if a != b)
    assert changes <= 1
    assert seen[-1] == "640x480@20"
    # Comfortably above (UP_MARGIN) for long enough: back to full.
    seen = run(policy, [need * UP_MARGIN * 1.01] * 6, start=200.0)
    assert seen[-1] == "640x480@30"


def test_a_quiet_encoder_is_not_taken_for_a_narrow_link() -> None:
    # A still scene: the encoder sends far less than its target, and the receiver's estimate follows what is sent.
    policy = AdaptationPolicy(VideoLadder.for_format(HD))
    for i, target in enumerate([400_000] + [250_000] * 10):
        policy.observe(float(i), LinkSample(target, sent_bps=60_000))
    assert policy.limited
    assert str(policy.level) == "1280x720@30"
    # The same target with the encoder using it: the picture is too coarse for the size, the ladder moves.
    for i in range(10, 13):
        policy.observe(float(i), LinkSample(250_000, sent_bps=240_000))
    assert str(policy.level) == "960x540@10"


def test_an_encoder_with_headroom_on_a_clean_link_tries_the_next_rung() -> None:
    # At the floor after a bad spell: the estimate (at most 1.5x what arrives) stays under the next rung's need, and
    # the small picture leaves the encoder well short of its target. Without a probe the video would stay small.
    ladder = VideoLadder.for_format(VGA)
    policy = AdaptationPolicy(ladder)
    drop = [ladder.top.need_bps()] + [ladder.floor.need_bps()] * 3
    run(policy, drop)
    assert policy.level == ladder.floor
    target = ladder.levels[-2].need_bps() * 1.1  # under UP_MARGIN x the next need
    seen = [
        str(policy.observe(10.0 + i, LinkSample(target, sent_bps=target * 0.4, loss=0.0)))
        for i in range(int(PROBE_HOLD_S) + 2)
    ]
    assert seen[0] == str(ladder.floor) and seen[-1] == str(ladder.levels[-2]), seen
    # On a lossy link it does not.
    lossy = AdaptationPolicy(ladder)
    run(lossy, drop)
    for i in range(int(PROBE_HOLD_S) * 2):
        lossy.observe(10.0 + i, LinkSample(target, sent_bps=target * 0.4, loss=0.03))
    assert lossy.level == ladder.floor


def test_an_estimate_still_climbing_from_its_start_is_not_a_narrow_link() -> None:
    ladder = VideoLadder.for_format(HD)
    policy = AdaptationPolicy(ladder)
    # Chromium's REMB to aiortc at the start of a call (measured here): ~230 kbps, then ~+8 % a second.
    ramp = [230_000 * 1.08**i for i in range(20)]
    assert set(run(policy, ramp)) == {"1280x720@30"}
    assert not policy.limited
    # The link pushes back (overuse: the estimate falls to 0.85x what arrives): now it is a limit.
    seen = run(policy, [ramp[-1] * 0.85] * 3, start=20.0)
    assert policy.limited
    assert seen[-1] == "1280x720@20"  # 844 kbps: 720p at 20 fps needs 737


def test_heavy_loss_counts_against_the_estimate_and_light_loss_does_not() -> None:
    ladder = VideoLadder.for_format(VGA)
    target = ladder.top.need_bps() * 1.1
    light = AdaptationPolicy(ladder)
    for i in range(5):
        light.observe(float(i), LinkSample(target, sent_bps=target, loss=0.05))
    assert light.level == ladder.top
    heavy = AdaptationPolicy(ladder)
    for i in range(5):
        heavy.observe(float(i), LinkSample(target, sent_bps=target, loss=0.30))  # usable: target * 0.85
    assert heavy.limited, "heavy loss is a limit even while the estimate has not fallen"
    assert heavy.level == VideoLevel(640, 480, 20)


def test_heavy_loss_caps_the_bitrate_and_the_cap_climbs_back_slowly_near_where_loss_began() -> None:
    ceiling = LossCeiling()
    # An estimate above what the link carries: 540 kbps sent, 40 % lost.
    assert ceiling.observe(0.0, 0.0, 540_000, 540_000) is None, "no loss, no cap"
    assert ceiling.observe(1.0, 0.40, 540_000, 540_000) == pytest.approx(540_000 * 0.8)
    assert ceiling.observe(1.5, 0.40, 430_000, 540_000) == pytest.approx(432_000), "one cut a second at most"
    assert ceiling.observe(2.0, 0.05, 430_000, 540_000) == pytest.approx(432_000), "moderate loss holds it"
    # 8 % a second while well under the rate that lost packets (540 kbps), then 1 % within 15 % of it.
    values = [ceiling.observe(3.0 + i, 0.0, 430_000, 540_000) for i in range(3)]
    assert values == pytest.approx([432_000 * 1.08, 432_000 * 1.08 * 1.01, 432_000 * 1.08 * 1.01**2])
    # Lifted once above the estimate.
    capped = values[-1]
    while capped is not None:
        capped = ceiling.observe(8.0, 0.0, 530_000, 540_000)
    assert ceiling.value is None


def test_the_voice_is_coded_at_32_kbps() -> None:
    assert opus_fec_encoder(10).codec.bit_rate == VOICE_BITRATE == 32_000


def test_the_level_stays_within_the_ladder() -> None:
    ladder = VideoLadder.for_format(VGA)
    policy = AdaptationPolicy(ladder, up_hold=0, down_hold=0)
    for i, bps in enumerate([1e6, 0.0, 0.0, 1e12, 1e12, 1e12, 1e12, 1e12, 1e12, 1e12, 0.0]):
        level = policy.observe(float(i), LinkSample(bps))
        assert level in ladder.levels
    assert policy.level == ladder.floor
    for i in range(20):
        policy.observe(100.0 + i, LinkSample(1e12))
    assert policy.level == ladder.top


def _parse(text: str) -> VideoLevel:
    size, fps = text.split("@")
    width, height = size.split("x")
    return VideoLevel(int(width), int(height), int(fps))


# ---------------------------------------------------------------- the track wrapper, over a real aiortc track


class CountingTrack(MediaStreamTrack):
    """aiortc's own VideoStreamTrack (640x480 at 30 fps, real time), counting what it hands out."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.inner = VideoStreamTrack()
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        frame = await self.inner.recv()
        self.frames += 1
        assert isinstance(frame, av.VideoFrame)
        return frame

    def stop(self) -> None:
        super().stop()
        self.inner.stop()


def pts_steps(frames: list[av.VideoFrame]) -> list[int]:
    return [int(b.pts or 0) - int(a.pts or 0) for a, b in itertools.pairwise(frames)]


async def take(track: MediaStreamTrack, count: int) -> list[av.VideoFrame]:
    frames = []
    for _ in range(count):
        frame = await asyncio.wait_for(track.recv(), timeout=5)
        assert isinstance(frame, av.VideoFrame)
        frames.append(frame)
    return frames


async def test_the_wrapper_hands_frames_through_untouched_at_the_full_level() -> None:
    source = CountingTrack()
    track = AdaptiveVideoTrack(source, VideoLadder.for_format(VGA))
    frames = await take(track, 10)
    assert source.frames == 10
    assert {(f.width, f.height) for f in frames} == {(640, 480)}
    assert [f.pts for f in frames] == [i * 3000 for i in range(10)]
    assert track.frames_dropped == track.frames_scaled == 0
    track.stop()


async def test_the_wrapper_drops_frames_to_the_chosen_rate_and_scales_to_the_chosen_size() -> None:
    source = CountingTrack()
    ladder = VideoLadder.for_format(VGA)
    track = AdaptiveVideoTrack(source, ladder)
    await take(track, 3)

    track.set_level(VideoLevel(640, 480, 15))
    before = source.frames
    frames = await take(track, 12)
    assert {(f.width, f.height) for f in frames} == {(640, 480)}
    # Every other frame of the 30 fps source: timestamps 2/30 s apart, monotonic, the source's own.
    steps = pts_steps(frames)
    assert steps == [6000] * 11
    assert 23 <= source.frames - before <= 25

    track.set_level(VideoLevel(320, 240, 10))
    frames = await take(track, 8)
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    assert {f.format.name for f in frames} == {"yuv420p"}
    steps = pts_steps(frames)
    assert steps == [9000] * 7
    assert all(f.time_base == fractions.Fraction(1, 90000) for f in frames)
    assert track.frames_scaled >= 8 and track.frames_dropped >= 14

    track.set_level(ladder.top)
    frames = await take(track, 3)
    assert [(f.width, f.height) for f in frames] == [(640, 480)] * 3
    assert pts_steps(frames) == [3000, 3000]

    with pytest.raises(AdaptationError, match="not on the ladder"):
        track.set_level(VideoLevel(800, 600, 30))
    track.stop()
    assert source.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await track.recv()


# ---------------------------------------------------------------- real calls on loopback


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    with host_addresses(LOOPBACK):
        yield


class ForcedEstimate:
    """Stands in for the professional's RemoteBitrateEstimator (aiortc/rate.py): aiortc's receiver keeps sending real
    REMB packets built from what `add` returns (rtcrtpreceiver.py:483-498), here the value the test chooses."""

    def __init__(self, bitrate: int) -> None:
        self.bitrate = bitrate
        self._last_ms: int | None = None

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        if self._last_ms is not None and arrival_time_ms - self._last_ms < 200:
            return None
        self._last_ms = arrival_time_ms
        return self.bitrate, [ssrc]


class Received:
    """The professional's side of the video: every decoded frame's size and timestamp."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, int]] = []

    async def consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                self.frames.append((frame.width, frame.height, frame.pts or 0))

    def settled_at(self, width: int, height: int, step: int, count: int = 6) -> bool:
        """The last `count` frames are `width`x`height`, `step` (90 kHz) apart.

        aiortc's VP8 encoder passes timestamps through av's microsecond time base and truncates them on the way back
        (codecs/vpx.py:235): a step of 3000 goes out as 2999 or 3001.
        """
        last = self.frames[-count:]
        return (
            len(last) == count
            and all((w, h) == (width, height) for w, h, _ in last)
            and all(abs(b[2] - a[2] - step) <= 2 for a, b in itertools.pairwise(last))
        )


@contextlib.asynccontextmanager
async def call(
    track: MediaStreamTrack, *, pro_estimate: ForcedEstimate | None = None, low_floor: bool = False
) -> AsyncIterator[tuple[RTCRtpSender, Received, RTCPeerConnection]]:
    cabin = RTCPeerConnection(rtc_configuration(()))
    pro = RTCPeerConnection(rtc_configuration(()))
    received = Received()
    tasks: list[asyncio.Task[None]] = []
    pro.on("track", lambda remote: tasks.append(asyncio.ensure_future(received.consume(remote))))
    transceiver = cabin.addTransceiver(track, direction="sendonly")
    await cabin.setLocalDescription(await cabin.createOffer())
    await pro.setRemoteDescription(cabin.localDescription)
    if pro_estimate is not None:
        # The test's one reach inside aiortc: the professional's estimator, so that its REMB says what we choose.
        receiver = pro.getTransceivers()[0].receiver
        receiver._RTCRtpReceiver__remote_bitrate_estimator = pro_estimate  # type: ignore[attr-defined]
    await pro.setLocalDescription(await pro.createAnswer())
    await cabin.setRemoteDescription(RTCSessionDescription(sdp=pro.localDescription.sdp, type="answer"))
    if low_floor:
        assert lower_bitrate_floor(transceiver)
    try:
        yield transceiver.sender, received, cabin
    finally:
        await cabin.close()
        await pro.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize(
    ("low_floor", "bits_per_pixel", "target_when_high", "low_estimate", "target_when_low", "level_when_low"),
    [
        # aiortc's own VP8 floor (250 kbps) with demanding thresholds, so that its range spans the 640x480 ladder.
        (False, 0.1, 1_500_000, 100_000, 250_000, VideoLevel(480, 360, 10)),
        # The floor lowered: the encoder follows the estimate itself, and the default thresholds apply.
        (True, BITS_PER_PIXEL, 1_500_000, 100_000, 100_000, VideoLevel(480, 360, 10)),
    ],
    ids=["aiortc-floor", "lowered-floor"],
)
async def test_a_call_sends_smaller_and_rarer_frames_when_the_estimate_falls_and_recovers_with_it(
    low_floor: bool,
    bits_per_pixel: float,
    target_when_high: int,
    low_estimate: int,
    target_when_low: int,
    level_when_low: VideoLevel,
) -> None:
    ladder = VideoLadder.for_format(VGA)
    track = AdaptiveVideoTrack(PatternVideoTrack(640, 480, 30), ladder)
    # Short holds: this test is about the mechanism, the default holds are tested above.
    policy = AdaptationPolicy(ladder, bits_per_pixel=bits_per_pixel, up_hold=1.0, down_hold=0.5)
    estimate = ForcedEstimate(1_500_000)
    async with (
        call(track, pro_estimate=estimate, low_floor=low_floor) as (sender, received, _),
        AdaptationController(sender, track, policy=policy, interval=0.25, label="test") as controller,
    ):
        await wait_until(
            lambda: encoder_target_bitrate(sender) == target_when_high, timeout=20, what="the REMB to arrive"
        )
        await wait_until(lambda: received.settled_at(640, 480, 3000), timeout=20, what="full-size frames")

        estimate.bitrate = low_estimate
        await wait_until(lambda: encoder_target_bitrate(sender) == target_when_low, timeout=20, what="a lower target")
        await wait_until(
            lambda: received.settled_at(level_when_low.width, level_when_low.height, 9000),
            timeout=30,
            what="smaller frames, a third as often",
        )
        assert track.level == level_when_low
        assert controller.last_sample is not None and controller.last_sample.target_bps == target_when_low

        estimate.bitrate = 1_500_000
        await wait_until(lambda: received.settled_at(640, 480, 3000), timeout=40, what="full frames again")
        assert track.level == ladder.top
        assert controller.changes >= 2
    widths = [w for w, _, _ in received.frames]
    assert min(widths) == level_when_low.width and widths[-1] == 640
    assert all(b[2] > a[2] for a, b in itertools.pairwise(received.frames)), "monotonic"


async def test_the_floor_is_lowered_only_for_a_video_codec_before_the_first_frame() -> None:
    cabin = RTCPeerConnection(rtc_configuration(()))
    pro = RTCPeerConnection(rtc_configuration(()))
    audio = cabin.addTransceiver(ToneAudioTrack(), direction="sendonly")
    video = cabin.addTransceiver(PatternVideoTrack(320, 240, 30), direction="sendonly")
    with pytest.raises(AdaptationError, match="positive"):
        lower_bitrate_floor(video, floor=0)
    assert not lower_bitrate_floor(video), "no codec negotiated yet"
    await cabin.setLocalDescription(await cabin.createOffer())
    await pro.setRemoteDescription(cabin.localDescription)
    await pro.setLocalDescription(await pro.createAnswer())
    await cabin.setRemoteDescription(RTCSessionDescription(sdp=pro.localDescription.sdp, type="answer"))
    try:
        assert not lower_bitrate_floor(audio)
        assert lower_bitrate_floor(video, floor=50_000)
        assert not lower_bitrate_floor(video), "the sender already has its encoder"
        await wait_until(lambda: encoder_target_bitrate(video.sender) is not None, timeout=20, what="encoding")
        assert encoder_target_bitrate(audio.sender) is None, "Opus has no target bitrate"
    finally:
        await cabin.close()
        await pro.close()


# ---------------------------------------------------------------- Opus in-band FEC


def voice(index: int) -> av.AudioFrame:
    """20 ms of a voice-like signal: a gliding pitch with harmonics, syllables at 3 Hz, a little noise."""
    t = (np.arange(960) + index * 960) / 48_000
    pitch = 140 + 30 * np.sin(2 * math.pi * 0.5 * t)
    harmonics = sum(np.sin(2 * math.pi * k * pitch * t) / k for k in range(1, 12))
    noise = np.random.default_rng(index).standard_normal(960)
    samples = 4000 * harmonics * (0.5 + 0.5 * np.sin(2 * math.pi * 3 * t)) + 300 * noise
    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 48_000
    frame.pts = index * 960
    frame.time_base = fractions.Fraction(1, 48_000)
    return frame


def lbrr_flags(encoder: OpusEncoder, frames: int = 100) -> list[bool | None]:
    flags = []
    for i in range(frames):
        payloads, _ = encoder.encode(voice(i))
        flags += [opus_lbrr(p) for p in payloads]
    return flags


def test_aiortc_opus_sends_no_fec_and_the_configured_encoder_does() -> None:
    plain = lbrr_flags(OpusEncoder())
    assert set(plain) == {None}, "aiortc's own encoder codes CELT only: no SILK layer, so no LBRR ever"
    with_fec = lbrr_flags(opus_fec_encoder(10))
    assert None not in with_fec, "with FEC and an expected loss, libopus codes speech with a SILK layer"
    assert sum(1 for flag in with_fec if flag) > len(with_fec) // 2


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (bytes([12 << 3, 0b0100_0000]), True),  # hybrid SWB 10 ms, mono: VAD 0, LBRR 1
        (bytes([13 << 3, 0b1000_0000]), False),  # hybrid SWB 20 ms, mono: VAD 1, LBRR 0
        (bytes([(13 << 3) | 0b100, 0b1001_0000]), True),  # stereo: mid VAD, side LBRR
        (bytes([(13 << 3) | 0b100, 0b1010_0000]), False),  # stereo: both VAD, no LBRR
        (bytes([1 << 3, 0b0100_0000]), True),  # SILK NB 20 ms
        (bytes([2 << 3, 0b0100_0000]), None),  # SILK NB 40 ms: two frames' flags, another layout
        (bytes([(13 << 3) | 1, 0xFF]), None),  # two frames in the packet
        (bytes([31 << 3, 0xFF]), None),  # CELT: never FEC
        (bytes([13 << 3]), None),  # no frame data (DTX)
        (b"", None),
    ],
)
def test_the_lbrr_flag_is_read_from_the_packet_as_rfc_6716_lays_it_out(payload: bytes, expected: bool | None) -> None:
    assert opus_lbrr(payload) is expected


def test_an_expected_loss_out_of_range_is_refused() -> None:
    for loss in (0, 101):
        with pytest.raises(AudioFecError, match=r"1\.\.100"):
            opus_fec_encoder(loss)


async def test_a_call_carries_opus_fec_once_enabled_and_it_cannot_be_enabled_late() -> None:
    cabin = RTCPeerConnection(rtc_configuration(()))
    pro = RTCPeerConnection(rtc_configuration(()))
    heard: list[int] = []

    async def listen(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                heard.append(1)

    tasks: list[asyncio.Task[None]] = []
    pro.on("track", lambda remote: tasks.append(asyncio.ensure_future(listen(remote))))
    transceiver = cabin.addTransceiver(ToneAudioTrack(), direction="sendonly")
    await cabin.setLocalDescription(await cabin.createOffer())
    await pro.setRemoteDescription(cabin.localDescription)
    await pro.setLocalDescription(await pro.createAnswer())
    await cabin.setRemoteDescription(RTCSessionDescription(sdp=pro.localDescription.sdp, type="answer"))
    try:
        assert enable_opus_fec(transceiver, expected_loss_percent=10)
        # What went on the wire: the sender's retransmission history holds the last packets as sent.
        history = transceiver.sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]

        def fec_on_the_wire() -> bool:
            return any(opus_lbrr(packet.payload) for packet in list(history.values()))

        await wait_until(fec_on_the_wire, timeout=20, what="an audio packet carrying LBRR")
        await wait_until(lambda: len(heard) > 25, timeout=10, what="the professional to decode the voice")
        assert not enable_opus_fec(transceiver), "the encoder is open: too late to change it"
    finally:
        await cabin.close()
        await pro.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_fec_is_not_forced_on_a_codec_without_it() -> None:
    cabin = RTCPeerConnection(rtc_configuration(()))
    pro = RTCPeerConnection(rtc_configuration(()))
    transceiver = cabin.addTransceiver(ToneAudioTrack(), direction="sendonly")
    g722 = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/G722"]
    transceiver.setCodecPreferences(g722)
    await cabin.setLocalDescription(await cabin.createOffer())
    await pro.setRemoteDescription(cabin.localDescription)
    await pro.setLocalDescription(await pro.createAnswer())
    await cabin.setRemoteDescription(RTCSessionDescription(sdp=pro.localDescription.sdp, type="answer"))
    try:
        assert not enable_opus_fec(transceiver)
    finally:
        await cabin.close()
        await pro.close()
