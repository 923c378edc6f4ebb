"""A document asked of the citizen, in real headless Chromium (both pages) against the demo: the adviser asks, the
cabin screen guides, SANE's test scanner scans (the demo's scanner, said so), the citizen sees the image and sends
it, and the console downloads exactly what was scanned; then a photo with the cabin's camera, started again and
declined; then a request withdrawn. Nothing of it stays in the cabin's memory after the appointment."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cabine.demo.run import run_demo
from gateway.documents.check import check_document
from signaling.protocol import AppointmentKind
from tests.browser import chromium
from tests.conftest import need_tool
from tests.kiosk.conftest import check_state
from tests.kiosk.test_cabin_screen_browser import in_call, options

pytestmark = pytest.mark.timeout(180)


async def test_a_document_asked_scanned_photographed_and_received(tmp_path: Path, port: int) -> None:
    need_tool("scanimage", "sane-utils")
    demo_options = replace(options(tmp_path, port), appointment_kind=AppointmentKind.BANK, devices="none")
    async with run_demo(demo_options) as demo, chromium(tmp_path / "profile") as browser:
        cabin, adviser = await in_call(browser, demo)
        gateway = demo.gateway
        asked = cabin.locator("#asked")
        await adviser.locator("#ask-label").wait_for(timeout=20_000)

        # The adviser asks; the cabin screen says who asks for what, and how.
        await adviser.locator("#ask-label").fill("Justificatif de domicile")
        await adviser.get_by_role("button", name="Demander", exact=True).click()
        await asked.get_by_text("Dr Demo vous demande : Justificatif de domicile").wait_for(timeout=15_000)
        await asked.get_by_text("Posez-le sur la vitre du scanner").wait_for()
        await asked.get_by_text("Démonstration : scanner de test").wait_for()
        await adviser.get_by_text("Justificatif de domicile : la cabine guide la personne").wait_for(timeout=10_000)
        await check_state(cabin, "cabin-asked")

        # Scanned: the citizen sees the page before anything leaves.
        await asked.get_by_role("button", name="Scanner").click()
        await cabin.wait_for_function(
            "() => { const i = document.getElementById('asked-image'); return !i.hidden && i.complete"
            " && i.naturalWidth > 300; }",
            timeout=60_000,
        )
        await adviser.get_by_text("la personne vérifie l'image avant de l'envoyer").wait_for(timeout=10_000)
        held = gateway.documents[demo.appointment.id].request
        assert held is not None and held.image is not None
        scanned = held.image
        assert await adviser.locator("#docs-asked a.download").count() == 0, "nothing leaves before the citizen agrees"
        await check_state(cabin, "cabin-asked-captured")

        await asked.get_by_role("button", name="Envoyer").click()
        await asked.get_by_text("Dr Demo a bien reçu votre document.").wait_for(timeout=20_000)
        link = adviser.locator("#docs-asked li[data-state=received] a.download")
        await link.wait_for(timeout=10_000)
        async with adviser.expect_download() as waiting:
            await link.click()
        download = await waiting.value
        assert download.suggested_filename == "Justificatif de domicile.png"
        saved = tmp_path / "received.png"
        await download.save_as(saved)
        assert saved.read_bytes() == scanned, "the console has exactly the page the citizen saw"
        assert check_document(scanned, "image/png").kind == "image"
        assert held.image is None, "sent, then forgotten by the cabin"
        await check_state(adviser, "adviser-received-document")

        # A photo with the camera: the citizen starts again, then says they do not have it.
        await adviser.locator("#ask-label").fill("Relevé de compteur")
        await adviser.get_by_role("button", name="Demander", exact=True).click()
        await asked.get_by_text("Dr Demo vous demande : Relevé de compteur").wait_for(timeout=15_000)
        await asked.get_by_role("button", name="Photo").click()
        await asked.get_by_text("Ne bougez plus le document").wait_for()
        await cabin.wait_for_selector("#call.aiming")
        await check_state(cabin, "cabin-asked-aiming")
        await cabin.wait_for_function(
            "() => { const i = document.getElementById('asked-image'); return !i.hidden && i.complete"
            " && i.naturalWidth === 640; }",
            timeout=20_000,
        )
        photo = gateway.documents[demo.appointment.id].request
        assert photo is not None and photo.image is not None
        assert check_document(photo.image, "image/jpeg").width == 640, "the camera's full size"
        await cabin.get_by_role("button", name="Recommencer").click()
        await cabin.get_by_role("button", name="Je ne l'ai pas").click()
        await adviser.get_by_text("Relevé de compteur : la personne ne l'a pas").wait_for(timeout=10_000)
        await cabin.locator("#asked").wait_for(state="hidden")
        assert photo.image is None

        # Withdrawn by the adviser: the cabin screen lets it go.
        await adviser.locator("#ask-label").fill("Bulletin de salaire")
        await adviser.get_by_role("button", name="Demander", exact=True).click()
        await asked.get_by_text("Dr Demo vous demande : Bulletin de salaire").wait_for(timeout=15_000)
        await adviser.get_by_role("button", name="Annuler la demande").click()
        await cabin.locator("#asked").wait_for(state="hidden", timeout=10_000)
        await adviser.get_by_text("Bulletin de salaire : demande annulée").wait_for()

        await cabin.get_by_role("button", name="Terminer").click()
        await cabin.get_by_role("button", name="Oui, terminer").click()
        await cabin.wait_for_selector("body[data-state=ended]", timeout=20_000)
        assert demo.appointment.id not in gateway.documents, "nothing of the documents is kept"
        # What the adviser received is theirs: still there to download after the call.
        await adviser.locator("#paper a.download").wait_for(timeout=10_000)
