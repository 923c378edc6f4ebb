"""Sound in a simulated cabin: echo cancellation, noise suppression and gain control on the gateway's real
microphone path (gateway.sound.processor.VoiceProcessor, frame by frame as in a call), beside the same signals
unprocessed.

The cabin (gateway.sound.room.SimulatedRoom): the professional's speech-like voice played by the loudspeaker after a
playout delay (40 to 200 ms), back into the microphone through a small booth's impulse response (RT60 0.25 s, the
loudspeaker a metre away), ventilation noise at -50 dBFS, and the citizen's voice at -24 dBFS. The script:

    0-7 s    the professional alone (the canceller converges; ERLE over 2-7 s)
    7-9 s    nobody (noise alone: noise reduction over 7.5-9 s)
    9-12 s   the citizen alone (the gain applied to their voice, and the added latency)
    13-24 s  the professional again, the citizen at 15-18 and 21-24 s: single talk at 13-15 and 18-21 s (ERLE once
             the gain control has learnt the citizen's level), double talk at 15-18 and 21-24 s (the citizen's voice
             kept: correlation of the output, aligned, with the clean voice)

ERLE is the echo at the microphone over what is left of it in the output. With gain control, the citizen's voice
is raised too: "echo under voice" adds that gain (what the professional hears: the echo's level relative to the
citizen's). CPU: process time of the processing alone, per second of call. Each configuration beside the same
signals unprocessed.

    python bench/audio.py                     # delays 40, 80, 120, 200 ms
    python bench/audio.py --delay 120 --seconds 30
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import common
import numpy as np
from av import AudioFrame

from gateway.sound import signals
from gateway.sound.processor import VoiceProcessor
from gateway.sound.room import FRAME, RATE, RoomSettings, SimulatedRoom
from gateway.sound.settings import SoundSettings

SECONDS = 24.0
EARLY = (2.0, 7.0)
NOISE_ONLY = (7.5, 9.0)
VOICE_ONLY = (9.5, 12.0)
LATE = ((13.0, 15.0), (18.0, 21.0))
DOUBLE = ((15.5, 18.0), (21.5, 24.0))
CONFIGURATIONS = {
    "unprocessed": None,
    "echo + noise (default)": SoundSettings(),
    "echo + noise + gain": SoundSettings(gain_control=True),
    "echo only": SoundSettings(noise_suppression=False),
}


def frame_of(samples: np.ndarray) -> AudioFrame:
    frame = AudioFrame.from_ndarray(signals.to_int16(samples).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    return frame


def window(x: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    return x[int(span[0] * RATE) : int(span[1] * RATE)]


def spans(x: np.ndarray, parts: tuple[tuple[float, float], ...]) -> np.ndarray:
    return np.concatenate([window(x, span) for span in parts])


def run(delay_ms: int, settings: SoundSettings | None) -> dict[str, Any]:
    room = SimulatedRoom(
        RoomSettings(playout_delay=delay_ms / 1000, talk=3.0, cycle=6.0, quiet_start=9.0), record=SECONDS + 1
    )
    far = signals.speech_like(SECONDS, 11)
    far[int(7.0 * RATE) : int(13.0 * RATE)] = 0
    processor = VoiceProcessor(settings) if settings is not None else None
    out: list[np.ndarray] = []
    cpu = 0.0
    for at in range(0, far.size - FRAME + 1, FRAME):
        played = frame_of(far[at : at + FRAME])
        room.play(played)
        mic = frame_of(room.capture(FRAME))
        if processor is None:
            out.append(signals.from_int16(mic.to_ndarray().reshape(-1)))
            continue
        started = time.process_time()
        processor.far_end(played)
        processed = processor.near_end(mic)
        cpu += time.process_time() - started
        out.append(signals.from_int16(processed.to_ndarray().reshape(-1)))
    output = np.concatenate(out)
    echo, voice, mic_all = room.recorded("echo"), room.recorded("voice"), room.recorded("mic")
    size = min(output.size, voice.size)
    output, echo, voice, mic_all = output[:size], echo[:size], voice[:size], mic_all[:size]
    lag, _ = signals.delay_samples(window(voice, VOICE_ONLY), window(output, VOICE_ONLY), max_delay=RATE // 10)
    aligned = np.concatenate([output[lag:], np.zeros(lag)])
    gain = signals.level_db(window(aligned, VOICE_ONLY)) - signals.level_db(window(mic_all, VOICE_ONLY))
    late = signals.level_db(spans(echo, LATE)) - signals.level_db(spans(output, LATE))
    talking = spans(voice, DOUBLE)
    heard = spans(aligned, DOUBLE)
    keep = np.abs(talking) > 0
    return {
        "delay_ms": delay_ms,
        "erle_early_db": signals.level_db(window(echo, EARLY)) - signals.level_db(window(output, EARLY)),
        "erle_late_db": late,
        "echo_under_voice_db": late + gain,
        "voice_gain_db": gain,
        "double_talk_corr": signals.correlation(heard[keep], talking[keep]),
        "noise_reduction_db": signals.level_db(window(mic_all, NOISE_ONLY))
        - signals.level_db(window(output, NOISE_ONLY)),
        "latency_ms": lag * 1000 / RATE,
        "cpu_core": cpu / SECONDS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--delay", type=int, action="append", help="playout delay in ms (repeat; default 40 80 120 200)"
    )
    args = parser.parse_args()
    delays = args.delay or [40, 80, 120, 200]
    if any(not 0 <= d <= 500 for d in delays):
        parser.error("--delay must be 0 to 500 ms")
    rows = []
    for delay in delays:
        for name, settings in CONFIGURATIONS.items():
            result = {"path": name, **run(delay, settings)}
            rows.append(result)
            print(
                f"delay {delay} ms, {name}: ERLE {result['erle_early_db']:.1f} dB (2-7 s), "
                f"{result['erle_late_db']:.1f} dB later, echo under voice {result['echo_under_voice_db']:.1f} dB, "
                f"voice {result['voice_gain_db']:+.1f} dB, double talk {result['double_talk_corr']:.2f}, "
                f"noise -{result['noise_reduction_db']:.1f} dB, latency {result['latency_ms']:.1f} ms, "
                f"CPU {result['cpu_core']:.4f} core",
                flush=True,
            )
    headers = ["delay", "path", "ERLE 2-7s", "ERLE late", "echo<voice", "voice dB", "double talk", "noise -dB",
               "latency ms", "CPU core"]  # fmt: skip
    table = [
        (
            r["delay_ms"], r["path"], r["erle_early_db"], r["erle_late_db"], r["echo_under_voice_db"],
            r["voice_gain_db"], f"{r['double_talk_corr']:.2f}", r["noise_reduction_db"], r["latency_ms"],
            f"{r['cpu_core']:.3f}",
        )
        for r in rows
    ]  # fmt: skip
    common.print_table("Sound in a simulated cabin (dB; double talk: correlation with the clean voice)", headers, table)
    common.write_results("audio", {"machine": common.machine_info(), "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
