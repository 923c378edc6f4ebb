"""The demo cabin's paper: its test printer writes what it prints into a folder (and says where), a folder it cannot
write is a printer error in plain words; its scanner is SANE's test backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cabine.demo.paper import TrayPrinter, sane_test_scanner
from gateway.documents.check import check_document
from gateway.documents.printer import PrintError, PrintProblem
from tests.conftest import need_tool
from tests.paper import blank_pdf


async def test_the_test_printer_prints_into_its_tray(tmp_path: Path) -> None:
    printer = TrayPrinter(tmp_path / "printed")
    assert printer.test_tray == str((tmp_path / "printed").resolve())
    await printer.print_document(blank_pdf(2), "Contrat d'énergie.pdf")
    await printer.print_document(b"\x89PNG\r\n\x1a\n...", "../../scan")
    pdf, image = sorted((tmp_path / "printed").iterdir())
    assert pdf.name.endswith("-001-Contrat-d-énergie.pdf") and pdf.read_bytes() == blank_pdf(2)
    assert image.name.endswith("-002-scan.png") and image.parent == tmp_path / "printed"


async def test_a_tray_it_cannot_write_is_a_stopped_printer(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "printed"
        blocker.write_text("a file where the folder should be")
    else:
        blocker = tmp_path / "locked" / "printed"
        blocker.parent.mkdir(mode=0o500)
    with pytest.raises(PrintError) as failed:
        await TrayPrinter(blocker).print_document(blank_pdf(1), "a.pdf")
    assert failed.value.problem is PrintProblem.STOPPED and "test printer" in str(failed.value)


async def test_the_demo_scanner_is_sane_test_backend(tmp_path: Path) -> None:
    need_tool("scanimage", "sane-utils")
    scanner = sane_test_scanner(tmp_path / "sane.d")
    assert scanner is not None and scanner.test
    scan = await scanner.scan()
    assert check_document(scan.png, "image/png").kind == "image"
