"""Documents for the tests of paper in the cabin."""

from __future__ import annotations

import io

import pypdf


def blank_pdf(pages: int = 3, *, width: float = 595, height: float = 842) -> bytes:
    """A PDF of `pages` blank pages (A4 by default, in points)."""
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=width, height=height)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
