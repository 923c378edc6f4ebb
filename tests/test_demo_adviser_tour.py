"""An adviser tries the demo as a new user would: `cabine demo --kind bank` as a real process, the cabin screen and
the adviser's console in headless Chromium. They share their screen, send a 2-page contract that the citizen prints
on the demo's test printer (said so on the cabin screen), and ask for a proof of address that the citizen scans on
the demo's test scanner and sends back; the adviser downloads it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pypdf
import pytest

from gateway.documents.check import check_document
from tests.browser import chromium, wait_js
from tests.conftest import free_port, need_tool
from tests.paper import blank_pdf
from tests.test_demo_cli import read_until_link

pytestmark = pytest.mark.timeout(180)


async def test_an_adviser_shares_prints_and_receives_a_scan_in_the_demo(tmp_path: Path, port: int) -> None:
    need_tool("scanimage", "sane-utils")
    data = tmp_path / "data"
    contract = tmp_path / "contrat.pdf"
    contract.write_bytes(blank_pdf(2))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cabine", "demo", "--kind", "bank", "--port", str(port), "--data-dir", str(data),
        "--ice-address", "127.0.0.1", "--kiosk-port", str(free_port()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        lines = await read_until_link(process)
        screen_url = next(line for line in lines if line.startswith("Cabin screen: ")).split(": ", 1)[1]
        link = next(line for line in lines if line.startswith("Doctor link: ")).split(": ", 1)[1]
        async with chromium(tmp_path / "profile") as browser:
            cabin = await browser.new_page()
            await cabin.goto(screen_url)
            await cabin.get_by_role("button", name="Commencer").click()
            adviser = await browser.new_page()
            await adviser.goto(link)
            await wait_js(adviser, "() => !document.getElementById('join').disabled", what="the preflight")
            await adviser.get_by_role("button", name="Rejoindre").click()
            await adviser.get_by_role("button", name="Faire entrer").click()
            await cabin.wait_for_selector("body[data-state=in-call]", timeout=30_000)

            # The screen, shared and stopped.
            await adviser.get_by_role("button", name="Partager l'écran").click()
            await cabin.wait_for_selector("#stage.sharing #shared:not([hidden])", timeout=20_000)
            await adviser.get_by_role("button", name="Arrêter le partage").click()
            await cabin.wait_for_selector("#shared[hidden]", state="attached", timeout=15_000)

            # A 2-page contract, printed on the demo's test printer, which the cabin screen names as such.
            await adviser.locator("#send-doc").set_input_files(str(contract))
            documents = cabin.locator("#documents")
            await documents.get_by_text("1 sur 2").wait_for(timeout=20_000)
            tray = (data / "printed").resolve()
            await documents.get_by_text("Démonstration : imprimante de test.").wait_for()
            assert str(tray) in await documents.locator("#doc-note").inner_text()
            await documents.get_by_role("button", name="Imprimer").click()
            await adviser.get_by_text("contrat.pdf : imprimé dans la cabine").wait_for(timeout=30_000)
            (printed,) = tray.glob("*.pdf")
            assert len(pypdf.PdfReader(printed).pages) == 2

            # A proof of address, scanned on the demo's test scanner, checked by the citizen, sent, downloaded.
            await adviser.locator("#ask-label").fill("Justificatif de domicile")
            await adviser.get_by_role("button", name="Demander", exact=True).click()
            asked = cabin.locator("#asked")
            await asked.get_by_text("Démonstration : scanner de test").wait_for(timeout=15_000)
            await asked.get_by_role("button", name="Scanner").click()
            await asked.get_by_role("button", name="Envoyer").click(timeout=60_000)
            link_to_scan = adviser.locator("#docs-asked li[data-state=received] a.download")
            await link_to_scan.wait_for(timeout=20_000)
            async with adviser.expect_download() as waiting:
                await link_to_scan.click()
            saved = tmp_path / "scan.png"
            await (await waiting.value).save_as(saved)
            assert check_document(saved.read_bytes(), "image/png").kind == "image"
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0 and b"Traceback" not in stderr, stderr.decode()[-2000:]
