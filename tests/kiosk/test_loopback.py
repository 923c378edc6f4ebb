"""The cabin screen's media connection, against a real aiortc peer: loopback candidates only, three tracks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from gateway.ice import host_addresses
from gateway.kiosk.loopback import LoopbackError, LoopbackMedia, loopback_only
from gateway.media.synthetic import PatternVideoTrack, ToneAudioTrack

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def machine_addresses() -> Iterator[None]:
    # As on a cabin PC: every address of the machine plus loopback. Only loopback may be used by the screen.
    with host_addresses(None, add_loopback=True):
        yield


async def answer(offer: str) -> tuple[RTCPeerConnection, str]:
    page = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    await page.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await page.setLocalDescription(await page.createAnswer())
    return page, str(page.localDescription.sdp)


async def test_the_screen_gets_three_tracks_over_loopback_only() -> None:
    tracks = {
        "professional_audio": ToneAudioTrack(),
        "professional_video": PatternVideoTrack(),
        "self_video": PatternVideoTrack(320, 240),
    }
    async with LoopbackMedia(tracks) as media:
        offer = await media.create_offer()
        candidates = [line for line in offer.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(line.split()[4] in ("127.0.0.1", "::1") for line in candidates)
        assert set(media.mids) == set(tracks)
        page, sdp = await answer(offer)
        try:
            await media.accept_answer(sdp)
            # The sending side, per track (aiortc as a receiver cannot tell two bundled video streams apart by
            # their MID; Chromium can: the browser test checks what the page decodes).
            senders = {t.mid: t.sender for t in media._pc.getTransceivers()}
            assert set(senders) == set(media.mids.values())
            sent: dict[str, int] = {}

            async def count() -> bool:
                for mid, sender in senders.items():
                    stats = await sender.getStats()
                    sent[mid] = sum(getattr(s, "packetsSent", 0) for s in stats.values() if s.type == "outbound-rtp")
                return min(sent.values()) > 10

            for _ in range(300):
                if await count():
                    break
                await asyncio.sleep(0.05)
            assert min(sent.values()) > 10, f"packets sent per track: {sent}"
            assert media.connection_state == "connected"
        finally:
            await page.close()
    await media.close()  # twice is fine
    assert all(track.readyState == "ended" for track in tracks.values())


async def test_an_answer_without_a_loopback_candidate_is_refused() -> None:
    async with LoopbackMedia({"self_video": PatternVideoTrack()}) as media:
        page, sdp = await answer(await media.create_offer())
        try:
            loopback = (" 127.0.0.1 ", " ::1 ")
            without = "".join(
                line + "\r\n"
                for line in sdp.splitlines()
                if not (line.startswith("a=candidate:") and any(a in line for a in loopback))
            )
            assert loopback_only(without)[1] == 0
            with pytest.raises(LoopbackError, match="--allow-loopback-in-peer-connection"):
                await media.accept_answer(without)
        finally:
            await page.close()
