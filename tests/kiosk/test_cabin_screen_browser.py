"""The cabin screen in real headless Chromium, state by state, against the real demo: signaling, gateway, doctor page.

The professional is the real doctor page in a second tab (Chromium's fake camera and microphone); the cabin screen
receives their video and audio from the gateway over a loopback peer connection. Every state is checked with
axe-core (no serious or critical WCAG 2.1 AA violation) and saved as a screenshot in test-artifacts/.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Page

from cabine.demo.run import DemoOptions, RunningDemo, run_demo
from tests.browser import chromium, wait_js
from tests.conftest import free_port, wait_until
from tests.kiosk.conftest import FedReadings, check_state, temperature

pytestmark = pytest.mark.timeout(120)

# Frames decoded by the cabin screen for each of its videos, and the audio it played (from the loopback peer).
MEDIA_JS = """async () => {
  const pc = window.cabine.pc;
  if (!pc || !window.cabine.mids) return null;
  const byMid = {};
  (await pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp") byMid[s.mid] = s; });
  const mids = window.cabine.mids;
  const video = (name) => (byMid[mids[name]] || {}).framesDecoded || 0;
  const audio = byMid[mids.professional_audio] || {};
  return {
    professional: video("professional_video"),
    self: video("self_video"),
    audioSamples: audio.totalSamplesReceived || 0,
    audioEnergy: audio.totalAudioEnergy || 0,
    width: document.getElementById("professional").videoWidth,
    selfWidth: document.getElementById("self").videoWidth,
  };
}"""


async def media(page: Page) -> dict[str, Any]:
    result: dict[str, Any] | None = await page.evaluate(MEDIA_JS)
    assert result is not None, "the cabin screen has no media connection"
    return result


async def spoken(page: Page, text: str) -> None:
    await wait_js(page, f"() => window.cabineSpoken.some((t) => t.includes({text!r}))", what=f"speech {text!r}")


async def doctor_joins(browser: BrowserContext, demo: RunningDemo) -> Page:
    doctor = await browser.new_page()
    await doctor.goto(demo.doctor_link)
    await wait_js(doctor, "() => !document.getElementById('join').disabled", what="the doctor's preflight")
    await doctor.get_by_role("button", name="Rejoindre").click()
    return doctor


async def in_call(browser: BrowserContext, demo: RunningDemo) -> tuple[Page, Page]:
    """The cabin screen and the professional's page, the citizen checked in and admitted: (cabin, professional)."""
    assert demo.kiosk is not None
    cabin = await browser.new_page()
    await cabin.goto(demo.kiosk.url)
    await cabin.get_by_role("button", name="Commencer").click()
    professional = await doctor_joins(browser, demo)
    await professional.get_by_role("button", name="Faire entrer").click()
    await cabin.wait_for_selector("body[data-state=in-call]", timeout=20_000)
    return cabin, professional


def options(tmp_path: Path, port: int) -> DemoOptions:
    return DemoOptions(port=port, data_dir=tmp_path / "data", ice_addresses=("127.0.0.1",), kiosk_port=free_port())


def operator_session(demo: RunningDemo) -> aiohttp.ClientSession:
    context = ssl.create_default_context(cafile=str(demo.certificates.ca_cert))
    return aiohttp.ClientSession(
        base_url=demo.base_url,
        headers={"Authorization": f"Bearer {demo.operator_key}"},
        connector=aiohttp.TCPConnector(ssl=context),
    )


async def test_a_teleconsultation_seen_from_the_cabin(tmp_path: Path, port: int) -> None:
    readings = FedReadings()
    triggered: list[str] = []

    async def trigger(kind: str) -> None:
        triggered.append(kind)

    async with (
        run_demo(options(tmp_path, port), readings=readings, trigger=trigger) as demo,
        chromium(tmp_path / "profile") as browser,
        operator_session(demo) as operator,
    ):
        assert demo.kiosk is not None
        gateway, appointment = demo.gateway, demo.appointment
        cabin = await browser.new_page()
        await cabin.goto(demo.kiosk.url)

        # Idle: what the cabin is and how to start, in French first; the citizen is not yet checked in.
        await cabin.wait_for_selector("body[data-state=idle]")
        assert await cabin.get_by_role("heading", name="Bonjour").is_visible()
        assert "Téléconsultation avec Dr Demo" in await cabin.locator("#appointment").inner_text()
        await spoken(cabin, "Appuyez sur le bouton vert")
        assert gateway.checked_in == set()
        await check_state(cabin, "cabin-1-idle", docs="cabin-idle")

        # English on request, for the screen and the voice; back to French.
        await cabin.get_by_role("button", name="English").click()
        await cabin.get_by_role("heading", name="Hello").wait_for()
        assert await cabin.get_attribute("html", "lang") == "en"
        assert await cabin.get_by_role("button", name="Start").is_visible()
        await spoken(cabin, "Press the green “Start” button.")
        await check_state(cabin, "cabin-1-idle-en")
        await cabin.get_by_role("button", name="Français").click()
        await cabin.get_by_role("heading", name="Bonjour").wait_for()

        # Waiting: the citizen pressed "start"; the professional is not there yet.
        await cabin.get_by_role("button", name="Commencer").click()
        await cabin.wait_for_selector("body[data-state=waiting][data-detail=professional-away]")
        assert gateway.checked_in == {appointment.id}
        await spoken(cabin, "Dr Demo va arriver")
        await check_state(cabin, "cabin-2-waiting", docs="cabin-waiting")

        # The doctor joins and admits: in call, with the doctor's video and voice decoded in the cabin screen.
        doctor = await doctor_joins(browser, demo)
        await cabin.wait_for_selector("body[data-state=waiting][data-detail=professional-here]")
        await doctor.get_by_role("button", name="Faire entrer").click()
        await cabin.wait_for_selector("body[data-state=in-call]", timeout=20_000)
        await wait_js(
            cabin,
            f"async () => {{ const m = await ({MEDIA_JS})(); "
            "return m && m.professional > 10 && m.self > 10 && m.audioSamples > 48000; }",
            timeout=20,
            what="the doctor's video and audio, and the citizen's own image, in the cabin screen",
        )
        seen = await media(cabin)
        assert seen["width"] == 640, "the doctor's camera (Chromium's fake one) is 640 wide"
        assert seen["selfWidth"] == 320, "the citizen's own image: the cabin camera's at half size, for a corner"
        # The doctor's picture reached the screen as the doctor's browser encoded it: the gateway decoded nothing.
        session = gateway.sessions[appointment.id]
        assert session.remote_video is not None and session.remote_video.frames > 10
        assert "video" not in session.remote
        assert seen["audioEnergy"] > 0, "the doctor's microphone (a beep) should be audible, not silence"
        await check_state(cabin, "cabin-3-in-call")

        # Guided measurement: pictogram, one sentence, spoken; the demo's device is asked to measure.
        await doctor.get_by_role("button", name="Demander une mesure : Température").click()
        await cabin.wait_for_selector("#measure[data-mode=prompt][data-kind=body-temperature]")
        assert await cabin.get_by_role("img", name="Thermomètre").is_visible()
        await spoken(cabin, "Prenez le thermomètre et mesurez votre température.")
        assert triggered == ["body-temperature"]
        assert gateway.prompt is not None and gateway.prompt.kind == "body-temperature"
        await check_state(cabin, "cabin-4-measure", docs="cabin-measure")

        # The reading arrives: shown large to the citizen, sent to the doctor, the request is closed.
        readings.queue.put_nowait(temperature(37.2))
        await cabin.wait_for_selector("#measure[data-mode=reading]")
        assert await cabin.locator("#reading").inner_text() == "37,2 °C"
        await spoken(cabin, "Le médecin a reçu votre mesure")
        assert gateway.prompt is None
        await check_state(cabin, "cabin-5-reading")

        # Call for help: signaling accepts it, the operator sees it (API and page) and resolves it.
        await cabin.get_by_role("button", name="Appeler à l'aide").click()
        await cabin.locator("#help-text", has_text="Quelqu'un va vous aider").wait_for()
        await spoken(cabin, "Quelqu'un va vous aider")
        async with operator.get("/api/v1/alerts") as response:
            assert response.status == 200
            body = await response.json()
        [alert] = body["alerts"]
        assert (alert["cabin_id"], alert["appointment_id"], alert["open"]) == ("demo-cabin", appointment.id, True)
        assert "demo-cabin" in body["online_cabins"]
        await check_state(cabin, "cabin-6-help")
        desk = await browser.new_page()
        await desk.goto(f"{demo.base_url}/operator/")
        await desk.get_by_label("Clé d'API opérateur").fill(demo.operator_key)
        await desk.get_by_role("button", name="Se connecter").click()
        card = desk.locator(f"li.alert[data-alert-id={alert['id']}]")
        await card.wait_for()
        # The cabin by its name, which says it is one ("Cabine de démonstration"): not "cabine Cabine de...".
        assert "Appel à l'aide : Cabine de démonstration" in await card.inner_text()
        assert await desk.locator("tr[data-cabin-id=demo-cabin][data-online=true]").is_visible()
        await check_state(desk, "operator-1-alert")
        await card.get_by_role("button", name="Résolu").click()
        await desk.get_by_text("Aucun appel à l'aide.").wait_for()
        await cabin.wait_for_selector("#help-banner", state="hidden")
        assert gateway.help is None
        await desk.close()

        # Reconnecting: the doctor's connection drops; the screen says they will come back, and they do.
        first_pc = await cabin.evaluate("window.cabine.pc !== null")
        assert first_pc
        await doctor.close()
        await cabin.wait_for_selector("body[data-state=reconnecting][data-detail=professional]", timeout=15_000)
        await spoken(cabin, "Dr Demo va revenir")
        await check_state(cabin, "cabin-7-reconnecting")
        doctor = await doctor_joins(browser, demo)
        await cabin.wait_for_selector("body[data-state=in-call]", timeout=20_000)
        await wait_js(
            cabin,
            f"async () => {{ const m = await ({MEDIA_JS})(); return m && m.professional > 5; }}",
            timeout=20,
            what="the doctor's video again, on a new loopback connection",
        )

        # End: the citizen confirms; nothing about them is kept; back to the start in French.
        await cabin.get_by_role("button", name="Terminer").click()
        await cabin.get_by_role("button", name="Non, continuer").wait_for()
        await check_state(cabin, "cabin-8-confirm-end")
        await cabin.get_by_role("button", name="Oui, terminer").click()
        await cabin.wait_for_selector("body[data-state=ended]")
        await spoken(cabin, "Rien de ce qui vous concerne n'est gardé sur cet ordinateur.")
        await wait_until(lambda: not gateway.sessions, timeout=10, what="the call to end on the gateway")
        assert gateway.checked_in == set()
        assert gateway.latest_reading == {}
        assert gateway.pending_readings(appointment.id) == 0
        assert await cabin.evaluate("window.cabine.pc") is None
        await check_state(cabin, "cabin-9-ended", docs="cabin-ended")
        await cabin.get_by_role("button", name="Retour à l'accueil").click()
        await cabin.wait_for_selector("body[data-state=idle]")


async def test_the_professional_ends_the_appointment(tmp_path: Path, port: int) -> None:
    async with run_demo(options(tmp_path, port)) as demo, chromium(tmp_path / "profile") as browser:
        cabin, doctor = await in_call(browser, demo)
        await doctor.get_by_role("button", name="Terminer").click()
        # The citizen is done: checked out for them, their readings forgotten, the screen says so.
        await cabin.wait_for_selector("body[data-state=ended][data-detail=professional]", timeout=15_000)
        await wait_until(lambda: not demo.gateway.checked_in, timeout=10, what="the citizen to be checked out")
        assert demo.gateway.pending_readings(demo.appointment.id) == 0
        await spoken(cabin, "Vous pouvez sortir de la cabine.")
