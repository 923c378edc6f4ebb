"""The cabin's video follows the link: bitrate first, then frame rate, then resolution, and back up when it recovers.

Three parts, from pure to I/O:
- `VideoLadder` and `AdaptationPolicy`: which (width, height, fps) the camera's frames should have for the bitrate
  the receiver's estimate allows. Pure: no asyncio, no aiortc; the caller passes the time.
- `AdaptiveVideoTrack`: wraps the camera track, drops frames down to the chosen frame rate and scales frames down
  to the chosen size. At the full level it hands frames through untouched.
- `AdaptationController`: once a second, reads what aiortc's encoder was told by the receiver's estimate (REMB),
  with the sender's own statistics, and sets the track's level.

aiortc already does the first step on its own: a REMB packet sets the encoder's `target_bitrate`
(aiortc/rtcrtpsender.py:282-290), and its VP8 and H264 encoders follow it within their bounds (VP8 250 kbps-1.5 Mbps,
aiortc/codecs/vpx.py:16-18; H264 500 kbps-3 Mbps, codecs/h264.py:17-19) by rebuilding the codec when the target
moves by more than 10 % (vpx.py:187-194, h264.py:242-251). A size change rebuilds the codec the same way, and the
new codec starts with a keyframe, which browsers decode at the new size. Below those floors aiortc's encoders do not
follow; `lower_bitrate_floor` gives the sender aiortc's own encoder with a lower floor.

What fewer frames buy depends on the codec: aiortc's VP8 budgets per second from the frames' timestamps, so at
15 fps each frame gets twice the bits (the same bitrate, a finer picture); aiortc's H264 assumes 30 fps
(h264.py:266-267), so fewer frames send proportionally fewer bits. Smaller frames at the lowest levels use less
than the target either way (the encoder reaches its best quantiser).
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiortc import MediaStreamTrack, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import h264, vpx
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from av.frame import Frame
from av.packet import Packet
from av.video.reformatter import VideoReformatter

from gateway.errors import GatewayError
from gateway.lifecycle import AsyncResource, cancel_and_wait
from gateway.media.encoders import current_encoder, seed_encoder
from gateway.media.spec import VideoFormat

log = logging.getLogger("cabine.gateway.media")

# Where the thresholds come from. WebRTC's table of bitrates per resolution (video/config/simulcast.cc,
# kSimulcastFormats, at 30 fps) gives a minimum of about 0.022 bits per pixel per frame (720p 600 kbps, 540p 350,
# 360p 150) and a target of about 0.075 (720p 2500 kbps, 540p 1200, 360p 500). Below the target the picture gets
# soft; near the minimum it is blocks. The ladder steps down when the estimate gives less than 0.04, about the
# geometric middle: 640x480@30 then needs 369 kbps (aiortc's VP8 starts at 500) and 1280x720@30 needs 1.1 Mbps
# (aiortc's VP8 ceiling is 1.5).
BITS_PER_PIXEL: Final = 0.04
# Frame rate goes first (a consultation needs detail more than motion: WebRTC's "maintain-resolution"), then size.
FPS_STEPS: Final = (30, 20, 15, 10)
# Sizes as fractions of the configured one, aspect ratio kept: 1280x720 -> 960x540 -> 640x360 -> 480x270 -> 320x180.
RESOLUTION_SCALES: Final = (
    fractions.Fraction(1),
    fractions.Fraction(3, 4),
    fractions.Fraction(1, 2),
    fractions.Fraction(3, 8),
    fractions.Fraction(1, 4),
)
# WebRTC's encoders do not scale below this (api/video_codecs/video_encoder.h, kDefaultMinPixelsPerFrame).
MIN_PIXELS: Final = 320 * 180
# Climbing back needs the estimate this far above the next level's need (hysteresis: no oscillation at a border)...
UP_MARGIN: Final = 1.3
# ...for this long, one step at a time (REMB moves up by ~8 %/s: a few samples show it is not a blip).
UP_HOLD_S: Final = 4.0
# An encoder sending well under its target on a clean link tries the next rung after this long (see observe).
PROBE_HOLD_S: Final = 8.0
# Going down waits for two samples a second apart: one late REMB is not a narrower link.
DOWN_HOLD_S: Final = 1.0
# The encoder is held back by its target when it sends at least this share of it. A still scene sends far less than
# its target (VP8 undershoots), and the receiver's estimate then only follows what is sent (at most 1.5x, as in
# WebRTC's AIMD): that low estimate says nothing about the link, so the picture keeps its size.
RATE_BOUND_SHARE: Final = 0.6
# A receiver's estimate starts low and climbs (Chromium's first REMB to aiortc here: ~230 kbps, then ~+8 %/s), and it
# falls only when the link pushes back (overuse: 0.85x what arrives). Until it has fallen once by more than this
# share between two samples (or loss is heavy), a low estimate is a start, not a narrow link: the ladder waits.
FALL_SHARE: Final = 0.05
# WebRTC's loss-based rule (goog_cc/send_side_bandwidth_estimation.cc: kDefaultHighLossThreshold 0.1): above 10 %
# loss the usable rate is taken as rate * (1 - loss / 2).
HIGH_LOSS: Final = 0.10
CONTROL_INTERVAL_S: Final = 1.0
# aiortc's encoders never go below 250 kbps (VP8) or 500 kbps (H264) whatever the receiver says; WebRTC's own floor
# is 30 kbps (rtc_base/experiments/min_video_bitrate_experiment.cc, kDefaultMinVideoBitrateBps).
MIN_VIDEO_BITRATE: Final = 30_000
# Loss-based ceiling (LossCeiling): goog_cc's thresholds (send_side_bandwidth_estimation.cc: 2 % and 10 %), its 8 %
# growth a second, slower (1 %) within 15 % of the rate that last caused loss, and at most one cut a second.
LOW_LOSS: Final = 0.02
GROWTH: Final = 1.08
SLOW_GROWTH: Final = 1.01
NEAR_LOSS_SHARE: Final = 0.85
CUT_INTERVAL_S: Final = 1.0


class AdaptationError(GatewayError, ValueError):
    """A ladder or a policy was given impossible values."""


def _even(value: fractions.Fraction | int) -> int:
    return max(2, 2 * round(fractions.Fraction(value) / 2))


@dataclass(frozen=True, slots=True)
class VideoLevel:
    """One rung: the size and frame rate the camera's frames are sent at."""

    width: int
    height: int
    fps: int

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2:
            raise AdaptationError(f"a level needs even sizes of at least 2, got {self.width}x{self.height}")
        if not 1 <= self.fps <= 120:
            raise AdaptationError(f"a level's frame rate must be 1..120, got {self.fps}")

    @property
    def pixel_rate(self) -> int:
        return self.width * self.height * self.fps

    def need_bps(self, bits_per_pixel: float = BITS_PER_PIXEL) -> float:
        """The bitrate below which this level's picture is too coarse."""
        return self.pixel_rate * bits_per_pixel

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps}"


@dataclass(frozen=True, slots=True)
class VideoLadder:
    """The levels from the configured format (first) down to the floor (last), each needing less than the one before."""

    levels: tuple[VideoLevel, ...]

    def __post_init__(self) -> None:
        if not self.levels:
            raise AdaptationError("a ladder needs at least one level")
        for upper, lower in itertools.pairwise(self.levels):
            if lower.pixel_rate >= upper.pixel_rate:
                raise AdaptationError(f"each level must need less than the one above: {lower} after {upper}")
            if lower.width > upper.width or lower.height > upper.height or lower.fps > upper.fps:
                raise AdaptationError(f"a level must not be larger or faster than the one above: {lower} after {upper}")

    @classmethod
    def for_format(
        cls,
        fmt: VideoFormat,
        *,
        fps_steps: Sequence[int] = FPS_STEPS,
        scales: Sequence[fractions.Fraction] = RESOLUTION_SCALES,
        min_pixels: int = MIN_PIXELS,
    ) -> VideoLadder:
        """The configured format, its frame rate stepped down, then its size stepped down at the lowest frame rate.

        Raises:
            AdaptationError: the format has odd or impossible sizes.
        """
        rates = [fmt.fps, *sorted((f for f in set(fps_steps) if f < fmt.fps), reverse=True)]
        levels = [VideoLevel(fmt.width, fmt.height, fps) for fps in rates]
        floor_fps = rates[-1]
        for scale in sorted({s for s in scales if 0 < s < 1}, reverse=True):
            width, height = _even(fmt.width * scale), _even(fmt.height * scale)
            if width * height < min_pixels:
                break
            level = VideoLevel(width, height, floor_fps)
            if level.pixel_rate < levels[-1].pixel_rate:
                levels.append(level)
        return cls(tuple(levels))

    @property
    def top(self) -> VideoLevel:
        return self.levels[0]

    @property
    def floor(self) -> VideoLevel:
        return self.levels[-1]

    def __len__(self) -> int:
        return len(self.levels)


@dataclass(frozen=True, slots=True)
class LinkSample:
    """What the sender knows about the link at one moment.

    `target_bps`: what the encoder is told to spend (the receiver's estimate, within the encoder's bounds);
    `sent_bps`: what the video actually sent over the last interval (None: unknown);
    `loss`: the share of packets the receiver reports lost, 0..1 (None: unknown).
    """

    target_bps: float
    sent_bps: float | None = None
    loss: float | None = None

    def __post_init__(self) -> None:
        if self.target_bps < 0 or (self.sent_bps is not None and self.sent_bps < 0):
            raise AdaptationError(f"bitrates cannot be negative: {self.target_bps}, {self.sent_bps}")
        if self.loss is not None and not 0 <= self.loss <= 1:
            raise AdaptationError(f"loss is a share 0..1, got {self.loss}")

    @property
    def usable_bps(self) -> float:
        """The target, lowered when the receiver reports heavy loss (which a delay-based estimate does not see)."""
        if self.loss is not None and self.loss > HIGH_LOSS:
            return self.target_bps * (1 - self.loss / 2)
        return self.target_bps

    @property
    def rate_bound(self) -> bool:
        """Whether the encoder is held back by its target (unknown counts as held back)."""
        return self.sent_bps is None or self.sent_bps >= RATE_BOUND_SHARE * self.target_bps


class AdaptationPolicy:
    """Chooses the level for each sample: down at once to the level the link affords, up one level at a time.

    It steps down only once the link has shown a limit (the estimate fell, or loss is heavy: see FALL_SHARE), only
    while the encoder is held back by its target (see RATE_BOUND_SHARE), and only after DOWN_HOLD_S. Pure and
    deterministic: the caller gives the time (seconds, monotonic) with each sample.
    """

    def __init__(
        self,
        ladder: VideoLadder,
        *,
        bits_per_pixel: float = BITS_PER_PIXEL,
        up_margin: float = UP_MARGIN,
        up_hold: float = UP_HOLD_S,
        down_hold: float = DOWN_HOLD_S,
        probe_hold: float = PROBE_HOLD_S,
    ) -> None:
        """Raises: AdaptationError: a threshold out of range."""
        if bits_per_pixel <= 0:
            raise AdaptationError(f"bits_per_pixel must be positive, got {bits_per_pixel}")
        if up_margin < 1:
            raise AdaptationError(f"up_margin must be at least 1 (else levels would oscillate), got {up_margin}")
        if up_hold < 0 or down_hold < 0 or probe_hold < 0:
            raise AdaptationError(f"holds cannot be negative: up {up_hold}, down {down_hold}, probe {probe_hold}")
        self.ladder = ladder
        self._needs = [level.need_bps(bits_per_pixel) for level in ladder.levels]
        self._up_margin = up_margin
        self._up_hold = up_hold
        self._down_hold = down_hold
        self._index = 0
        self._idle_since: float | None = None
        self._probe_hold = probe_hold
        self._below_since: float | None = None
        self._above_since: float | None = None
        self._previous_target: float | None = None
        self.limited = False  # the link has shown a limit: below-need estimates now count

    @property
    def level(self) -> VideoLevel:
        return self.ladder.levels[self._index]

    @property
    def index(self) -> int:
        """0 at the configured format, len(ladder) - 1 at the floor."""
        return self._index

    def need_bps(self, index: int) -> float:
        return self._needs[index]

    def observe(self, now: float, sample: LinkSample) -> VideoLevel:
        """Take one sample; return the level to send at from now on."""
        usable = sample.usable_bps
        previous, self._previous_target = self._previous_target, sample.target_bps
        if usable < sample.target_bps or (previous is not None and sample.target_bps < previous * (1 - FALL_SHARE)):
            self.limited = True
        if (
            self.limited
            and usable < self._needs[self._index]
            and sample.rate_bound
            and self._index < len(self._needs) - 1
        ):
            self._above_since = None
            if self._below_since is None:
                self._below_since = now
            if now - self._below_since >= self._down_hold:
                # Straight to the best level the link affords (or the floor): a link that halved is not explored
                # one second per rung.
                self._index = next(
                    (i for i in range(self._index + 1, len(self._needs)) if self._needs[i] <= usable),
                    len(self._needs) - 1,
                )
                self._below_since = None
            return self.level
        self._below_since = None
        if self._index > 0 and usable >= self._up_margin * self._needs[self._index - 1]:
            if self._above_since is None:
                self._above_since = now
            if now - self._above_since >= self._up_hold:
                self._climb()
        else:
            self._above_since = None
        # The receiver's estimate grows only with what it receives (at most 1.5 times), and a small picture leaves
        # the encoder short of its target: without probing (aiortc sends no padding) the estimate would never show
        # room for the next rung. An encoder with headroom on a clean link tries it; the encoder still spends no
        # more than the target, and a link that cannot take it shows it (loss, a falling estimate).
        clean = sample.loss is not None and sample.loss < LOW_LOSS
        if self._index > 0 and sample.sent_bps is not None and not sample.rate_bound and clean:
            if self._idle_since is None:
                self._idle_since = now
            if now - self._idle_since >= self._probe_hold:
                self._climb()
        else:
            self._idle_since = None
        return self.level

    def _climb(self) -> None:
        self._index -= 1
        self._above_since = None  # the next rung is earned afresh
        self._idle_since = None


class AdaptiveVideoTrack(MediaStreamTrack):
    """The camera as the call sends it: every frame at the full level, fewer and smaller frames below it.

    Frames keep the source's timestamps (pts and time_base), so they stay monotonic whatever is dropped. The
    track owns its source: stopping it stops the source, as aiortc would have stopped the source itself.
    """

    kind = "video"

    def __init__(self, source: MediaStreamTrack, ladder: VideoLadder) -> None:
        super().__init__()
        self._source = source
        self.ladder = ladder
        self._level = ladder.top
        self._full = True
        self._interval = 0.0
        self._next_due: float | None = None
        self._last_at: float | None = None
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}
        # One scaler for the track's life: `frame.reformat` makes a new one (an SwsContext) for every frame, 4.6 ms a
        # 640x480 frame here against 0.8 ms when it is kept.
        self._reformatter = VideoReformatter()
        # Counters for logs and statistics.
        self.frames_dropped = 0
        self.frames_scaled = 0

    @property
    def level(self) -> VideoLevel:
        return self._level

    def set_level(self, level: VideoLevel) -> None:
        """Send at `level` from the next frame on.

        Raises:
            AdaptationError: the level is not on this track's ladder.
        """
        if level not in self.ladder.levels:
            raise AdaptationError(f"{level} is not on the ladder from {self.ladder.top}")
        if level == self._level:
            return
        self._level = level
        self._full = level == self.ladder.top
        self._interval = 1 / level.fps
        self._next_due = self._last_at = None
        self._sizes.clear()

    async def recv(self) -> Frame | Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            frame = await self._source.recv()
            if self._full or not isinstance(frame, VideoFrame):
                return frame  # the full level costs nothing (and encoded packets are not touched)
            level = self._level
            if level.fps < self.ladder.top.fps and not self._due(frame):
                self.frames_dropped += 1
                continue
            return self._scaled(frame, level)

    def _due(self, frame: VideoFrame) -> bool:
        """Whether this frame keeps the chosen rate; its own timestamp decides, not when it arrived."""
        if frame.pts is not None and frame.time_base is not None:
            at = float(frame.pts * frame.time_base)
        else:
            at = time.monotonic()
        if self._last_at is not None and at < self._last_at:
            self._next_due = None  # the source's clock went back (a restarted device): start afresh
        self._last_at = at
        due = self._next_due
        # A quarter of an interval of slack: a camera's timestamps jitter, and a frame a hair early still counts.
        if due is not None and at < due - self._interval / 4:
            return False
        self._next_due = at + self._interval if due is None or at - due > self._interval else due + self._interval
        return True

    def _scaled(self, frame: VideoFrame, level: VideoLevel) -> VideoFrame:
        source_size = (frame.width, frame.height)
        size = self._sizes.get(source_size)
        if size is None:
            top = self.ladder.top
            # The level's share of the configured size, applied to what the source really delivers.
            width = _even(fractions.Fraction(frame.width * level.width, top.width))
            height = _even(fractions.Fraction(frame.height * level.height, top.height))
            size = (min(width, frame.width), min(height, frame.height))
            self._sizes[source_size] = size
        if size == source_size:
            return frame
        self.frames_scaled += 1
        # reformat keeps pts and time_base; yuv420p is what the encoders want, converted in the same pass.
        scaled: VideoFrame = self._reformatter.reformat(frame, width=size[0], height=size[1], format="yuv420p")
        return scaled

    def stop(self) -> None:
        super().stop()
        self._source.stop()


def encoder_target_bitrate(sender: RTCRtpSender) -> int | None:
    """What aiortc's encoder for this sender is told to spend (bps): the receiver's REMB within the encoder's bounds.

    None before the first frame is encoded, after the sender stopped, or for an encoder without a target (audio).
    aiortc keeps no copy of the REMB value itself: what is readable is already clamped to the encoder's bounds
    (aiortc's own floor, or MIN_VIDEO_BITRATE after lower_bitrate_floor).
    """
    bitrate = getattr(current_encoder(sender), "target_bitrate", None)
    return bitrate if isinstance(bitrate, int) else None


class LossCeiling:
    """A cap on the video's bitrate from the loss the receiver reports (WebRTC's loss-based estimate, simplified).

    aiortc follows only the receiver's delay-based estimate (REMB), which on a link with a shallow buffer can stay
    above what gets through while packets are dropped. Above HIGH_LOSS the cap becomes what was sent times
    (1 - loss / 2) (goog_cc's rule), at most once per CUT_INTERVAL_S; under LOW_LOSS it grows by GROWTH per sample,
    more slowly (SLOW_GROWTH) near the rate that last caused loss; it is lifted once above the estimate. Pure.
    """

    def __init__(self, *, floor: float = MIN_VIDEO_BITRATE) -> None:
        self.value: float | None = None
        self._floor = floor
        self._lossy_at: float | None = None
        self._last_cut: float | None = None

    def observe(self, now: float, loss: float | None, sent_bps: float | None, estimate_bps: float) -> float | None:
        """The cap (bps) after this sample, or None when the loss sets no limit."""
        if loss is None or sent_bps is None:
            return self.value
        if loss > HIGH_LOSS:
            if self._last_cut is None or now - self._last_cut >= CUT_INTERVAL_S:
                cut = max(self._floor, sent_bps * (1 - loss / 2))
                self.value = cut if self.value is None else min(self.value, cut)
                self._lossy_at = sent_bps
                self._last_cut = now
        elif loss < LOW_LOSS and self.value is not None:
            near = self._lossy_at is not None and self.value >= NEAR_LOSS_SHARE * self._lossy_at
            self.value *= SLOW_GROWTH if near else GROWTH
            if self._lossy_at is not None and self.value > self._lossy_at:
                self._lossy_at = None  # the link carries more than when it last dropped packets
            if self.value >= estimate_bps:
                self.value = None
        return self.value


class _SteeredTarget:
    """The target rule shared by the two encoders below: the receiver's estimate within the loss ceiling, from
    `floor` (instead of aiortc's 250 or 500 kbps) up to the codec's maximum.

    The estimate is the video's alone: Chromium's REMB covers the packets that carry abs-send-time, and aiortc puts
    it on video only (measured here: the REMB stays near 1.2 to 1.5 times the video's rate, audio aside).
    """

    _STORAGE: str
    _MAXIMUM: int

    def __init__(self, floor: int) -> None:
        super().__init__()  # aiortc's encoder, next in the MRO
        self._floor = floor
        self.estimate_bps: int | None = None
        self.ceiling_bps: float | None = None

    @property
    def target_bitrate(self) -> int:
        return int(getattr(self, self._STORAGE))

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self.estimate_bps = bitrate  # aiortc sets the receiver's REMB here (rtcrtpsender.py:282-290)
        self._steer()

    def _steer(self) -> None:
        if self.estimate_bps is None:
            return  # aiortc's starting value stays until the receiver's first estimate
        bitrate = self.estimate_bps
        if self.ceiling_bps is not None:
            bitrate = min(bitrate, int(self.ceiling_bps))
        setattr(self, self._STORAGE, max(self._floor, min(bitrate, self._MAXIMUM)))

    def set_ceiling(self, ceiling_bps: float | None) -> None:
        self.ceiling_bps = ceiling_bps
        self._steer()


class _FlooredVp8Encoder(_SteeredTarget, vpx.Vp8Encoder):
    """aiortc's VP8 encoder with the target rule of `_SteeredTarget`."""

    _STORAGE = "_Vp8Encoder__target_bitrate"  # aiortc's own storage (vpx.py:178)
    _MAXIMUM = vpx.MAX_BITRATE


class _FlooredH264Encoder(_SteeredTarget, h264.H264Encoder):
    """aiortc's H264 encoder with the target rule of `_SteeredTarget`."""

    _STORAGE = "_H264Encoder__target_bitrate"  # aiortc's own storage (h264.py:120)
    _MAXIMUM = h264.MAX_BITRATE


def lower_bitrate_floor(transceiver: RTCRtpTransceiver, *, floor: int = MIN_VIDEO_BITRATE) -> bool:
    """Let the video follow the receiver's estimate below aiortc's floor; True if done, False if it cannot be.

    aiortc's encoders clamp the estimate to 250 kbps (VP8) or 500 kbps (H264): on a narrower link they keep sending
    that much and crowd out the voice. The sender is given aiortc's own encoder with only that clamp lowered
    (the same codec settings, the same rebuild on a 10 % change). Call it after the answer is applied and before
    the first frame; False for another codec, when the sender already encodes, or with an aiortc whose encoders
    keep their target elsewhere.

    Raises:
        AdaptationError: a floor that is not positive.
    """
    if floor <= 0:
        raise AdaptationError(f"the floor must be positive, got {floor}")
    candidates: tuple[tuple[str, vpx.Vp8Encoder | h264.H264Encoder, str], ...] = (
        ("video/VP8", _FlooredVp8Encoder(floor), "_Vp8Encoder__target_bitrate"),
        ("video/H264", _FlooredH264Encoder(floor), "_H264Encoder__target_bitrate"),
    )
    return any(
        hasattr(encoder, storage) and seed_encoder(transceiver, mime_type, encoder)
        for mime_type, encoder, storage in candidates
    )


@dataclass(frozen=True, slots=True)
class SenderCounters:
    """The sender's own statistics at one moment (public getStats)."""

    at: float
    bytes_sent: int | None
    loss: float | None


async def sender_counters(sender: RTCRtpSender, now: float) -> SenderCounters:
    """Bytes sent and the loss the receiver reports, from aiortc's public getStats."""
    bytes_sent: int | None = None
    loss: float | None = None
    report = await sender.getStats()
    for stats in report.values():
        if stats.type == "outbound-rtp":
            bytes_sent = int(stats.bytesSent)
        elif stats.type == "remote-inbound-rtp" and stats.fractionLost is not None:
            # aiortc passes RTCP's 8-bit fixed-point value through (rtcrtpsender.py:271): 256 is all lost.
            loss = min(1.0, float(stats.fractionLost) / 256)
    return SenderCounters(now, bytes_sent, loss)


# What aiortc's encoders target before the first REMB (vpx.py:178, h264.py:120): a default, not an estimate.
_ENCODER_DEFAULTS: Final = frozenset({vpx.DEFAULT_BITRATE, h264.DEFAULT_BITRATE})


class AdaptationController(AsyncResource):
    """Keeps an AdaptiveVideoTrack at the level the link affords, reading the sender once per interval.

    An async context manager: the reading task starts on enter and is cancelled and awaited on close (idempotent).
    """

    def __init__(
        self,
        sender: RTCRtpSender,
        track: AdaptiveVideoTrack,
        *,
        policy: AdaptationPolicy | None = None,
        interval: float = CONTROL_INTERVAL_S,
        label: str = "camera",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise AdaptationError(f"the interval must be positive, got {interval}")
        if policy is not None and policy.ladder != track.ladder:
            raise AdaptationError("the policy and the track must share one ladder")
        self.sender = sender
        self.track = track
        self.policy = policy if policy is not None else AdaptationPolicy(track.ladder)
        self.interval = interval
        self.label = label
        self._clock = clock
        self.last_sample: LinkSample | None = None
        self.changes = 0
        self._estimated = False
        self.ceiling = LossCeiling()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> AdaptationController:
        if self._task is None and not self._closed:
            self._task = asyncio.ensure_future(self._run())
        return self

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    async def _run(self) -> None:
        previous: SenderCounters | None = None
        while True:
            await asyncio.sleep(self.interval)
            try:
                previous = await self._sample(previous)
            except Exception:  # one unreadable sample must not end the adaptation: the call goes on at its level
                log.exception("%s: video adaptation skipped a sample", self.label)

    async def _sample(self, previous: SenderCounters | None) -> SenderCounters:
        counters = await sender_counters(self.sender, self._clock())
        sent_bps: float | None = None
        if (
            previous is not None
            and previous.bytes_sent is not None
            and counters.bytes_sent is not None
            and counters.at > previous.at
            and counters.bytes_sent >= previous.bytes_sent
        ):
            sent_bps = (counters.bytes_sent - previous.bytes_sent) * 8 / (counters.at - previous.at)
        encoder = current_encoder(self.sender)
        if isinstance(encoder, _SteeredTarget) and encoder.estimate_bps is not None:
            before = encoder.ceiling_bps
            ceiling = self.ceiling.observe(counters.at, counters.loss, sent_bps, encoder.estimate_bps)
            encoder.set_ceiling(ceiling)
            lowered = ceiling is not None and (before is None or ceiling < before)
            if lowered or (before is not None and ceiling is None):
                log.info(
                    "%s: video bitrate %s (loss %s)",
                    self.label,
                    "no longer capped by loss" if ceiling is None else f"capped at {int(ceiling) // 1000} kbps",
                    "?" if counters.loss is None else f"{counters.loss:.0%}",
                )
        target = encoder_target_bitrate(self.sender)
        if target is None:
            return counters  # nothing encoded yet, or the call is over: nothing to decide
        if not self._estimated:
            if target in _ENCODER_DEFAULTS:
                return counters  # aiortc's starting value, not an estimate: no REMB has arrived yet
            self._estimated = True
        self.last_sample = LinkSample(target, sent_bps, counters.loss)
        level = self.policy.observe(counters.at, self.last_sample)
        if level != self.track.level:
            log.info(
                "%s: video %s -> %s (target %d kbps, sent %s kbps, loss %s)",
                self.label,
                self.track.level,
                level,
                target // 1000,
                "?" if sent_bps is None else int(sent_bps // 1000),
                "?" if counters.loss is None else f"{counters.loss:.0%}",
            )
            self.track.set_level(level)
            self.changes += 1
        return counters
