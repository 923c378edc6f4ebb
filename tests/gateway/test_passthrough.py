"""The professional's video forwarded to the cabin screen still encoded: real aiortc peers over loopback.

professional (aiortc, sends a pattern) -> cabin (tapped receiver: decodes nothing) -> loopback sender (packs the
encoded frames as they are) -> screen (aiortc, decodes). The screen decodes the professional's frames at their size,
from a keyframe the cabin asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import itertools
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from gateway.ice import host_addresses
from gateway.media.passthrough import (
    EncodedRelay,
    codec_preferences_for,
    is_keyframe,
    on_keyframe_request,
    request_keyframe,
    tap_receiver,
)
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack
from gateway.session import rtc_configuration

pytestmark = pytest.mark.timeout(60)

VP8_KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])  # P bit 0, then the start code 9d 01 2a
VP8_DELTA = bytes([0x31, 0x01, 0x00])


def test_keyframes_are_recognised_in_vp8_and_h264() -> None:
    assert is_keyframe("video/VP8", VP8_KEY)
    assert not is_keyframe("video/VP8", VP8_DELTA)
    idr = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88"
    non_idr = b"\x00\x00\x00\x01\x41\x9a"
    assert is_keyframe("video/H264", idr)
    assert not is_keyframe("video/H264", non_idr)
    assert not is_keyframe("video/VP8", b"")
    assert not is_keyframe("video/AV1", VP8_KEY)
    assert is_keyframe("audio/opus", b"\x78"), "every audio frame stands alone"


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(RTCSessionDescription(sdp=offerer.localDescription.sdp, type="offer"))
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(RTCSessionDescription(sdp=answerer.localDescription.sdp, type="answer"))


@contextlib.asynccontextmanager
async def peers(count: int) -> AsyncIterator[list[RTCPeerConnection]]:
    with host_addresses(("127.0.0.1",)):
        pcs = [RTCPeerConnection(rtc_configuration(())) for _ in range(count)]
        try:
            yield pcs
        finally:
            for pc in pcs:
                await pc.close()


async def frames_of(pc: RTCPeerConnection, count: int) -> list[VideoFrame]:
    track = await asyncio.wait_for(track_of(pc), 20)
    return [await asyncio.wait_for(track.recv(), 20) for _ in range(count)]  # type: ignore[misc]


async def track_of(pc: RTCPeerConnection) -> object:
    while True:
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not None and transceiver.kind == "video":
                return transceiver.receiver.track
        await asyncio.sleep(0.01)


async def test_the_screen_decodes_the_professionals_frames_that_the_cabin_never_decoded() -> None:
    async with peers(4) as (professional, cabin, loopback, screen):
        # As in a call: the cabin offers, with the tap in place before its receiver starts; the professional answers.
        incoming: RTCRtpTransceiver = cabin.addTransceiver("video", direction="recvonly")
        relay = EncodedRelay(keyframe_source=lambda: request_keyframe(incoming.receiver), label="test")
        assert tap_receiver(incoming.receiver, relay.feed)
        await cabin.setLocalDescription(await cabin.createOffer())
        await professional.setRemoteDescription(RTCSessionDescription(sdp=cabin.localDescription.sdp, type="offer"))
        professional.addTrack(PatternVideoTrack(320, 240, 30))
        await professional.setLocalDescription(await professional.createAnswer())
        await cabin.setRemoteDescription(RTCSessionDescription(sdp=professional.localDescription.sdp, type="answer"))
        deadline = asyncio.get_running_loop().time() + 20
        while relay.frames < 10:
            assert asyncio.get_running_loop().time() < deadline, "encoded frames from the professional"
            await asyncio.sleep(0.02)
        assert relay.mime_type == "video/VP8"
        assert not tap_receiver(incoming.receiver, relay.feed), "too late once the receiver runs"

        forwarded = relay.subscribe()
        transceiver = loopback.addTransceiver(forwarded, direction="sendonly")
        transceiver.setCodecPreferences(codec_preferences_for(relay.mime_type))
        asked: list[int] = []
        assert on_keyframe_request(transceiver.sender, lambda: asked.append(1) or relay.want_keyframe())
        screen.addTransceiver("video", direction="recvonly")
        await connect(loopback, screen)

        frames = await frames_of(screen, 15)
        assert {(f.width, f.height) for f in frames} == {(320, 240)}
        pts = [f.pts for f in frames]
        assert pts == sorted(pts)
        # The cabin's own copy of the track never got a decoded frame: its decoder thread stayed idle.
        assert incoming.receiver.track._queue.qsize() == 0  # type: ignore[union-attr]
        assert forwarded.skipped >= 0
        await relay.close()


async def test_a_subscriber_that_falls_behind_skips_to_the_next_keyframe() -> None:
    asked: list[bool] = []
    relay = EncodedRelay(keyframe_source=lambda: asked.append(True) or True)
    track = relay.subscribe()
    assert asked == [True], "a new subscriber asks for a keyframe"
    relay.feed("video/VP8", 90_000, VP8_DELTA, 0)
    assert track.skipped == 1, "nothing before the first keyframe"
    relay.feed("video/VP8", 90_000, VP8_KEY, 3000)
    for i in range(40):  # never read: it falls behind by more than a second's worth
        relay.feed("video/VP8", 90_000, VP8_DELTA, 6000 + i * 3000)
    assert len(asked) >= 2, "falling behind asks for a keyframe again"
    relay.feed("video/VP8", 90_000, VP8_KEY, 200_000)
    packet = await asyncio.wait_for(track.recv(), 1)
    assert packet.pts == 200_000 and bytes(packet) == VP8_KEY
    assert packet.time_base == fractions.Fraction(1, 90_000)
    await relay.close()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(track.recv(), 1)


async def test_the_voice_is_forwarded_encoded_and_still_decoded_for_the_cabin() -> None:
    async with peers(2) as (professional, cabin):
        incoming = cabin.addTransceiver("audio", direction="recvonly")
        voice = EncodedRelay(kind="audio", label="test voice")
        assert tap_receiver(incoming.receiver, voice.feed, keep_decoding=True)
        forwarded = voice.subscribe()
        assert forwarded.kind == "audio"
        await cabin.setLocalDescription(await cabin.createOffer())
        await professional.setRemoteDescription(RTCSessionDescription(sdp=cabin.localDescription.sdp, type="offer"))
        professional.addTrack(ToneAudioTrack())
        await professional.setLocalDescription(await professional.createAnswer())
        await cabin.setRemoteDescription(RTCSessionDescription(sdp=professional.localDescription.sdp, type="answer"))
        # The cabin still hears the professional (decoded frames on its own track)...
        decoded = [await asyncio.wait_for(incoming.receiver.track.recv(), 20) for _ in range(10)]
        assert all(frame.sample_rate == 48_000 for frame in decoded)
        # ...and the same frames, still in Opus, wait for the screen, on the Opus clock.
        packets = [await asyncio.wait_for(forwarded.recv(), 5) for _ in range(10)]
        assert voice.mime_type == "audio/opus"
        assert all(p.time_base == fractions.Fraction(1, 48_000) for p in packets)
        steps = {b.pts - a.pts for a, b in itertools.pairwise(packets)}
        assert steps == {960}, "one 20 ms Opus frame after another"
        await voice.close()
