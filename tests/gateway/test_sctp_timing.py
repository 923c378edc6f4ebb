"""The vitals channel's retransmission timeout: WebRTC's bounds (220 ms minimum), not aiortc's 1 s, on a real pair."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from gateway.ice import host_addresses
from gateway.sctp_timing import RTO_INITIAL, RTO_MIN, quicker_retransmission
from gateway.session import rtc_configuration

pytestmark = pytest.mark.timeout(30)


async def test_a_lost_reading_is_resent_after_220_ms_not_a_second() -> None:
    with host_addresses(("127.0.0.1",)):
        cabin, page = RTCPeerConnection(rtc_configuration(())), RTCPeerConnection(rtc_configuration(()))
        try:
            channel = cabin.createDataChannel("vitals")
            await cabin.setLocalDescription(await cabin.createOffer())
            assert cabin.sctp is not None and quicker_retransmission(cabin.sctp)
            assert cabin.sctp._rto == RTO_INITIAL
            received: asyncio.Queue[str] = asyncio.Queue()
            page.on("datachannel", lambda ch: ch.on("message", received.put_nowait))
            await page.setRemoteDescription(RTCSessionDescription(cabin.localDescription.sdp, "offer"))
            await page.setLocalDescription(await page.createAnswer())
            await cabin.setRemoteDescription(RTCSessionDescription(page.localDescription.sdp, "answer"))
            opened = asyncio.Event()
            channel.on("open", opened.set)
            await asyncio.wait_for(opened.wait(), 10)
            for i in range(20):
                channel.send(f"reading {i}")
                assert await asyncio.wait_for(received.get(), 5) == f"reading {i}"
            # Loopback round trips of a millisecond: aiortc alone would sit at its 1 s floor.
            assert cabin.sctp._srtt is not None and cabin.sctp._srtt < RTO_MIN
            assert cabin.sctp._rto == RTO_MIN
        finally:
            await cabin.close()
            await page.close()


def test_an_aiortc_without_the_method_is_left_alone() -> None:
    assert quicker_retransmission(object()) is False
