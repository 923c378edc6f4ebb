"""End to end, for real: headless Chromium opens the doctor link and talks to a real aiortc gateway."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cabine.demo.run import DemoOptions, run_demo
from signaling.protocol import AppointmentKind
from tests.browser import chromium
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(90)

STATS_JS = """async () => {
  const pc = window.cabine.pc;
  if (!pc) return null;
  const out = {video: null, audio: null};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp") out[s.kind] = s;
  });
  return out;
}"""


async def test_doctor_link_shows_the_cabin(tmp_path: Path, port: int) -> None:
    started = time.monotonic()
    options = DemoOptions(
        kiosk_port=None,
        devices="direct",
        port=port,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        reading_interval=0.3,
        auto_checkin=True,
    )
    async with run_demo(options) as demo, chromium(tmp_path / "profile") as browser:
        thermometer = demo.thermometer
        assert thermometer is not None
        page = await browser.new_page()
        await page.goto(demo.doctor_link)
        await page.get_by_role("button", name="Rejoindre").click()
        # Waiting room: the citizen is in the cabin; no media before the doctor admits them.
        admit = page.get_by_role("button", name="Faire entrer")
        await admit.wait_for(timeout=10_000)
        await page.wait_for_function("!document.getElementById('admit').disabled", timeout=10_000)
        assert "présente, en attente" in await page.locator("#room-citizen").inner_text()
        assert demo.gateway.sessions == {}
        assert await page.evaluate("window.cabine.pc") is None
        await admit.click()

        # The browser decodes the cabin's video (more than 30 frames) and receives its audio.
        reached = await page.evaluate(
            """async () => {
                const deadline = performance.now() + 30000;
                while (performance.now() < deadline) {
                  const pc = window.cabine.pc;
                  if (pc) {
                    let frames = 0, samples = 0;
                    (await pc.getStats()).forEach((s) => {
                      if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
                      if (s.type === "inbound-rtp" && s.kind === "audio") samples = s.totalSamplesReceived || 0;
                    });
                    if (frames > 30 && samples > 48000) return true;
                  }
                  await new Promise((r) => setTimeout(r, 100));
                }
                return false;
            }"""
        )
        assert reached, "the browser did not decode 30 frames and 1 s of audio within 30 s"
        stats = await page.evaluate(STATS_JS)
        assert stats["video"]["framesDecoded"] > 30
        assert stats["video"]["frameWidth"] == 640
        assert stats["video"]["frameHeight"] == 480
        assert stats["audio"]["packetsReceived"] > 0
        assert stats["audio"]["totalAudioEnergy"] > 0, "the cabin's tone should be audible, not silence"
        assert await page.evaluate("document.getElementById('remote').videoWidth") == 640

        # The gateway receives the doctor's camera and microphone (Chromium's fake devices).
        session = demo.gateway.sessions[demo.appointment.id]
        await wait_until(
            lambda: session.stats.video_frames_received > 30 and session.stats.audio_frames_received > 50,
            timeout=20,
            what="the gateway to receive the doctor's video and audio",
        )

        # A temperature sent by the emulated thermometer is rendered, with its unit and time.
        value = page.locator("#vital-body-temperature .value")
        await value.wait_for(timeout=15_000)
        shown = float(await value.get_attribute("data-value") or "nan")
        assert shown in thermometer.sent
        text = await page.locator("#vital-body-temperature").inner_text()
        assert f"{shown:.1f}".replace(".", ",") + " °C" in text
        assert "mesuré à" in text
        # Every reading the page got was acknowledged back to the gateway.
        got = await page.evaluate("window.cabine.vitals.readings.map((r) => r.value)")
        assert got, "no reading reached the page"
        assert set(got) <= set(thermometer.sent)
        assert await page.locator("body").get_attribute("data-state") == "inCall"
    print(f"end-to-end test took {time.monotonic() - started:.1f} s")


async def test_a_bank_appointment_shows_no_vitals_panel(tmp_path: Path, port: int) -> None:
    options = DemoOptions(
        kiosk_port=None,
        devices="direct",
        port=port,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        appointment_kind=AppointmentKind.BANK,
        auto_checkin=True,
    )
    async with run_demo(options) as demo, chromium(tmp_path / "profile") as browser:
        assert demo.thermometer is None
        page = await browser.new_page()
        await page.goto(demo.doctor_link)
        await page.get_by_role("button", name="Rejoindre").click()
        await page.get_by_role("button", name="Faire entrer").click()
        await page.wait_for_selector("body[data-state=inCall]", timeout=20_000)
        assert await page.locator("#vitals").is_hidden()
        assert "Rendez-vous bancaire" in await page.locator("#appointment").inner_text()
        # No data channel was negotiated at all.
        sdp = await page.evaluate("window.cabine.pc.remoteDescription.sdp")
        assert "m=application" not in sdp


async def test_a_forged_link_shows_a_clear_refusal_in_the_browser(tmp_path: Path, port: int) -> None:
    options = DemoOptions(port=port, data_dir=tmp_path / "data", ice_addresses=("127.0.0.1",), kiosk_port=None)
    async with run_demo(options) as demo, chromium(tmp_path / "profile") as browser:
        head, payload, _ = demo.doctor_link.rsplit("/", 1)[1].split(".")
        page = await browser.new_page()
        response = await page.goto(f"{demo.base_url}/join/{head}.{payload}.{'A' * 86}")
        assert response is not None and response.status == 401
        assert await page.get_by_role("heading", name="Lien refusé").is_visible()
        assert "n'a pas été émis par ce service" in await page.locator("main").inner_text()
