"""The professional's console in real headless Chromium, state by state, with axe checks and screenshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cabine.demo.run import DemoOptions, run_demo
from gateway.devices.readings import DeviceIdentity, Quantity, Reading, ReadingKind, TimeSource
from signaling.protocol import AppointmentKind
from tests.browser import ARTIFACTS, assert_accessible, chromium, screenshot, wait_js
from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(120)


def blood_pressure(systolic: float, diastolic: float) -> Reading:
    return Reading(
        kind=ReadingKind.BLOOD_PRESSURE,
        quantities=(
            Quantity("systolic", systolic, "mm[Hg]"),
            Quantity("diastolic", diastolic, "mm[Hg]"),
            Quantity("mean", round((systolic + 2 * diastolic) / 3), "mm[Hg]"),
            Quantity("pulse-rate", 72, "/min"),
        ),
        measured_at=datetime.now(UTC).replace(microsecond=0),
        time_source=TimeSource.DEVICE,
        device=DeviceIdentity(address="AA:BB:CC:00:00:02", name="Tensiomètre"),
    )


async def test_a_teleconsultation_from_preflight_to_fhir_export(tmp_path: Path, port: int) -> None:
    options = DemoOptions(
        kiosk_port=None,
        devices="direct",
        port=port,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        reading_interval=0.5,
        auto_checkin=True,
    )
    async with run_demo(options) as demo, chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(demo.doctor_link)

        # Preflight: devices listed, the microphone level moves (Chromium's fake microphone beeps).
        await wait_js(page, "() => !document.getElementById('join').disabled", what="the preflight to finish")
        assert await page.locator("#camera-select option").count() >= 1
        assert await page.locator("#mic-select option").count() >= 1
        await wait_js(page, "() => document.getElementById('mic-level').value > 0", what="a microphone level")
        assert await page.locator("body").get_attribute("data-state") == "preflight"
        await assert_accessible(page, "pro-preflight")
        await screenshot(page, "pro-1-preflight")

        # Waiting room.
        await page.get_by_role("button", name="Rejoindre").click()
        await wait_js(page, "() => !document.getElementById('admit').disabled", what="the citizen in the cabin")
        assert await page.locator("body").get_attribute("data-state") == "readyToAdmit"
        await assert_accessible(page, "pro-waiting")
        await screenshot(page, "pro-2-waiting")

        # In call: quality in plain words, figures on hover.
        await page.get_by_role("button", name="Faire entrer").click()
        await page.wait_for_selector("body[data-state=inCall]", timeout=20_000)
        await page.wait_for_selector("#quality[data-level]", timeout=15_000)
        level = await page.locator("#quality").get_attribute("data-level")
        assert level in ("good", "fair", "poor")
        figures = await page.locator("#quality").get_attribute("title") or ""
        assert "ms" in figures and "kbit/s" in figures

        # Mute and camera off act on the tracks the cabin receives.
        await page.get_by_role("button", name="Couper le micro").click()
        assert await page.get_by_role("button", name="Couper le micro").get_attribute("aria-pressed") == "true"
        assert await page.evaluate("window.cabine.local.getAudioTracks()[0].enabled") is False
        await page.get_by_role("button", name="Couper le micro").click()
        assert await page.evaluate("window.cabine.local.getAudioTracks()[0].enabled") is True
        await page.get_by_role("button", name="Couper la caméra").click()
        assert await page.evaluate("window.cabine.local.getVideoTracks()[0].enabled") is False
        await page.get_by_role("button", name="Couper la caméra").click()

        # Out-of-range flags: a high blood pressure is flagged, on the value the gateway sent.
        session = demo.gateway.medical_session()
        assert session is not None
        session.push_reading(blood_pressure(152, 95))
        await page.wait_for_selector("#vital-blood-pressure [data-flag='systolic-high']", timeout=10_000)
        assert await page.locator("#vital-blood-pressure [data-flag='diastolic-high']").count() == 1
        text = await page.locator("#vital-blood-pressure").inner_text()
        assert "152/95 mmHg" in text
        await page.wait_for_selector("#vital-body-temperature .value", timeout=10_000)
        await wait_js(page, "() => document.querySelector('#trend canvas') !== null", what="the trend chart")
        await assert_accessible(page, "pro-in-call")
        await screenshot(page, "pro-3-in-call")

        # The doctor asks for a measurement: the gateway receives the request.
        await page.get_by_role("button", name="Demander une mesure : Poids").click()
        await wait_until(
            lambda: "body-weight" in demo.gateway.measurement_requests,
            timeout=10,
            what="the request to reach the gateway",
        )

        # End: a printable summary and the FHIR bundle, built on the cabin and sent peer to peer.
        sent_before_end = len(demo.thermometer.sent) if demo.thermometer else 0
        assert sent_before_end > 0
        await page.get_by_role("button", name="Terminer").click()
        await page.wait_for_selector("body[data-state=ended]", timeout=15_000)
        assert await page.locator("#summary-table tbody tr").count() >= 2
        await assert_accessible(page, "pro-ended")
        await screenshot(page, "pro-4-ended")
        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Télécharger les mesures (FHIR)").click()
        download = await download_info.value
        bundle_path = tmp_path / "bundle.json"
        await download.save_as(bundle_path)
        bundle = json.loads(bundle_path.read_text())
        from fhir.resources.R4B.bundle import Bundle

        parsed = Bundle.model_validate(bundle)
        codes = {c.code for e in parsed.entry or [] for c in e.resource.code.coding}  # type: ignore[union-attr]
        assert {"8310-5", "85354-9"} <= codes
        await page.emulate_media(media="print")
        await page.pdf(path=str(ARTIFACTS / "pro-summary.pdf"))
        assert await page.locator("#controls").is_hidden()
        # Nothing about the citizen stays on the cabin PC after the consultation.
        await wait_until(lambda: not demo.gateway.sessions, timeout=10, what="the call to end on the gateway")
        await wait_until(
            lambda: demo.gateway.pending_readings(demo.appointment.id) == 0,
            timeout=10,
            what="the readings to be forgotten",
        )


async def test_a_bank_adviser_gets_the_same_console_without_anything_medical(tmp_path: Path, port: int) -> None:
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
        page = await browser.new_page()
        await page.goto(demo.doctor_link)
        await page.get_by_role("button", name="Rejoindre").click()
        await page.get_by_role("button", name="Faire entrer").click()
        await page.wait_for_selector("body[data-state=inCall]", timeout=20_000)
        assert await page.locator("#vitals").is_hidden()
        assert await page.get_by_role("button", name="Couper le micro").is_visible()
        await assert_accessible(page, "bank-in-call")
        await screenshot(page, "bank-in-call")
        await page.get_by_role("button", name="Terminer").click()
        await page.wait_for_selector("body[data-state=ended]", timeout=15_000)
        assert await page.locator("#export").is_hidden()
        assert await page.locator("#summary").is_hidden()
        await assert_accessible(page, "bank-ended")


async def test_english_and_a_refused_link(tmp_path: Path, port: int) -> None:
    options = DemoOptions(port=port, data_dir=tmp_path / "data", ice_addresses=("127.0.0.1",), kiosk_port=None)
    async with run_demo(options) as demo, chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto(demo.doctor_link)
        await page.get_by_role("button", name="English").click()
        await page.get_by_role("button", name="Join").wait_for()
        assert await page.locator("html").get_attribute("lang") == "en"
        await assert_accessible(page, "pro-preflight-en")
        response = await page.goto(demo.doctor_link + "x")
        assert response is not None and response.status == 401
        await assert_accessible(page, "pro-refused")
        await screenshot(page, "pro-refused")


# A browser that decodes none of the cabin's video codecs: the offer it receives names them under a codec it does
# not know, as happens with a browser built without VP8 and H264, so it rejects the video (port 0 in its answer).
WITHOUT_VIDEO_CODECS = """
const original = RTCPeerConnection.prototype.setRemoteDescription;
RTCPeerConnection.prototype.setRemoteDescription = function (description) {
  if (description && description.type === "offer") {
    const sdp = description.sdp.replace(/ (VP8|H264)\\/90000/g, " X-UNKNOWN/90000");
    return original.call(this, { type: description.type, sdp });
  }
  return original.call(this, description);
};
"""


async def test_a_browser_without_the_cabins_video_codecs_is_told_what_to_do(tmp_path: Path, port: int) -> None:
    options = DemoOptions(
        kiosk_port=None,
        devices="none",
        port=port,
        data_dir=tmp_path / "data",
        ice_addresses=("127.0.0.1",),
        appointment_kind=AppointmentKind.BANK,
        auto_checkin=True,
    )
    async with run_demo(options) as demo, chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.add_init_script(WITHOUT_VIDEO_CODECS)
        await page.goto(demo.doctor_link)
        await page.get_by_role("button", name="Rejoindre").click()
        await page.get_by_role("button", name="Faire entrer").click()
        # Not a black screen and a wait: the call runs with sound, and the status says why there is no picture.
        await page.wait_for_selector("body[data-state=noCabinVideo]", timeout=20_000)
        status = await page.locator("#status").inner_text()
        assert "votre navigateur ne sait pas afficher la vidéo de la cabine" in status
        assert "Chrome, Edge ou Firefox" in status
        session = next(iter(demo.gateway.sessions.values()))
        await wait_until(
            lambda: session.stats.audio_frames_received > 50, timeout=10, what="the professional's sound at the cabin"
        )
        await assert_accessible(page, "pro-no-cabin-video")
