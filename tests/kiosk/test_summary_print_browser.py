"""The doctor's papers for the patient, in real headless Chromium (both pages) against the demo and its test printer
(which says so on the cabin screen): the summary of the consultation, made as a PDF in the doctor's browser with the
readings and the doctor's conclusion, and a prescription the doctor attaches, each shown on the cabin screen and
printed on the patient's press."""

from __future__ import annotations

from pathlib import Path

import pypdf
import pytest

from cabine.demo.run import run_demo
from tests.browser import chromium
from tests.kiosk.conftest import FedReadings, check_state, temperature
from tests.kiosk.test_cabin_screen_browser import in_call, options
from tests.paper import blank_pdf

pytestmark = pytest.mark.timeout(150)


def text_of(pdf: Path) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(pdf).pages)


async def test_the_summary_and_a_prescription_printed_in_the_cabin(tmp_path: Path, port: int) -> None:
    readings = FedReadings()
    prescription = tmp_path / "ordonnance.pdf"
    prescription.write_bytes(blank_pdf(1))
    tray = tmp_path / "data" / "printed"
    async with run_demo(options(tmp_path, port), readings=readings) as demo, chromium(tmp_path / "profile") as browser:
        cabin, doctor = await in_call(browser, demo)
        readings.queue.put_nowait(temperature(38.4))
        await doctor.wait_for_function("() => window.cabine.panel.history.length === 1", timeout=20_000)

        await doctor.locator("#summary-note").fill("Boire beaucoup d'eau ; paracétamol si la fièvre dépasse 38,5 °C.")
        await doctor.get_by_role("button", name="Envoyer le compte rendu à imprimer").click()
        await doctor.get_by_text("Compte rendu de consultation.pdf : affiché dans la cabine").wait_for(timeout=15_000)
        documents = cabin.locator("#documents")
        await documents.get_by_text("Document de Dr Demo : Compte rendu de consultation.pdf").wait_for(timeout=15_000)
        await cabin.wait_for_function(
            "() => window.cabineSpoken.some((s) => s.startsWith('Dr Demo vous envoie le compte rendu'))"
        )
        tray_words = f"Démonstration : imprimante de test. Les pages imprimées sont des fichiers dans {tray}"
        await documents.get_by_text(tray_words).wait_for()
        await check_state(cabin, "cabin-summary")

        await documents.get_by_role("button", name="Imprimer").click()
        await documents.get_by_text("C'est imprimé : prenez vos feuilles dans l'imprimante.").wait_for(timeout=30_000)
        await doctor.get_by_text("Compte rendu de consultation.pdf : imprimé dans la cabine").wait_for(timeout=10_000)
        (summary,) = tray.glob("*.pdf")
        words = text_of(summary)
        assert "Compte rendu de téléconsultation" in words
        assert "Température" in words and "38,4" in words
        assert "Boire beaucoup d'eau ; paracétamol si la fièvre dépasse 38,5 °C." in words

        await doctor.locator("#send-prescription").set_input_files(str(prescription))
        await documents.get_by_text("Document de Dr Demo : Ordonnance - ordonnance.pdf").wait_for(timeout=15_000)
        await cabin.wait_for_function(
            "() => window.cabineSpoken.some((s) => s.startsWith('Dr Demo vous envoie votre ordonnance'))"
        )
        await documents.get_by_role("button", name="Imprimer").click()
        await doctor.get_by_text("Ordonnance - ordonnance.pdf : imprimé dans la cabine").wait_for(timeout=30_000)
        assert len(list(tray.glob("*.pdf"))) == 2
        await check_state(doctor, "doctor-papers")
