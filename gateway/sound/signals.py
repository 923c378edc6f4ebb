"""Test signals and measures of a cabin's sound: speech-like sound, a sweep, fan noise, a small room's impulse
response; levels, echo return loss, delay by cross-correlation. Pure NumPy: no I/O, no clock.

Float arrays in [-1, 1] at RATE; the self-test, the simulated room, the tests and bench/audio.py share them.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray

RATE: Final = 48_000
Samples = NDArray[np.float64]
# A level below which a signal counts as silence (about the quietest a 16-bit path carries).
FLOOR_DB: Final = -96.0


def level_db(x: Samples) -> float:
    """RMS level in dBFS (a full-scale sine is -3 dB)."""
    if x.size == 0:
        return FLOOR_DB
    rms = float(np.sqrt(np.mean(np.square(x))))
    return max(FLOOR_DB, 20 * math.log10(rms)) if rms > 0 else FLOOR_DB


def speech_like(
    seconds: float, seed: int, *, rate: int = RATE, pitch: float = 120.0, level_dbfs: float = -20.0
) -> Samples:
    """A voice-like signal: a glottal pulse train with a wandering pitch, shaped by formants that change with each
    syllable (120 to 300 ms), with short pauses and a longer one now and then: what echo cancellers and noise
    suppressors are tuned on, different for every seed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = pitch * (1 + 0.12 * np.sin(2 * math.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = np.cumsum(f0 / rate)
    source = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64) + 0.05 * rng.standard_normal(n)
    vowels = np.array([[700, 1200, 2600], [300, 2300, 3000], [500, 900, 2400], [400, 1900, 2550], [600, 1000, 2700]])
    out = np.zeros(n)
    at = 0
    while at < n:
        length = int(rng.uniform(0.12, 0.30) * rate)
        pause = rng.uniform(0.03, 0.15) if rng.random() < 0.8 else rng.uniform(0.3, 0.6)
        end = min(n, at + length)
        size = end - at
        nfft = 1 << math.ceil(math.log2(size))
        freqs = np.fft.rfftfreq(nfft, 1 / rate)
        vowel = vowels[rng.integers(len(vowels))] * rng.uniform(0.92, 1.08)
        response = sum(
            gain / (1 + ((freqs - formant) / 90) ** 2) for formant, gain in zip(vowel, (1.0, 0.5, 0.25), strict=True)
        ) / (1 + (freqs / 6000) ** 4)  # a voice has little above 8 kHz
        shaped = np.fft.irfft(np.fft.rfft(source[at:end], nfft) * response, nfft)[:size]
        out[at:end] = shaped * np.sin(np.linspace(0, math.pi, size)) ** 0.6 * rng.uniform(0.6, 1.0)
        at = end + int(pause * rate)
    return _at_level(out, level_dbfs)


def sweep(
    seconds: float = 1.0, *, rate: int = RATE, low: float = 100.0, high: float = 8000.0, level_dbfs: float = -12.0
) -> Samples:
    """An exponential sine sweep from `low` to `high` Hz, faded in and out (the self-test's probe)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    k = math.log(high / low)
    x = np.sin(2 * math.pi * low * seconds / k * (np.exp(t / seconds * k) - 1))
    fade = min(n // 10, int(0.02 * rate))
    window = np.ones(n)
    window[:fade] = np.linspace(0, 1, fade)
    window[n - fade :] = np.linspace(1, 0, fade)
    return _at_level(x * window, level_dbfs)


def fan_noise(seconds: float, seed: int, *, rate: int = RATE, level_dbfs: float = -50.0) -> Samples:
    """Ventilation: pink-ish broadband noise with a 100 Hz hum and a blade tone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n)
    t = np.arange(n) / rate
    hum = 0.3 * np.sin(2 * math.pi * 100 * t) + 0.1 * np.sin(2 * math.pi * 240 * t)
    return _at_level(pink / np.std(pink) + hum, level_dbfs)


def room_response(seed: int, *, rate: int = RATE, rt60: float = 0.25, direct_gain: float = 0.5) -> Samples:
    """A small booth's impulse response: the direct path, a few early reflections, then a tail decaying 60 dB in
    `rt60` seconds (a loudspeaker a metre from the microphone)."""
    rng = np.random.default_rng(seed)
    n = int(rt60 * rate)
    h = np.zeros(n)
    h[0] = direct_gain
    for delay_ms, gain in ((2.9, 0.35), (4.7, -0.25), (7.3, 0.2), (11.0, -0.15)):
        h[int(delay_ms * rate / 1000)] += gain * direct_gain
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60) * 0.08 * direct_gain
    tail[: int(0.012 * rate)] = 0
    return h + tail


def delay_samples(
    reference: Samples, captured: Samples, *, max_delay: int, rate: int = RATE, band: tuple[float, float] = (150, 7000)
) -> tuple[int, float]:
    """Where `reference` is found in `captured` (samples of delay, 0..max_delay) and how clearly (the PHAT-weighted
    cross-correlation peak over the mean, > 10 for a sure find), over the voice band only (a processor's upper bands
    may take another path than its voice band)."""
    n = 1 << math.ceil(math.log2(reference.size + captured.size))
    cross = np.fft.rfft(captured, n) * np.conj(np.fft.rfft(reference, n))
    cross /= np.abs(cross) + 1e-12
    freqs = np.fft.rfftfreq(n, 1 / rate)
    cross[(freqs < band[0]) | (freqs > band[1])] = 0
    correlation = np.fft.irfft(cross, n)[: max_delay + 1]
    peak = int(np.argmax(np.abs(correlation)))
    clarity = float(np.abs(correlation[peak]) / (np.mean(np.abs(correlation)) + 1e-12))
    return peak, clarity


def correlation(a: Samples, b: Samples) -> float:
    """Pearson correlation of two equally long signals (0 if either is silent)."""
    size = min(a.size, b.size)
    a, b = a[:size] - np.mean(a[:size]), b[:size] - np.mean(b[:size])
    norm = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / norm) if norm > 0 else 0.0


def to_int16(x: Samples) -> NDArray[np.int16]:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def from_int16(x: NDArray[np.int16]) -> Samples:
    return x.astype(np.float64) / 32768


def _at_level(x: Samples, level_dbfs: float) -> Samples:
    rms = float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0
    return x * (10 ** (level_dbfs / 20) / rms) if rms > 0 else x
