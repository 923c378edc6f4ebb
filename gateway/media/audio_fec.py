"""Opus in-band FEC for the cabin's voice: each packet also carries a coarse copy of the one before it; 32 kbit/s.

A browser that loses one audio packet rebuilds it from the next one (NetEq decodes the LBRR data) instead of
concealing a gap. Chromium asks for it in every answer (`useinbandfec=1`), but aiortc ignores the fmtp parameters of
the codec it sends (codecs/__init__.py:167-183 builds encoders from the MIME type alone) and opens libopus with only
`application=voip` at 96 kbps (codecs/opus.py:31-39): no FEC, no expected loss, so never any LBRR data.

libopus turns FEC on only with both `fec=1` and an expected loss above zero (av's libopus options `fec` and
`packet_loss`); it then codes speech in SILK or hybrid mode, whose frames carry the LBRR copy. aiortc's encoder
applies its options when it opens the codec at the first frame, so an encoder given these options before that frame
is enough: no change to aiortc, only to which encoder the sender starts with.
"""

from __future__ import annotations

from typing import Final

from aiortc import RTCRtpTransceiver
from aiortc.codecs.opus import OpusEncoder

from gateway.errors import GatewayError
from gateway.media.encoders import seed_encoder

# The loss libopus prepares for: the LBRR copy gets finer as this grows (silk/control_codec.c, LBRR_GainIncreases).
# WebRTC feeds libopus the loss it measures (audio_encoder_opus.cc, in steps of 1, 5, 10 and 20 %); aiortc's encoder
# cannot be told after it is opened, so a fixed middle value: 10 %, the loss at which WebRTC also lowers bitrates.
EXPECTED_LOSS_PERCENT: Final = 10
# aiortc opens libopus at 96 kbit/s; WebRTC codes mono wideband speech at 32 kbit/s (audio_encoder_opus.cc,
# kOpusBitrateWbBps), which with FEC is ample for a voice and leaves a narrow uplink to the picture.
VOICE_BITRATE: Final = 32_000


class AudioFecError(GatewayError, ValueError):
    """An expected loss out of range."""


def opus_fec_encoder(expected_loss_percent: int = EXPECTED_LOSS_PERCENT) -> OpusEncoder:
    """aiortc's Opus encoder, not yet opened, with libopus's in-band FEC on.

    Raises:
        AudioFecError: the expected loss is not 1..100 % (at 0 libopus codes no FEC at all).
    """
    if not 1 <= expected_loss_percent <= 100:
        raise AudioFecError(f"the expected loss must be 1..100 %, got {expected_loss_percent}")
    encoder = OpusEncoder()
    encoder.codec.bit_rate = VOICE_BITRATE
    encoder.codec.options = {**encoder.codec.options, "fec": "1", "packet_loss": str(expected_loss_percent)}
    return encoder


def enable_opus_fec(transceiver: RTCRtpTransceiver, *, expected_loss_percent: int = EXPECTED_LOSS_PERCENT) -> bool:
    """Have this audio transceiver's sender encode with Opus FEC; True if done, False if it cannot be.

    Call it after the answer is applied (the codec is then known) and before the connection sends its first audio
    frame. False when the negotiated codec is not Opus (G.722 or G.711 have no FEC) or when the sender has already
    made its encoder (too late: libopus reads these options only when it opens).

    Raises:
        AudioFecError: the expected loss is not 1..100 %.
    """
    return seed_encoder(transceiver, "audio/opus", opus_fec_encoder(expected_loss_percent))


def opus_lbrr(payload: bytes) -> bool | None:
    """Whether an Opus packet of one 10 or 20 ms frame carries LBRR (FEC) data for the one before it.

    None when the question has no answer: CELT-only packets (no SILK layer, so never FEC), 40 and 60 ms SILK frames
    or several frames per packet (other layouts), or an empty frame. RFC 6716 §3.1: the TOC byte's top five bits are
    the configuration (0-11 SILK, 10/20/40/60 ms in turn; 12-15 hybrid; 16-31 CELT), bit 2 is stereo, the low two
    bits the frame count code (0: one frame). §4.2.3-4.2.4: a SILK frame opens with, per channel, its VAD flag then
    its LBRR flag, each coded at probability 1/2, so the range coder's first decoded bits are the first payload
    byte's top bits: mid VAD, mid LBRR, side VAD, side LBRR. (FreeSWITCH's switch_opus_has_fec() reads them so too.)
    """
    if len(payload) < 2:
        return None
    toc = payload[0]
    config = toc >> 3
    if config >= 16 or (config < 12 and config % 4 >= 2) or toc & 0b11 != 0:
        return None
    channels = 2 if toc & 0b100 else 1
    first = payload[1]
    return any(first & (0x40 >> (2 * channel)) for channel in range(channels))
