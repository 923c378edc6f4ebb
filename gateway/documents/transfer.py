"""The `documents` data channel's wire protocol: one document at a time, announced, sent in chunks, then checked.

Pure: no I/O. The sender announces `{"v": 1, "type": "document", "id", "name", "mime", "size", "sha256"}`, sends the
bytes as binary messages of at most CHUNK_BYTES, then `{"v": 1, "type": "document-end", "id"}`; the receiver answers
`{"v": 1, "type": "document-status", "id", "state", "reason"}` (state: received, refused, then printing, printed,
print-failed for a print). A document over MAX_DOCUMENT_BYTES, a chunk past the announced size, bytes with no
document announced, or a checksum that does not match ends that document with a refusal; the channel goes on.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.errors import GatewayError

VERSION: Final = 1
MAX_DOCUMENT_BYTES: Final = 20 * 1024 * 1024
# Below SCTP's usual message limit in browsers (256 KiB in Chromium, 64 KiB safest across them).
CHUNK_BYTES: Final = 64 * 1024
MAX_NAME: Final = 120
MIME_TYPES: Final = frozenset({"application/pdf", "image/png", "image/jpeg"})
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TransferError(GatewayError, ValueError):
    """A message on the documents channel that cannot be accepted; the message is fit to show the professional."""


class DocumentState(enum.StrEnum):
    RECEIVED = "received"
    REFUSED = "refused"
    PRINTING = "printing"
    PRINTED = "printed"
    PRINT_FAILED = "print-failed"


@dataclass(frozen=True, slots=True)
class Announced:
    """A document announced by the sender: what it says it is."""

    id: str
    name: str
    mime: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Document:
    """A document received whole, its checksum verified (its content not yet checked: see gateway.documents.check)."""

    id: str
    name: str
    mime: str
    data: bytes = field(repr=False)


def status(document_id: str, state: DocumentState, reason: str = "") -> str:
    """The receiver's answer about one document."""
    message = {"v": VERSION, "type": "document-status", "id": document_id, "state": state.value, "reason": reason}
    return json.dumps(message, separators=(",", ":"))


def announce(document_id: str, name: str, mime: str, data: bytes) -> str:
    """The sender's announcement of `data` (the cabin uses it to send a scan back)."""
    message = {
        "v": VERSION,
        "type": "document",
        "id": document_id,
        "name": name,
        "mime": mime,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return json.dumps(message, separators=(",", ":"))


def end(document_id: str) -> str:
    return json.dumps({"v": VERSION, "type": "document-end", "id": document_id}, separators=(",", ":"))


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]


def _announced(data: dict[str, Any], max_bytes: int) -> Announced:
    document_id, name, mime = data.get("id"), data.get("name"), data.get("mime")
    size, digest = data.get("size"), data.get("sha256")
    if not isinstance(document_id, str) or not _ID.match(document_id):
        raise TransferError("the document has no valid id")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise TransferError(f"the document's name must be 1 to {MAX_NAME} printable characters")
    if mime not in MIME_TYPES:
        raise TransferError("only PDF, PNG and JPEG documents can be sent to the cabin")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise TransferError("the document's size must be a positive number of bytes")
    if size > max_bytes:
        raise TransferError(f"the document is too large ({size / 1e6:.1f} MB; at most {max_bytes / 1e6:.0f} MB)")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise TransferError("the document's checksum must be a SHA-256 in hexadecimal")
    return Announced(document_id, name.strip(), str(mime), size, digest)


class DocumentReceiver:
    """Reassembles the documents arriving on one channel, one at a time; memory is bounded by `max_bytes`.

    `text(message)` and `binary(chunk)` return the Document once it is complete and verified, else None; a refusal
    raises TransferError with the reason (the document in progress is dropped, the next one may come).
    """

    def __init__(self, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self._max = max_bytes
        self._current: Announced | None = None
        self._parts: list[bytes] = []
        self._received = 0

    @property
    def receiving(self) -> Announced | None:
        return self._current

    def _drop(self) -> None:
        self._current, self._parts, self._received = None, [], 0

    def text(self, message: str) -> Document | None:
        """A control message.

        Raises:
            TransferError: not a document protocol message, or the document ends wrong (its reason).
        """
        try:
            data = json.loads(message)
        except ValueError:
            raise TransferError("a message on the documents channel is not JSON") from None
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise TransferError(f"the documents channel speaks version {VERSION}")
        kind = data.get("type")
        if kind == "document":
            if self._current is not None:
                self._drop()
                raise TransferError("a document was announced before the previous one ended: both dropped")
            self._current = _announced(data, self._max)
            return None
        if kind == "document-end":
            current = self._current
            if current is None or data.get("id") != current.id:
                self._drop()
                raise TransferError("the end of a document that was not announced")
            body = b"".join(self._parts)
            self._drop()
            if len(body) != current.size:
                raise TransferError(f"the document arrived truncated ({len(body)} of {current.size} bytes)")
            if hashlib.sha256(body).hexdigest() != current.sha256:
                raise TransferError("the document arrived damaged (its checksum does not match)")
            return Document(current.id, current.name, current.mime, body)
        raise TransferError(f"unknown message {str(kind)[:32]!r} on the documents channel")

    def binary(self, chunk: bytes) -> None:
        """A chunk of the document being received.

        Raises:
            TransferError: no document announced, a chunk too large, or more bytes than announced.
        """
        current = self._current
        if current is None:
            raise TransferError("bytes arrived with no document announced")
        if len(chunk) > CHUNK_BYTES:
            self._drop()
            raise TransferError(f"a chunk of {len(chunk)} bytes (at most {CHUNK_BYTES})")
        self._received += len(chunk)
        if self._received > current.size:
            self._drop()
            raise TransferError(f"more bytes than announced ({current.size}): the document is dropped")
        self._parts.append(bytes(chunk))
