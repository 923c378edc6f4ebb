"""A document's page as a PNG the cabin screen can show, made in memory by poppler's `pdftoppm`.

The PDF goes to pdftoppm's standard input and the page comes back on its standard output: nothing is written to
disk. Only documents already found fit (gateway.documents.check) are rendered; pdftoppm still runs with a time limit
and its output is bounded, as for any program reading a stranger's file.
"""

from __future__ import annotations

from typing import Final

from gateway.errors import GatewayError
from gateway.program import ProgramMissing, ProgramOutputTooLarge, ProgramTimeout, run_program

# The cabin screen is about 1280 px wide: an A4 page at 110 dpi is 910 x 1286 px, legible from the chair.
DPI: Final = 110
RENDER_TIMEOUT: Final = 20.0
MAX_PAGE_PNG: Final = 32 * 1024 * 1024


class RenderError(GatewayError, RuntimeError):
    """A page could not be made into an image (poppler missing, the page absent, or the document too hard)."""


async def render_page(pdf: bytes, page: int, *, dpi: int = DPI) -> bytes:
    """Page `page` (from 1) of `pdf` as PNG bytes.

    Raises:
        RenderError: why not.
    """
    if page < 1:
        raise RenderError(f"pages are numbered from 1, not {page}")
    if not 30 <= dpi <= 300:
        raise RenderError(f"a resolution from 30 to 300 dpi, not {dpi}")
    # The PDF on stdin ("-") and no output root: the page goes to stdout.
    argv = ["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile", "-"]
    try:
        done = await run_program(argv, stdin=pdf, timeout=RENDER_TIMEOUT, max_stdout=MAX_PAGE_PNG)
    except ProgramMissing:
        raise RenderError("pdftoppm is not installed (Debian package poppler-utils)") from None
    except ProgramTimeout:
        raise RenderError(f"page {page} took more than {RENDER_TIMEOUT:g} s to draw") from None
    except ProgramOutputTooLarge:
        raise RenderError(f"page {page} makes an image larger than {MAX_PAGE_PNG >> 20} MB") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(f"page {page} cannot be drawn" + (f": {detail[-1]}" if detail else ""))
    return done.stdout
