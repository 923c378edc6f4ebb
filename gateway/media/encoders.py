"""The one place that reaches inside aiortc's RTCRtpSender for its encoder, which aiortc 1.16 keeps private.

aiortc has no public way to read or configure the encoder a sender uses. The sender keeps it in a private attribute
(rtcrtpsender.py:104), creates it from the first negotiated codec at the first frame when it is still None
(:308-309), and drops it when sending ends (:421); the negotiated codecs are the transceiver's private `_codecs`,
set when the answer is applied (rtcpeerconnection.py:919-931). Reading the encoder gives the receiver's estimate as
the encoder applies it; giving the sender an encoder before its first frame changes how it encodes, without
changing aiortc. Every access checks that the attribute is there, so a later aiortc that renames it turns these
features off instead of breaking the call.
"""

from __future__ import annotations

from aiortc import RTCRtpCodecParameters, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.codecs.base import Encoder

_ENCODER = "_RTCRtpSender__encoder"


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the transceiver sends with (the first negotiated one), or None before the answer is applied."""
    codecs = [codec for codec in getattr(transceiver, "_codecs", ()) if not is_rtx(codec)]
    return codecs[0] if codecs else None


def current_encoder(sender: RTCRtpSender) -> Encoder | None:
    """The sender's encoder: None before its first frame, after it stopped, or if aiortc no longer keeps it there."""
    encoder = getattr(sender, _ENCODER, None)
    return encoder if isinstance(encoder, Encoder) else None


def seed_encoder(transceiver: RTCRtpTransceiver, mime_type: str, encoder: Encoder) -> bool:
    """Have the sender start with `encoder` if it sends `mime_type` and has made no encoder yet; whether it will.

    Call it after the answer is applied and before the first frame is sent (the connection is not up yet then).
    """
    codec = negotiated_codec(transceiver)
    sender = transceiver.sender
    if codec is None or codec.mimeType.lower() != mime_type.lower():
        return False
    if not hasattr(sender, _ENCODER) or getattr(sender, _ENCODER) is not None:
        return False  # another aiortc, or too late: the sender already encodes with its own
    setattr(sender, _ENCODER, encoder)
    return True
