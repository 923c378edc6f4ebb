"""A document from the adviser to the cabin, printed on the citizen's press, in real headless Chromium (both pages)
against the demo, with a real CUPS queue printing to PDF: a 3-page PDF shown page by page, "Imprimer", 3 pages out,
both screens told; a file that is not a PDF refused on the console with the reason; nothing left in the spool."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pypdf
import pytest

from cabine.demo.run import run_demo
from signaling.protocol import AppointmentKind
from tests.browser import chromium
from tests.cups import PrivateCups
from tests.kiosk.conftest import check_state
from tests.kiosk.test_cabin_screen_browser import in_call, options
from tests.paper import blank_pdf

pytestmark = pytest.mark.timeout(150)


async def test_a_document_shown_and_printed_in_the_cabin(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract, fake = tmp_path / "contrat.pdf", tmp_path / "facture.pdf"
    contract.write_bytes(blank_pdf(3))
    fake.write_bytes(b"MZ\x90\x00 a program named like a PDF")
    async with PrivateCups() as cups:
        monkeypatch.setenv("CUPS_SERVER", cups.server)
        demo_options = replace(
            options(tmp_path, port), appointment_kind=AppointmentKind.ENERGY, printer_queue=cups.queue, devices="none"
        )
        async with run_demo(demo_options) as demo, chromium(tmp_path / "profile") as browser:
            cabin, adviser = await in_call(browser, demo)
            send = adviser.get_by_role("button", name="Envoyer un document")
            await send.wait_for(timeout=20_000)

            await adviser.locator("#send-doc").set_input_files(str(contract))
            await adviser.get_by_text("contrat.pdf : affiché dans la cabine").wait_for(timeout=15_000)
            # The cabin shows it, a page at a time, legible; the citizen turns the pages.
            panel = cabin.locator("#documents")
            await panel.wait_for(timeout=15_000)
            await cabin.get_by_text("1 sur 3").wait_for()
            await cabin.wait_for_function(
                "() => { const i = document.getElementById('doc-page'); return i.complete && i.naturalWidth > 800; }"
            )
            await cabin.get_by_role("button", name="Page suivante").click()
            await cabin.get_by_text("2 sur 3").wait_for()
            await check_state(cabin, "cabin-document")
            # Larger, to read it from the chair: the page takes the call's whole width, and scrolls.
            await cabin.get_by_role("button", name="Agrandir").first.click()
            await cabin.wait_for_function("() => document.getElementById('doc-page').clientWidth > 700")
            await check_state(cabin, "cabin-document-larger")
            await cabin.get_by_role("button", name="Réduire").first.click()
            await cabin.wait_for_function("() => document.getElementById('doc-page').clientWidth < 700")

            await cabin.get_by_role("button", name="Imprimer").click()
            await cabin.get_by_text("C'est imprimé : prenez vos feuilles dans l'imprimante.").wait_for(timeout=30_000)
            await adviser.get_by_text("contrat.pdf : imprimé dans la cabine").wait_for(timeout=10_000)
            (output,) = cups.printed()
            assert len(pypdf.PdfReader(output).pages) == 3
            assert cups.spooled() == []
            await check_state(cabin, "cabin-document-printed")

            await adviser.locator("#send-doc").set_input_files(str(fake))
            await adviser.get_by_text("facture.pdf : refusé (the file is not a PDF)").wait_for(timeout=15_000)
            await check_state(adviser, "adviser-documents")
            assert len(cups.printed()) == 1, "a refused file never reaches the printer"
