"""The synthetic test pattern, drawn directly in YUV 4:2:0: colour bars, a moving bar, an optional stamp.

Pure (numpy only). The stamp is a block code that survives VP8 and H264: the top (width x 5*width/16) pixels are
5 rows of 16 square blocks, white = 1, black = 0, most significant bit first in reading order; rows 0-2 hold the
capture time as 48 bits of Unix milliseconds, row 3 a 16-bit frame counter, row 4 the XOR of rows 0-3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# BT.601 limited-range YUV of 75% colour bars: white, yellow, cyan, green, magenta, red, blue, black.
_BARS_YUV = (
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
)
BLOCKS_PER_ROW = 16
STAMP_ROWS = 5
_WHITE, _BLACK = 235, 16


def stamp_words(capture_ms: int, counter: int) -> tuple[int, int, int, int, int]:
    """The five 16-bit words of a stamp: time (3 words, most significant first), counter, XOR check."""
    t = capture_ms & 0xFFFF_FFFF_FFFF
    words = ((t >> 32) & 0xFFFF, (t >> 16) & 0xFFFF, t & 0xFFFF, counter & 0xFFFF)
    return (*words, words[0] ^ words[1] ^ words[2] ^ words[3])


def read_stamp(luma: npt.NDArray[np.uint8]) -> tuple[int, int] | None:
    """Read (capture_ms, counter) back from a luma plane; None when the check word does not match."""
    width = luma.shape[1]
    block = width // BLOCKS_PER_ROW
    words = []
    for row in range(STAMP_ROWS):
        word = 0
        for col in range(BLOCKS_PER_ROW):
            y0, x0 = row * block + block // 4, col * block + block // 4
            centre = luma[y0 : y0 + block // 2, x0 : x0 + block // 2]
            word = (word << 1) | int(centre.mean() > 128)
        words.append(word)
    if words[0] ^ words[1] ^ words[2] ^ words[3] != words[4]:
        return None
    return (words[0] << 32) | (words[1] << 16) | words[2], words[3]


@dataclass
class PatternPainter:
    """Draws frames of the pattern; `draw` returns a (height*3/2, width) yuv420p array."""

    width: int = 640
    height: int = 480
    stamp: bool = False

    def __post_init__(self) -> None:
        if self.width % 16 or self.height % 2 or self.width < 64 or self.height < 48:
            raise ValueError(f"unsupported pattern size {self.width}x{self.height}")
        w, h = self.width, self.height
        self._base = np.empty((h * 3 // 2, w), dtype=np.uint8)
        y = self._base[:h]
        u = self._base[h : h + h // 4].reshape(h // 2, w // 2)
        v = self._base[h + h // 4 :].reshape(h // 2, w // 2)
        bar_w = w // len(_BARS_YUV)
        for i, (yy, uu, vv) in enumerate(_BARS_YUV):
            x0, x1 = i * bar_w, (w if i == len(_BARS_YUV) - 1 else (i + 1) * bar_w)
            y[:, x0:x1] = yy
            u[:, x0 // 2 : x1 // 2] = uu
            v[:, x0 // 2 : x1 // 2] = vv
        # A grey ramp across the bottom eighth shows banding and scaling at a glance.
        ramp = np.linspace(16, 235, w).astype(np.uint8)
        y[h - h // 8 :, :] = ramp
        u[(h - h // 8) // 2 :, :] = 128
        v[(h - h // 8) // 2 :, :] = 128
        self._frame = self._base.copy()

    def draw(self, index: int, capture_ms: int = 0) -> npt.NDArray[np.uint8]:
        """Frame `index`: the base, a white bar moving one width every 4 seconds at 30 fps, and the stamp."""
        w, h = self.width, self.height
        frame = self._frame
        np.copyto(frame, self._base)
        bar = max(8, w // 40)
        x = (index * (w // 120)) % (w - bar)
        top = self._stamp_height if self.stamp else 0
        frame[top : h - h // 8, x : x + bar] = _WHITE
        # Neutral chroma under the bar, so it is white and not tinted by the colour bar beneath.
        u = frame[h : h + h // 4].reshape(h // 2, w // 2)
        v = frame[h + h // 4 :].reshape(h // 2, w // 2)
        u[top // 2 : (h - h // 8) // 2, x // 2 : (x + bar) // 2] = 128
        v[top // 2 : (h - h // 8) // 2, x // 2 : (x + bar) // 2] = 128
        if self.stamp:
            self._draw_stamp(frame, capture_ms, index)
        return frame

    @property
    def _stamp_height(self) -> int:
        return (self.width // BLOCKS_PER_ROW) * STAMP_ROWS

    def _draw_stamp(self, frame: npt.NDArray[np.uint8], capture_ms: int, counter: int) -> None:
        w, h = self.width, self.height
        block = w // BLOCKS_PER_ROW
        luma = frame[:h]
        u = frame[h : h + h // 4].reshape(h // 2, w // 2)
        v = frame[h + h // 4 :].reshape(h // 2, w // 2)
        # Neutral chroma under the stamp so that it decodes from luma alone.
        u[: self._stamp_height // 2, :] = 128
        v[: self._stamp_height // 2, :] = 128
        for row, word in enumerate(stamp_words(capture_ms, counter)):
            bits = np.array([(word >> (15 - i)) & 1 for i in range(BLOCKS_PER_ROW)], dtype=np.uint8)
            line = np.repeat(np.where(bits == 1, _WHITE, _BLACK).astype(np.uint8), block)
            luma[row * block : (row + 1) * block, : block * BLOCKS_PER_ROW] = line
