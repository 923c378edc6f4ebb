"""The second peer connection: from the gateway to the cabin screen's page on the same PC, over loopback only.

It carries the professional's audio and video (the video still encoded, as it arrived: see media/passthrough.py)
and the citizen's own image. The
offer and the answer keep only loopback ICE candidates, so this media never leaves the machine whatever
addresses the gateway gathers on for the call itself. aiortc has no renegotiation: a new call means a new one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping

from aiortc import MediaStreamTrack, RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from gateway.errors import GatewayError
from gateway.lifecycle import AsyncResource
from gateway.media.passthrough import EncodedTrack, codec_preferences_for, on_keyframe_request

log = logging.getLogger("cabine.gateway.kiosk")


class LoopbackError(GatewayError, ValueError):
    """The cabin screen's answer cannot be used (unreadable, or no loopback candidate)."""


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # an mDNS name (*.local) or garbage: never used here


def loopback_only(sdp: str) -> tuple[str, int]:
    """The SDP without its non-loopback ICE candidates; returns (sdp, how many loopback candidates are left)."""
    kept: list[str] = []
    count = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) < 6 or not _is_loopback(fields[4]):
                continue
            count += 1
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", count


class LoopbackMedia(AsyncResource):
    """One RTCPeerConnection to the cabin screen, sending `tracks` (name -> track); close() is idempotent."""

    def __init__(self, tracks: Mapping[str, MediaStreamTrack], *, label: str = "kiosk") -> None:
        self.label = label
        self._tracks = dict(tracks)
        # No ICE servers at all: host candidates, and only the loopback ones survive loopback_only().
        self._pc = RTCPeerConnection(
            configuration=RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.mids: dict[str, str] = {}
        self._closed = False

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    async def create_offer(self) -> str:
        """Send-only transceivers for each track; returns the offer's SDP with loopback candidates only.

        Raises:
            LoopbackError: this process gathers no loopback candidate (its ICE addresses exclude 127.0.0.1).
        """
        transceivers = {
            name: self._pc.addTransceiver(track, direction="sendonly") for name, track in self._tracks.items()
        }
        for name, track in self._tracks.items():
            if isinstance(track, EncodedTrack) and track.mime_type is not None:
                # Frames forwarded as they were encoded: this hop must use their codec, and a lost picture on the
                # screen is asked of the professional's browser, the only encoder there is.
                transceivers[name].setCodecPreferences(codec_preferences_for(track.mime_type))
                on_keyframe_request(transceivers[name].sender, track.request_keyframe)
        await self._pc.setLocalDescription(await self._pc.createOffer())
        self.mids = {name: str(t.mid) for name, t in transceivers.items()}
        sdp, count = loopback_only(str(self._pc.localDescription.sdp))
        if count == 0:
            raise LoopbackError("no loopback ICE candidate: the gateway's ICE addresses must include 127.0.0.1")
        return sdp

    async def accept_answer(self, sdp: str) -> None:
        """Raises: LoopbackError: the answer is unreadable or offers no loopback candidate."""
        filtered, count = loopback_only(sdp)
        if count == 0:
            raise LoopbackError(
                "the cabin screen offered no loopback ICE candidate: start Chromium with "
                "--allow-loopback-in-peer-connection"
            )
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=filtered, type="answer"))
        except (ValueError, AttributeError, KeyError, IndexError) as exc:
            raise LoopbackError(f"the cabin screen's answer was refused: {exc}") from exc

    async def close(self) -> None:
        """Close the peer connection and stop the tracks it was given (relay subscriptions); idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._pc.close()
        for track in self._tracks.values():
            track.stop()
