"""Printing through a real CUPS scheduler (private, with a cups-pdf queue): the pages that come out, nothing left
in the spool, and plain reasons when there is no printer or it is stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pypdf
import pytest

from gateway.documents.printer import CupsPrinter, PrintError, PrintProblem
from tests.cups import PrivateCups
from tests.paper import blank_pdf

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def cups() -> AsyncIterator[PrivateCups]:
    async with PrivateCups() as running:
        yield running


async def test_a_three_page_pdf_comes_out_as_three_pages_and_leaves_nothing(cups: PrivateCups) -> None:
    printer = CupsPrinter(cups.queue, server=cups.server)
    printed = await printer.print_document(blank_pdf(3), "Relevé de compte")
    (output,) = cups.printed()
    assert len(pypdf.PdfReader(output).pages) == 3
    assert printed.seconds > 0
    assert cups.spooled() == [], "the job's files are purged from CUPS's spool"


async def test_no_printer_and_a_stopped_printer_say_so(cups: PrivateCups) -> None:
    with pytest.raises(PrintError) as missing:
        await CupsPrinter("no-such-queue", server=cups.server).print_document(blank_pdf(1), "x")
    assert missing.value.problem is PrintProblem.NO_PRINTER
    await cups.run("cupsdisable", "-r", "out of paper", cups.queue)
    with pytest.raises(PrintError) as stopped:
        await CupsPrinter(cups.queue, server=cups.server).print_document(blank_pdf(1), "x")
    assert stopped.value.problem is PrintProblem.STOPPED and "out of paper" in stopped.value.detail
    assert cups.printed() == [] and cups.spooled() == []
