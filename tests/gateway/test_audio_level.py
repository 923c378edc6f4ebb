"""The voice packets' audio level: the same as aiortc's own computation, frame for frame."""

from __future__ import annotations

import timeit

import numpy as np
import pytest
from aiortc import rtp
from av import AudioFrame

from gateway.media.audio_level import audio_level_dbov, install


def frame(samples: np.ndarray, layout: str = "mono") -> AudioFrame:
    made = AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout=layout)
    made.sample_rate = 48_000
    return made


_ORIGINAL = rtp.compute_audio_level_dbov


@pytest.mark.parametrize("amplitude", [0, 1, 30, 300, 3000, 20000, 32767])
def test_the_level_is_aiortcs_own(amplitude: int) -> None:
    rng = np.random.default_rng(amplitude)
    for _ in range(20):
        samples = rng.integers(-amplitude, amplitude + 1, 960) if amplitude else np.zeros(960)
        made = frame(samples)
        assert audio_level_dbov(made) == _ORIGINAL(made)
    stereo = frame(np.tile(np.arange(-480, 480), 2), layout="stereo")
    assert audio_level_dbov(stereo) == _ORIGINAL(stereo)


def test_installed_in_aiortc() -> None:
    # The time per frame is printed, not asserted (speed is measured by the benchmarks).
    made = frame(np.random.default_rng(1).integers(-3000, 3000, 960))
    assert install()
    try:
        assert rtp.compute_audio_level_dbov is audio_level_dbov
        ours = min(timeit.repeat(lambda: audio_level_dbov(made), number=200, repeat=3))
        theirs = min(timeit.repeat(lambda: _ORIGINAL(made), number=200, repeat=3))
        print(f"\naudio level per frame: {ours / 200 * 1e6:.1f} us with NumPy, {theirs / 200 * 1e6:.1f} us in aiortc")
    finally:
        rtp.compute_audio_level_dbov = _ORIGINAL
