"""The professional does not hear themselves: a call in headless Chromium whose fake microphone plays a known voice;
the gateway's microphone is the simulated cabin (gateway.sound.room), which hears that voice back through its
loudspeaker and a small booth, with fan noise and the citizen speaking now and then. What the professional's page
receives is recorded (Web Audio) and measured: the citizen's voice is found in it by cross-correlation, and where the
citizen is silent, what is left of the echo is at least 20 dB under the echo that entered the microphone."""

from __future__ import annotations

import base64
import wave
from pathlib import Path

import numpy as np
import pytest

from cabine.demo.run import DemoOptions, run_demo
from gateway.media.spec import SourceSpec
from gateway.sound import signals
from gateway.sound.settings import SoundSettings
from signaling.protocol import AppointmentKind
from tests.browser import chromium, wait_js
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(150)

RATE = signals.RATE
RECORD_SECONDS = 16

# Records the remote audio the professional's page receives, as 48 kHz samples (a muted media element plays the
# stream too: Chromium feeds a remote WebRTC stream to Web Audio only then).
START_RECORDING_JS = """async () => {
  const receiver = window.cabine.pc.getReceivers().find((r) => r.track && r.track.kind === "audio");
  const stream = new MediaStream([receiver.track]);
  const sink = new Audio();
  sink.muted = true;
  sink.srcObject = stream;
  await sink.play();
  const ctx = new AudioContext({ sampleRate: 48000 });
  const source = ctx.createMediaStreamSource(stream);
  const node = ctx.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(node);
  node.connect(ctx.destination);
  await ctx.resume();
  window.__recording = { chunks, ctx, node, sink };
}"""
RECORDED_SAMPLES_JS = "() => window.__recording.chunks.length * 4096"
TAKE_RECORDING_JS = """() => {
  const { chunks, ctx, node } = window.__recording;
  node.disconnect();
  ctx.close();
  const out = new Int16Array(chunks.length * 4096);
  chunks.forEach((chunk, i) => chunk.forEach((v, j) => {
    out[i * 4096 + j] = Math.max(-32768, Math.min(32767, v * 32767));
  }));
  let text = "";
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}"""


def envelope(x: np.ndarray) -> np.ndarray:
    """RMS per 20 ms."""
    frames = x.size // 960
    return np.sqrt(np.mean(np.square(x[: frames * 960].reshape(frames, 960)), axis=1))


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(signals.to_int16(samples).tobytes())


@pytest.mark.parametrize("cancelled", [True, False], ids=["processed", "unprocessed"])
async def test_the_professional_hears_the_citizen_and_not_their_own_echo(
    tmp_path: Path, port: int, cancelled: bool
) -> None:
    """Unprocessed, the same measure finds the echo at its full level: the measure itself is sound."""
    far = tmp_path / "professional.wav"
    write_wav(far, signals.speech_like(20.0, 21, level_dbfs=-18.0))
    options = DemoOptions(
        kiosk_port=None,
        devices="none",
        appointment_kind=AppointmentKind.BANK,
        port=port,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        auto_checkin=True,
        auto_admit=True,
        audio=SourceSpec("room"),
        sound=SoundSettings(echo_cancellation=cancelled, noise_suppression=cancelled),
    )
    async with (
        run_demo(options) as demo,
        chromium(tmp_path / "profile", extra_args=(f"--use-file-for-fake-audio-capture={far}",)) as browser,
    ):
        page = await browser.new_page()
        await page.goto(demo.doctor_link)
        await wait_js(page, "() => !document.getElementById('join').disabled", what="the preflight")
        await page.get_by_role("button", name="Rejoindre").click()
        await wait_until(lambda: bool(demo.gateway.sessions), timeout=20, what="the call")
        session = next(iter(demo.gateway.sessions.values()))
        room = session.sources.room
        assert room is not None and (session.voice is not None) == cancelled
        # The canceller has heard 3 s of the professional (it converges in about 2).
        await wait_until(
            lambda: session.stats.audio_frames_received > 150, timeout=30, what="the professional's voice in the cabin"
        )
        await page.evaluate(START_RECORDING_JS)
        started_at = room.captured
        await wait_js(page, f"() => ({RECORDED_SAMPLES_JS})() >= {RECORD_SECONDS * RATE}", timeout=40, what="16 s")
        received = signals.from_int16(np.frombuffer(base64.b64decode(await page.evaluate(TAKE_RECORDING_JS)), np.int16))

    # Where the room's clock is in the recording: the citizen's voice, found by cross-correlation.
    lead = RATE  # the recording starts less than a second of latency after `started_at`
    reference = room.voice(started_at - lead, received.size + lead)
    offset, clarity = signals.delay_samples(received, reference, max_delay=lead)
    assert clarity > 10, f"the citizen's voice is not found in what the professional receives (clarity {clarity:.1f})"
    heard_voice = reference[offset : offset + received.size]
    # The citizen talks over the professional all along (double talk): the voice's syllables arrive (its 20 ms
    # envelope follows the clean voice's), well above what is heard while the citizen is silent.
    kept = signals.correlation(envelope(received), envelope(heard_voice))
    talking = np.abs(heard_voice) > 1e-4
    above = signals.level_db(received[talking]) - signals.level_db(received[~talking])
    if cancelled:  # (unprocessed, the echo is louder than the voice)
        assert kept > 0.5, f"the citizen's voice arrives damaged (envelope correlation {kept:.2f})"
        assert above > 10, f"the citizen's voice is only {above:.1f} dB above the silences"

    # Where the citizen is silent and the professional speaks: the echo that entered the microphone, against what
    # the professional hears then.
    room_start = started_at - lead + offset
    echo_energy = heard_energy = 0.0
    for at, echo_rms, voice_rms in room.levels:
        index = at - room_start
        if voice_rms > 0 or echo_rms < 1e-3 or index < 0 or index + 960 > received.size:
            continue
        echo_energy += echo_rms**2 * 960
        heard_energy += float(np.sum(received[index : index + 960] ** 2))
    assert echo_energy > 0, "no single-talk stretch was recorded"
    attenuation = 10 * np.log10(echo_energy / max(heard_energy, 1e-12))
    print(f"echo attenuation {attenuation:.1f} dB, voice envelope {kept:.2f}, voice {above:.1f} dB over silences")
    if cancelled:
        assert attenuation >= 20, f"the echo is only {attenuation:.1f} dB under what entered the microphone"
    else:
        assert attenuation < 6, f"unprocessed, the echo should arrive whole, yet {attenuation:.1f} dB are missing"
