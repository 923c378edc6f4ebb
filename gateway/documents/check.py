"""Is a document one the cabin may show and print? Pure: bytes in, a verdict out.

A cabin is a public place and its printer costs paper: a document is refused, with a reason the professional reads,
when it is not what it says (a "PDF" that is not one), damaged, protected by a password, carries scripts, launch
actions or attached files, has too many pages or absurd page sizes, expands to more than MAX_EXPANDED_BYTES once
decompressed (a "PDF bomb"), or is an image whose declared size is huge (a "pixel flood"). Images are read from
their headers only; PDFs with pypdf, whose decoders stop at pypdf's own output limits (lowered here).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Final

import pypdf
from pypdf.errors import LimitReachedError, PyPdfError
from pypdf.generic import DictionaryObject, IndirectObject, PdfObject

from gateway.errors import GatewayError

MAX_PAGES: Final = 50
# Pages from a business card (about 150 points) to A0 (3,370 points); PDF's own limit is 14,400.
MIN_PAGE_POINTS: Final = 72.0
MAX_PAGE_POINTS: Final = 3400.0
MAX_EXPANDED_BYTES: Final = 64 * 1024 * 1024
MAX_IMAGE_PIXELS: Final = 40_000_000  # a 40 Mpx photo; a 1 GB bitmap declared in 30 bytes is refused
# Names a PDF uses for what a kiosk must never run or open.
_ACTIVE: Final = {
    "/JavaScript": "a script",
    "/JS": "a script",
    "/Launch": "an action that opens a program",
    "/EmbeddedFiles": "attached files",
    "/RichMedia": "embedded media",
    "/SubmitForm": "a form that sends data",
}

# pypdf's decoders stop at 75 MB of output by default: a cabin's document needs far less (for this check only).
_LIMITS: Final = {
    name: MAX_EXPANDED_BYTES
    for name in (
        "zlib_maximum_output_length",
        "lzw_maximum_output_length",
        "run_length_maximum_output_length",
        "jbig2_maximum_output_length",
        "brotli_maximum_output_length",
        "array_based_stream_maximum_output_length",
        "maximum_declared_stream_length",
    )
}


class DocumentRefused(GatewayError, ValueError):
    """The document cannot be shown or printed in the cabin; the message says why, in plain words."""


@dataclass(frozen=True, slots=True)
class Checked:
    """A document found fit: its kind, pages, and (for an image) its size in pixels."""

    kind: str  # "pdf" or "image"
    pages: int
    width: int | None = None
    height: int | None = None


def check_document(data: bytes, mime: str) -> Checked:
    """The verdict on a document of this MIME type.

    Raises:
        DocumentRefused: why the cabin will not show nor print it.
    """
    if mime == "application/pdf":
        return _pdf(data)
    if mime == "image/png":
        return _image(*_png_size(data))
    if mime == "image/jpeg":
        return _image(*_jpeg_size(data))
    raise DocumentRefused("only PDF, PNG and JPEG documents can be shown and printed in the cabin")


def _image(width: int, height: int) -> Checked:
    if width < 1 or height < 1:
        raise DocumentRefused("the image declares no size")
    if width * height > MAX_IMAGE_PIXELS:
        raise DocumentRefused(
            f"the image is too large ({width} x {height} pixels; at most {MAX_IMAGE_PIXELS // 1_000_000} million)"
        )
    return Checked("image", 1, width, height)


def _png_size(data: bytes) -> tuple[int, int]:
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR" or len(data) < 24:
        raise DocumentRefused("the file is not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """The frame size from the first SOF segment (the JPEG's markers are walked, nothing is decoded)."""
    if not data.startswith(b"\xff\xd8"):
        raise DocumentRefused("the file is not a JPEG image")
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF and at + 9 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # image data starts: no frame header before it
            break
        at += 2 + length
    raise DocumentRefused("the JPEG image is damaged (no frame size)")


def _active_content(reader: pypdf.PdfReader) -> str | None:
    """The first name of _ACTIVE found in the document's catalog, name tree or pages' actions, if any."""
    seen: set[int] = set()
    budget = 20_000  # objects visited, bounding a document built to make this walk long

    def walk(value: PdfObject | None, depth: int) -> str | None:
        nonlocal budget
        if value is None or depth > 12 or budget <= 0:
            return None
        budget -= 1
        if isinstance(value, IndirectObject):
            if value.idnum in seen:
                return None
            seen.add(value.idnum)
            return walk(value.get_object(), depth + 1)
        if isinstance(value, DictionaryObject):
            for key, item in value.items():
                if key in _ACTIVE:
                    return str(key)
                if key in ("/Parent", "/P"):
                    continue
                found = walk(item, depth + 1)
                if found:
                    return found
        elif isinstance(value, list):
            for item in value:
                found = walk(item, depth + 1)
                if found:
                    return found
        return None

    root = reader.trailer.get("/Root")
    return walk(root, 0)


def _pdf(data: bytes) -> Checked:
    if b"%PDF-" not in data[:1024]:
        raise DocumentRefused("the file is not a PDF")
    with pypdf.apply_configuration(None, **_LIMITS):
        return _read_pdf(data)


def _read_pdf(data: bytes) -> Checked:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise DocumentRefused("the PDF is protected by a password: send it without protection")
        count = len(reader.pages)
        if count == 0:
            raise DocumentRefused("the PDF has no page")
        if count > MAX_PAGES:
            raise DocumentRefused(f"the PDF has {count} pages; at most {MAX_PAGES} are shown and printed in a cabin")
        active = _active_content(reader)
        if active is not None:
            raise DocumentRefused(f"the PDF contains {_ACTIVE[active]}, which a cabin never opens: send it without")
        expanded = 0
        for number, page in enumerate(reader.pages, start=1):
            box = page.mediabox
            width, height = float(box.width), float(box.height)
            if not (MIN_PAGE_POINTS <= width <= MAX_PAGE_POINTS and MIN_PAGE_POINTS <= height <= MAX_PAGE_POINTS):
                raise DocumentRefused(f"page {number} has an unusable size ({width:.0f} x {height:.0f} points)")
            contents = page.get_contents()
            expanded += 0 if contents is None else len(contents.get_data())
            if expanded > MAX_EXPANDED_BYTES:
                raise DocumentRefused("the PDF expands to too much data once decompressed (a PDF bomb?)")
    except DocumentRefused:
        raise
    except LimitReachedError:
        raise DocumentRefused("the PDF expands to too much data once decompressed (a PDF bomb?)") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError, struct.error):
        raise DocumentRefused("the PDF is damaged and cannot be read") from None
    return Checked("pdf", count)
