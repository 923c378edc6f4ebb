"""A real aiortc peer plays the professional against the gateway's CallSession, over loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gateway.devices.readings import DeviceIdentity, Quantity, Reading, ReadingKind, TimeSource
from gateway.ice import LOOPBACK, host_addresses
from gateway.media.sources import MediaSources, SourceSpec
from gateway.session import CallSession, PrivacyError, rtc_configuration
from gateway.vitals import VitalsOutbox
from signaling.protocol import AppointmentKind
from tests.conftest import wait_until


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    with host_addresses(LOOPBACK):
        yield


def reading(value: float) -> Reading:
    return Reading(
        kind=ReadingKind.BODY_TEMPERATURE,
        quantities=(Quantity("value", value, "Cel"),),
        measured_at=datetime.now(UTC),
        time_source=TimeSource.RECEPTION,
        device=DeviceIdentity(address="emulated"),
    )


class Professional:
    """The doctor's side: answers, receives media, collects readings, acknowledges only when told to."""

    def __init__(self, *, ack: bool = True) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(()))
        self.ack = ack
        self.readings: list[dict[str, object]] = []
        self.heartbeats = 0
        self.channels: list[RTCDataChannel] = []
        self.tracks: list[str] = []
        self.pc.on("datachannel", self._on_channel)
        self.pc.on("track", lambda track: self.tracks.append(track.kind))

    def _on_channel(self, channel: RTCDataChannel) -> None:
        self.channels.append(channel)

        @channel.on("message")
        def on_message(text: str) -> None:
            message = json.loads(text)
            if message["type"] == "heartbeat":
                self.heartbeats += 1
                return
            self.readings.append(message)
            if self.ack:
                channel.send(json.dumps({"v": 1, "type": "ack", "seq": message["seq"]}))

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)


async def call(kind: AppointmentKind, outbox: VitalsOutbox | None, pro: Professional) -> CallSession:
    sources = MediaSources(SourceSpec("test"), SourceSpec("test"))
    await sources.__aenter__()
    session = CallSession("apt_test", kind, (), sources, outbox=outbox)
    offer = await session.create_offer()
    await session.accept_answer(await pro.answer(offer))
    await asyncio.wait_for(session.connected.wait(), timeout=10)
    return session


async def test_readings_are_acknowledged_and_replayed_after_a_reconnection() -> None:
    outbox = VitalsOutbox()
    first_pro = Professional(ack=True)
    session = await call(AppointmentKind.MEDICAL, outbox, first_pro)
    for i in range(3):
        session.push_reading(reading(36.0 + i / 10))
    await wait_until(lambda: session.stats.readings_acked == 3, timeout=10, what="three acks")
    assert [m["seq"] for m in first_pro.readings] == [1, 2, 3]
    assert outbox.pending == 0
    await wait_until(
        lambda: session.stats.video_frames_received > 0 or "video" in first_pro.tracks,
        timeout=10,
        what="tracks",
    )
    await session.close()
    await first_pro.pc.close()

    # A page that stops acknowledging (network cut): readings wait in the outbox...
    silent_pro = Professional(ack=False)
    session = await call(AppointmentKind.MEDICAL, outbox, silent_pro)
    session.push_reading(reading(37.0))
    session.push_reading(reading(37.1))
    await wait_until(lambda: len(silent_pro.readings) == 2, timeout=10, what="two readings")
    await session.close()
    await silent_pro.pc.close()
    assert outbox.pending == 2

    # ...and the next connection gets them again, with their numbers, nothing lost, nothing renumbered.
    back_pro = Professional(ack=True)
    session = await call(AppointmentKind.MEDICAL, outbox, back_pro)
    await wait_until(lambda: outbox.pending == 0, timeout=10, what="the replay to be acknowledged")
    assert [(m["seq"], m["reading"]["value"]) for m in back_pro.readings] == [(4, 37.0), (5, 37.1)]  # type: ignore[index]
    await session.close()
    await back_pro.pc.close()


async def test_a_non_medical_call_has_no_vitals_channel_at_any_layer() -> None:
    with pytest.raises(PrivacyError):
        CallSession(
            "apt_bank",
            AppointmentKind.BANK,
            (),
            MediaSources(SourceSpec("none"), SourceSpec("none")),
            outbox=VitalsOutbox(),
        )
    pro = Professional()
    sources = MediaSources(SourceSpec("test"), SourceSpec("test"))
    await sources.__aenter__()
    session = CallSession("apt_bank", AppointmentKind.BANK, (), sources)
    offer = await session.create_offer()
    assert "m=application" not in offer  # no SCTP association is even negotiated
    await session.accept_answer(await pro.answer(offer))
    await asyncio.wait_for(session.connected.wait(), timeout=10)
    with pytest.raises(PrivacyError):
        session.push_reading(reading(36.6))
    assert pro.channels == []
    await session.close()
    await session.close()  # safe twice
    await pro.pc.close()


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_the_offer_puts_the_chosen_codec_first_and_video_in_its_own_stream(codec: str) -> None:
    from gateway.media.codecs import VideoCodec

    sources = MediaSources(SourceSpec("test"), SourceSpec("test"))
    await sources.__aenter__()
    async with CallSession("apt_codec", AppointmentKind.BANK, (), sources, video_codec=VideoCodec(codec)) as session:
        offer = await session.create_offer()
    video = offer.split("m=video", 1)[1].split("m=", 1)[0]
    names = [line.split()[1].split("/")[0].lower() for line in video.splitlines() if line.startswith("a=rtpmap:")]
    assert names[0] == codec, names
    # The other codec stays in the offer: a browser without the preferred one falls back to it.
    assert {"vp8", "h264"} <= set(names), names
    # Audio and video in different streams: the doctor's browser does not hold video back for lip sync.
    streams = {line.split()[0] for line in offer.splitlines() if line.startswith("a=msid:")}
    assert len(streams) == 2, streams


async def test_a_professional_without_the_preferred_codec_gets_the_fallback() -> None:
    from aiortc import RTCRtpSender

    from gateway.media.codecs import VideoCodec

    pro = Professional()
    frames: list[object] = []
    drains: list[asyncio.Task[None]] = []

    @pro.pc.on("track")
    def on_track(track: object) -> None:
        async def drain() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frames.append(await track.recv())  # type: ignore[attr-defined]

        if getattr(track, "kind", "") == "video":
            drains.append(asyncio.ensure_future(drain()))

    sources = MediaSources(SourceSpec("test"), SourceSpec("test"))
    await sources.__aenter__()
    async with CallSession("apt_fallback", AppointmentKind.BANK, (), sources, video_codec=VideoCodec.H264) as session:
        offer = await session.create_offer()
        # This professional's browser decodes VP8 only.
        vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/vp8"]
        pro.pc.addTransceiver("audio", direction="recvonly")
        pro.pc.addTransceiver("video", direction="recvonly").setCodecPreferences(vp8)
        await pro.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pro.pc.setLocalDescription(await pro.pc.createAnswer())
        answer = str(pro.pc.localDescription.sdp)
        video = answer.split("m=video", 1)[1].split("m=", 1)[0]
        assert "VP8/90000" in video and "H264" not in video
        await session.accept_answer(answer)
        await asyncio.wait_for(session.connected.wait(), timeout=10)
        await wait_until(lambda: len(frames) >= 10, timeout=10, what="VP8 frames at the professional")
    await pro.pc.close()
    for task in drains:
        task.cancel()
    await asyncio.gather(*drains, return_exceptions=True)
