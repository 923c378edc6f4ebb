"""A document's page as a PNG the cabin screen can show, made in memory by poppler's `pdftoppm`.

The PDF goes to pdftoppm's standard input and the page comes back on its standard output: nothing is written to
disk. Only documents already found fit (gateway.documents.check) are rendered; pdftoppm still runs with a time limit
and its output is bounded, as for any program reading a stranger's file.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from gateway.errors import GatewayError

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
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise RenderError("pdftoppm is not installed (Debian package poppler-utils)") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(pdf), RENDER_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise RenderError(f"page {page} took more than {RENDER_TIMEOUT:g} s to draw") from None
    if proc.returncode != 0 or not out.startswith(b"\x89PNG"):
        detail = err.decode(errors="replace").strip().splitlines()
        raise RenderError(f"page {page} cannot be drawn" + (f": {detail[-1]}" if detail else ""))
    if len(out) > MAX_PAGE_PNG:
        raise RenderError(f"page {page} makes an image larger than {MAX_PAGE_PNG >> 20} MB")
    return out
