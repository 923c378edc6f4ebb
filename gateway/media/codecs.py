"""Which video codec the cabin offers first, and the fallbacks that follow it."""

from __future__ import annotations

from aiortc import RTCRtpSender, RTCRtpTransceiver

from gateway.media.spec import VideoCodec

__all__ = ["VideoCodec", "prefer_video_codec"]


def prefer_video_codec(transceiver: RTCRtpTransceiver, codec: VideoCodec) -> None:
    """Offer `codec` first, then every other codec aiortc has.

    A browser answers with the first offered codec it can decode: a professional whose browser lacks the preferred
    one still gets a picture, in the fallback codec, instead of a black screen.
    """
    capabilities = RTCRtpSender.getCapabilities("video").codecs
    preferred = [c for c in capabilities if c.mimeType.lower() == codec.mime_type.lower()]
    others = [c for c in capabilities if c not in preferred]
    transceiver.setCodecPreferences(preferred + others)
