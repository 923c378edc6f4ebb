"""The stamped test pattern survives a real VP8 and H264 encode/decode at 640x480 and 1280x720."""

from __future__ import annotations

import fractions

import av
import pytest

from gateway.media.pattern import PatternPainter, read_stamp, stamp_words


def test_stamp_words_layout() -> None:
    words = stamp_words(0x0123_4567_89AB, 0xBEEF)
    assert words[:4] == (0x0123, 0x4567, 0x89AB, 0xBEEF)
    assert words[4] == 0x0123 ^ 0x4567 ^ 0x89AB ^ 0xBEEF


@pytest.mark.parametrize("codec", ["libvpx", "libx264"])
@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720)])
def test_stamp_survives_the_codec(codec: str, width: int, height: int) -> None:
    painter = PatternPainter(width, height, stamp=True)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.bit_rate = 500_000  # a low bitrate, as on a congested cabin link
    decoder = av.CodecContext.create("vp8" if codec == "libvpx" else "h264", "r")
    base_ms = 1_764_000_000_000
    decoded = []
    for i in range(40):
        frame = av.VideoFrame.from_ndarray(painter.draw(i, base_ms + i * 33), format="yuv420p")
        frame.pts = i
        for packet in encoder.encode(frame):
            decoded += decoder.decode(packet)
    for packet in encoder.encode(None):
        decoded += decoder.decode(packet)
    assert len(decoded) >= 30
    stamps = [read_stamp(f.to_ndarray(format="yuv420p")[:height]) for f in decoded]
    assert stamps == [(base_ms + i * 33, i) for i in range(len(decoded))]


def test_a_damaged_stamp_is_detected() -> None:
    painter = PatternPainter(stamp=True)
    luma = painter.draw(7, 1_764_000_000_000)[:480].copy()
    luma[0:40, 0:40] = 255 - luma[0:40, 0:40]  # flip the first bit
    assert read_stamp(luma) is None
