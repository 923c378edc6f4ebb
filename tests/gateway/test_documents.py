"""Documents in the cabin, the pure parts: the `documents` channel's protocol (chunks, limits, checksum) and the
check that refuses what a kiosk must not show nor print (not what it claims, damaged, password, scripts, too many
pages, absurd sizes, a PDF bomb, a pixel flood)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable

import pypdf
import pytest
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, TextStringObject

from gateway.documents.check import MAX_PAGES, DocumentRefused, check_document
from gateway.documents.desk import file_name
from gateway.documents.transfer import (
    CHUNK_BYTES,
    Acknowledged,
    Document,
    DocumentReceiver,
    DocumentState,
    RequestCancelled,
    Requested,
    Role,
    TransferError,
    announce,
    chunks,
    end,
    status,
)
from tests.paper import blank_pdf


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def send(receiver: DocumentReceiver, document_id: str, data: bytes, mime: str = "application/pdf") -> object:
    receiver.text(announce(document_id, "ordonnance.pdf", mime, data))
    for chunk in chunks(data):
        receiver.binary(chunk)
    return receiver.text(end(document_id))


def test_a_document_arrives_in_chunks_and_is_verified() -> None:
    data = blank_pdf(3) + b"%" + bytes(200_000)  # padded past three chunks
    receiver = DocumentReceiver()
    document = send(receiver, "doc_1", data)
    assert document is not None and document.data == data  # type: ignore[attr-defined]
    assert len(chunks(data)) == -(-len(data) // CHUNK_BYTES)
    assert json.loads(status("doc_1", DocumentState.PRINTED)) == {
        "v": 1,
        "type": "document-status",
        "id": "doc_1",
        "state": "printed",
        "reason": "",
    }


@pytest.mark.parametrize(
    ("announcement", "words"),
    [
        ({"size": 30_000_000}, "too large"),
        ({"mime": "application/x-msdownload"}, "only PDF, PNG and JPEG"),
        ({"name": ""}, "name must be"),
        ({"id": "../etc/passwd"}, "no valid id"),
        ({"sha256": "abc"}, "checksum must be"),
        ({"size": True}, "size must be"),
    ],
)
def test_a_bad_announcement_is_refused(announcement: dict[str, object], words: str) -> None:
    message = json.loads(announce("doc_1", "a.pdf", "application/pdf", b"%PDF-1.4"))
    message.update(announcement)
    with pytest.raises(TransferError, match=words):
        DocumentReceiver().text(json.dumps(message))


def test_requests_withdrawals_and_acknowledgements_are_read_and_bad_ones_refused() -> None:
    receiver = DocumentReceiver()

    def read(message: dict[str, object]) -> object:
        return receiver.text(json.dumps({"v": 1, **message}))

    asked = read({"type": "document-request", "id": "req_1", "label": "  Justificatif de domicile "})
    assert asked == Requested("req_1", "Justificatif de domicile")
    assert read({"type": "document-request-cancel", "id": "req_1"}) == RequestCancelled("req_1")
    acknowledged = read({"type": "document-status", "id": "cab_1", "state": "refused", "reason": "x" * 500})
    assert acknowledged == Acknowledged("cab_1", DocumentState.REFUSED, "x" * 200)
    refusals = [
        ({"type": "document-request", "id": "req 1", "label": "a"}, "no valid id"),
        ({"type": "document-request", "id": "req_1", "label": ""}, "1 to 120 printable characters"),
        ({"type": "document-request", "id": "req_1", "label": "a\u0007b"}, "printable"),
        ({"type": "document-request", "id": "req_1", "label": "x" * 121}, "1 to 120"),
        ({"type": "document-status", "id": "cab_1", "state": "printed"}, "received or refused"),
    ]
    for message, words in refusals:
        with pytest.raises(TransferError, match=words):
            read(message)
    # The doctor's papers say what they are; anything else is refused.
    data = blank_pdf(1)
    receiver.text(announce("doc_1", "Ordonnance.pdf", "application/pdf", data)[:-1] + ',"role":"prescription"}')
    receiver.binary(data)
    document = receiver.text(end("doc_1"))
    assert isinstance(document, Document) and document.role is Role.PRESCRIPTION
    with pytest.raises(TransferError, match="role is one of"):
        receiver.text(announce("doc_2", "a.pdf", "application/pdf", data)[:-1] + ',"role":"invoice"}')
    assert file_name("Avis d'imposition 2025/2026", "image/png") == "Avis d'imposition 2025 2026.png"
    assert file_name("../../", "image/jpeg") == "document.jpg"


def test_truncated_damaged_or_overlong_documents_are_dropped_and_the_next_one_comes() -> None:
    data = blank_pdf(1)
    receiver = DocumentReceiver()
    receiver.text(announce("doc_1", "a.pdf", "application/pdf", data))
    receiver.binary(data[:100])
    with pytest.raises(TransferError, match="truncated"):
        receiver.text(end("doc_1"))
    receiver.text(announce("doc_2", "a.pdf", "application/pdf", data))
    receiver.binary(bytes(len(data)))
    with pytest.raises(TransferError, match="damaged"):
        receiver.text(end("doc_2"))
    receiver.text(announce("doc_3", "a.pdf", "application/pdf", data))
    with pytest.raises(TransferError, match="more bytes than announced"):
        receiver.binary(data + b"x")
    with pytest.raises(TransferError, match="no document announced"):
        receiver.binary(b"stray")
    with pytest.raises(TransferError, match="not JSON"):
        receiver.text("garbage")
    assert send(receiver, "doc_4", data) is not None, "the channel goes on after refusals"


def test_fit_documents_pass() -> None:
    assert check_document(blank_pdf(3), "application/pdf").pages == 3
    checked = check_document(png(1240, 1754), "image/png")
    assert (checked.kind, checked.width, checked.height) == ("image", 1240, 1754)
    assert check_document(jpeg(4000, 3000), "image/jpeg").width == 4000


def pdf_with(mutate: object) -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595, height=842)
    mutate(writer)  # type: ignore[operator]
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def javascript(writer: pypdf.PdfWriter) -> None:
    action = DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("app.alert('hello');")}
    )
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(action)


def attachment(writer: pypdf.PdfWriter) -> None:
    writer.add_attachment("invoice.exe", b"MZ\x90\x00")


def encrypted(writer: pypdf.PdfWriter) -> None:
    writer.encrypt("secret")


def bomb(writer: pypdf.PdfWriter) -> None:
    # 80 MB of content stream, flate-compressed to about 80 KB.
    stream = DecodedStreamObject()
    stream.set_data(b"0 0 m\n" * (80 * 1024 * 1024 // 6))
    compressed = stream.flate_encode()
    page = writer.pages[0]
    page[NameObject("/Contents")] = writer._add_object(compressed)


@pytest.mark.parametrize(
    ("make", "mime", "words"),
    [
        (lambda: b"MZ\x90\x00 this is a program", "application/pdf", "not a PDF"),
        (lambda: blank_pdf(2)[:300], "application/pdf", "damaged"),
        (lambda: pdf_with(javascript), "application/pdf", "contains a script"),
        (lambda: pdf_with(attachment), "application/pdf", "contains attached files"),
        (lambda: pdf_with(encrypted), "application/pdf", "protected by a password"),
        (lambda: blank_pdf(MAX_PAGES + 1), "application/pdf", f"has {MAX_PAGES + 1} pages"),
        (lambda: blank_pdf(1, width=20000, height=20000), "application/pdf", "unusable size"),
        (lambda: pdf_with(bomb), "application/pdf", "PDF bomb"),
        (lambda: png(100_000, 100_000), "image/png", "too large"),
        (lambda: jpeg(60_000, 60_000), "image/jpeg", "too large"),
        (lambda: b"GIF89a", "image/png", "not a PNG"),
        (lambda: b"\xff\xd8\xff\xda", "image/jpeg", "damaged"),
        (lambda: blank_pdf(1), "text/html", "only PDF, PNG and JPEG"),
    ],
    ids=[
        "exe",
        "truncated",
        "javascript",
        "attachment",
        "password",
        "pages",
        "size",
        "bomb",
        "png-flood",
        "jpeg-flood",
        "fake-png",
        "jpeg-no-frame",
        "html",
    ],
)
def test_what_a_kiosk_must_not_print_is_refused_in_plain_words(
    make: Callable[[], bytes], mime: str, words: str
) -> None:
    with pytest.raises(DocumentRefused, match=words):
        check_document(make(), mime)


def test_a_name_with_text_survives() -> None:
    # A document title in the PDF's metadata is not a reason to refuse it.
    def titled(writer: pypdf.PdfWriter) -> None:
        writer.add_metadata({NameObject("/Title"): TextStringObject("Relevé de compte")})

    assert check_document(pdf_with(titled), "application/pdf").pages == 1


async def test_a_page_is_drawn_in_memory_for_the_cabin_screen() -> None:
    from gateway.documents.render import RenderError, render_page
    from tests.conftest import need_tool

    need_tool("pdftoppm", "poppler-utils")
    image = await render_page(blank_pdf(3), 2)
    checked = check_document(image, "image/png")
    # An A4 page (595 x 842 points) at 110 dpi.
    assert (checked.width, checked.height) == (910, 1287)
    with pytest.raises(RenderError, match="page 4 cannot be drawn"):
        await render_page(blank_pdf(3), 4)
    with pytest.raises(RenderError, match="cannot be drawn"):
        await render_page(b"%PDF-1.4 garbage", 1)
